// Builds the console into core/console/assets (checked in, served by `usher serve` at /console):
// index.html naming console-<hash>.js and console-<hash>.css. `--check` builds into a temporary
// directory and fails when the checked-in files differ from a fresh build.
import { build } from "esbuild";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const assets = join(here, "..", "core", "console", "assets");
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "usher-console-")) : assets;
const staging = join(here, ".build");
rmSync(staging, { recursive: true, force: true });

const result = await build({
  entryPoints: { console: join(here, "src", "main.tsx") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  entryNames: "[name]-[hash]",
  // always the same place relative to the sources: esbuild's output (its minified names)
  // depends on the paths from the output to the inputs, and a checkout may be anywhere
  outdir: staging,
  metafile: true,
  legalComments: "none",
  charset: "utf8",
  jsx: "automatic",
  jsxImportSource: "preact",
  logLevel: "warning",
});

const built = Object.keys(result.metafile.outputs).map((path) => basename(path));
const script = built.find((name) => name.endsWith(".js"));
const style = built.find((name) => name.endsWith(".css"));
if (!script || !style) throw new Error(`expected one .js and one .css, got ${built.join(", ")}`);

mkdirSync(out, { recursive: true });
for (const name of readdirSync(out)) {
  if (/^console-.*\.(js|css)$/.test(name) || name === "index.html") rmSync(join(out, name));
}
for (const name of [script, style]) {
  writeFileSync(join(out, name), readFileSync(join(staging, name)));
}
rmSync(staging, { recursive: true, force: true });
const page = readFileSync(join(here, "src", "index.html"), "utf8")
  .replace("{{script}}", script)
  .replace("{{style}}", style);
writeFileSync(join(out, "index.html"), page);

if (check) {
  const names = (dir) => readdirSync(dir).filter((n) => n !== "README.md").sort();
  const fresh = names(out);
  const kept = names(assets);
  const same =
    fresh.join() === kept.join() &&
    fresh.every((n) => readFileSync(join(out, n)).equals(readFileSync(join(assets, n))));
  if (same) rmSync(out, { recursive: true, force: true });
  if (!same) {
    console.error(`console: fresh build in ${out}: ${fresh.join(", ")}; checked in: ${kept.join(", ")}`);
    console.error("console: core/console/assets differs from a fresh build: run `make console`");
    process.exit(1);
  }
  console.log("console: the checked-in bundle matches a fresh build");
} else {
  console.log(`console: built ${script}, ${style} into core/console/assets`);
}
