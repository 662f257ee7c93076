/**
 * A real `usher serve` for the tests: `python -m tests.integration.node_server` from the
 * repository root (a database of its own, free ports, the demo tenant), its banner parsed for the
 * web API's URL and the demo tokens. The Python is `$USHER_PYTHON`, else the repository's
 * `.venv/bin/python`, else `python3`.
 */

import { type ChildProcessByStdio, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";

/** dist/test -> the repository root */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const READY_WAIT_MS = 180_000; // a safety net against hangs (an embedded PostgreSQL's first start)

export const ORIGIN = "http://console.test";

export interface Usher {
  /** The web port: `http://127.0.0.1:PORT`. */
  webUrl: string;
  tokens: { gateway: string; agent: string; admin: string };
  /** Where the server's log is (until `stop`). */
  log: string;
  stop(): Promise<void>;
}

function python(): string {
  if (process.env.USHER_PYTHON) return process.env.USHER_PYTHON;
  const venv = resolve(ROOT, ".venv/bin/python");
  return existsSync(venv) ? venv : "python3";
}

export async function startUsher(): Promise<Usher> {
  const child: ChildProcessByStdio<Writable, Readable, null> = spawn(
    python(),
    ["-m", "tests.integration.node_server"],
    { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] },
  );
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const found: Record<string, string> = {};
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise<void>((done, fail) => {
    lines.on("line", (line) => {
      const web = /^usher: web API \(Connect, gRPC-Web\): (\S+)$/.exec(line);
      const token = /^usher: demo (\w+) token \(tenant demo\): (\S+)$/.exec(line);
      const log = /^usher-node-test: log (\S+)$/.exec(line);
      if (web) found.web = web[1]!;
      if (token) found[token[1]!] = token[2]!;
      if (log) found.log = log[1]!;
      if (found.web && found.gateway && found.agent && found.admin) done();
    });
    void exited.then((code) => fail(new Error(`usher serve exited (${code}); see ${found.log}`)));
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error("usher serve did not get ready")), READY_WAIT_MS);
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  try {
    await Promise.race([ready, timeout]);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  lines.on("line", () => {}); // keep reading what it prints
  return {
    webUrl: found.web!,
    tokens: { gateway: found.gateway!, agent: found.agent!, admin: found.admin! },
    log: found.log!,
    stop,
  };
}
