"""Generate the Python stubs of ``protos/usher/v1`` into ``clients/python/usher/v1``.

    python scripts/gen_protos.py           # regenerate the checked-in stubs (and the TypeScript)
    python scripts/gen_protos.py --check   # exit 1 if they differ from a fresh generation

grpcio-tools' protoc writes ``*_pb2.py`` and ``*_pb2_grpc.py``; mypy-protobuf's plugins write
``*_pb2.pyi`` and ``*_pb2_grpc.pyi``. Imports read ``from usher.v1 import agent_pb2`` because the
protos live at ``usher/v1/*.proto`` under the include root. The output depends only on the protos
and the pinned tool versions (the root project's ``dev`` extra), so ``--check`` catches stubs that
drifted from the protos (or were edited by hand).
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = Path("usher/v1")
OUT_ROOT = ROOT / "clients/python"
GENERATED = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*_pb2_grpc.pyi", "__init__.py")
_SERVICE = re.compile(r"^service \w+", re.MULTILINE)
INIT = '"""Generated from protos/usher/v1 by scripts/gen_protos.py. Do not edit."""\n'


def _plugin(name: str) -> str:
    """The protoc plugin installed beside this interpreter (the venv's bin), else on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        sys.exit(f"{name} not found: install mypy-protobuf (the root project's dev extra)")
    return found


def generate(out_root: Path) -> None:
    """Write the stubs of every ``protos/usher/v1/*.proto`` under ``out_root/usher/v1``."""
    protos = sorted(
        p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.glob("usher/v1/*.proto")
    )
    if not protos:
        sys.exit(f"no protos under {PROTO_ROOT / PACKAGE}")
    well_known = resources.files("grpc_tools") / "_proto"
    out = str(out_root)
    (out_root / PACKAGE).mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I.",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    done = subprocess.run(command, cwd=PROTO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"protoc failed:\n{done.stderr}")
    for proto in protos:
        if _SERVICE.search((PROTO_ROOT / proto).read_text()) is None:
            stem = out_root / proto.removesuffix(".proto")
            for suffix in ("_pb2_grpc.py", "_pb2_grpc.pyi"):
                Path(f"{stem}{suffix}").unlink()  # nothing but a version check in them
    (out_root / PACKAGE / "__init__.py").write_text(INIT)


def generated_files(package_dir: Path) -> dict[str, str]:
    """The generated files in ``package_dir``, by name."""
    names = sorted({p.name for pattern in GENERATED for p in package_dir.glob(pattern)})
    return {name: (package_dir / name).read_text() for name in names}


def drift(fresh: dict[str, str], current: dict[str, str]) -> list[str]:
    """A unified diff of ``current`` (checked in) against ``fresh``; empty when they agree."""
    lines: list[str] = []
    for name in sorted(fresh.keys() | current.keys()):
        before, after = current.get(name, ""), fresh.get(name, "")
        if before != after:
            lines += difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                f"checked-in/{PACKAGE / name}",
                f"generated/{PACKAGE / name}",
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the checked-in stubs are not up to date"
    )
    args = parser.parse_args()
    target = OUT_ROOT / PACKAGE
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = generated_files(Path(tmp) / PACKAGE)
    current = generated_files(target)
    diff = drift(fresh, current)
    if args.check:
        if diff:
            sys.stdout.writelines(diff[:400])
            print(f"\n{target.relative_to(ROOT)} is out of date with protos/: run `make protos`")
            return 1
        print(f"{target.relative_to(ROOT)}: {len(fresh)} generated files up to date")
        return 0
    for name in current.keys() - fresh.keys():
        (target / name).unlink()
    target.mkdir(parents=True, exist_ok=True)
    for name, text in fresh.items():
        if current.get(name) != text:
            (target / name).write_text(text)
    print(f"{target.relative_to(ROOT)}: {len(fresh)} files, {'updated' if diff else 'unchanged'}")
    return typescript()


def typescript() -> int:
    """Regenerate the TypeScript SDK's code too (``gen_ts_protos.py``) when its tools are
    installed, so that no regeneration leaves it behind (``make check-protos`` checks both)."""
    tools = (
        ROOT / "node_modules/.bin/buf",
        ROOT / "clients/typescript/node_modules/.bin/protoc-gen-es",
    )
    if not all(tool.exists() for tool in tools):
        print("clients/typescript/src/gen: not regenerated (no npm tools): run `make protos`")
        return 0
    return subprocess.run([sys.executable, str(ROOT / "scripts/gen_ts_protos.py")]).returncode


if __name__ == "__main__":
    sys.exit(main())
