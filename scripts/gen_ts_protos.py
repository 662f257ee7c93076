"""Generate the TypeScript SDK's protobuf-es code, ``clients/typescript/src/gen``, from protos/.

    python scripts/gen_ts_protos.py           # regenerate the checked-in files
    python scripts/gen_ts_protos.py --check   # exit 1 if they differ from a fresh generation

``buf generate`` (buf from the root's npm devDependencies) runs the template
``clients/typescript/buf.gen.yaml``: every ``protos/usher/v1/*.proto`` (a service added there is
picked up by the next run) and the vendored ``google/rpc`` status and error details, through the
local plugin ``protoc-gen-es`` v2 pinned in ``clients/typescript/package.json``. The output
depends only on those, so ``--check`` catches files that drifted from the protos or were edited
by hand. Both ``npm ci`` (root and ``clients/typescript``) must have run; the Makefile does it.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDK = ROOT / "clients/typescript"
OUT = Path("src/gen")
BUF = ROOT / "node_modules/.bin/buf"
PLUGIN = SDK / "node_modules/.bin/protoc-gen-es"


def generate(base: Path) -> Path:
    """Run the template with every output under ``base``; the generated tree's root."""
    for tool, hint in ((BUF, "npm ci"), (PLUGIN, "cd clients/typescript && npm ci")):
        if not tool.exists():
            sys.exit(f"{tool.relative_to(ROOT)} not found: run `{hint}` (or `make protos`)")
    command = [str(BUF), "generate", "--template", "buf.gen.yaml", "--output", str(base)]
    done = subprocess.run(command, cwd=SDK, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"buf generate failed:\n{done.stderr}")
    return base / OUT


def files(tree: Path) -> dict[str, str]:
    """Every file under ``tree``, by its path relative to it."""
    if not tree.is_dir():
        return {}
    return {
        p.relative_to(tree).as_posix(): p.read_text()
        for p in sorted(tree.rglob("*"))
        if p.is_file()
    }


def drift(fresh: dict[str, str], current: dict[str, str]) -> list[str]:
    """A unified diff of ``current`` (checked in) against ``fresh``; empty when they agree."""
    lines: list[str] = []
    for name in sorted(fresh.keys() | current.keys()):
        before, after = current.get(name, ""), fresh.get(name, "")
        if before != after:
            lines += difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                f"checked-in/{OUT / name}",
                f"generated/{OUT / name}",
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the checked-in files are not up to date"
    )
    args = parser.parse_args()
    target = SDK / OUT
    with tempfile.TemporaryDirectory() as tmp:
        fresh_tree = generate(Path(tmp))
        fresh = files(fresh_tree)
        current = files(target)
        diff = drift(fresh, current)
        shown = target.relative_to(ROOT)
        if args.check:
            if diff:
                sys.stdout.writelines(diff[:400])
                print(f"\n{shown} is out of date with protos/: run `make protos`")
                return 1
            print(f"{shown}: {len(fresh)} generated files up to date")
            return 0
        if diff:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(fresh_tree, target)
    print(f"{shown}: {len(fresh)} files, {'updated' if diff else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
