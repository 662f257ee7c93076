"""Pickles kept on disk between processes, named by what they were built from.

The analyzers' dictionaries and a tenant's index take seconds to build; ``usher kb search``
runs once per query, so it keeps them under the user's data directory (mode 0700; the files
are read back with ``pickle`` and must not be shared with other users). Every name includes
``PIPELINE``, a digest of this package's source and its libraries' versions, so a changed
analyzer never reads a stale file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import os
import pickle
import tempfile
from pathlib import Path
from typing import Final

_LIBRARIES: Final = ("bm25s", "jieba", "opencc", "pythainlp", "rapidfuzz", "snowballstemmer")


@functools.cache
def pipeline() -> str:
    """A digest of core.knowledge's source and its libraries' versions."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    for library in _LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            digest.update(f"{library}={importlib.metadata.version(library)}".encode())
    return digest.hexdigest()


def key(content: str) -> str:
    """A file-name-safe key of ``content`` under this pipeline."""
    return hashlib.sha256(f"{pipeline()}\n{content}".encode()).hexdigest()[:40]


def load(path: Path) -> object | None:
    """The object pickled at ``path``, or ``None`` (missing or unreadable)."""
    try:
        with path.open("rb") as file:
            found: object = pickle.load(file)
            return found
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def save(path: Path, value: object, *, replaces: str = "") -> None:
    """Write ``value`` at ``path`` atomically, then remove the files matching the glob
    ``replaces`` beside it; a failure to write is not an error (the next run builds again)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as file:
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(file.name, path)
        if replaces:
            for older in path.parent.glob(replaces):
                if older != path:
                    older.unlink(missing_ok=True)
