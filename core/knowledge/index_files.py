"""Search indexes kept on disk between processes, for ``usher kb search`` (see
``core.knowledge.disk_cache``): each tenant's latest index, named by the articles' identity the
caller gives, so a changed article never reads a stale file."""

from __future__ import annotations

from pathlib import Path

from core.knowledge import disk_cache
from core.knowledge.index import Index


class IndexFiles:
    """The latest index per tenant under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def _path(self, tenant: str, content: str) -> Path:
        return self._directory / f"{tenant}.{disk_cache.key(content)}.pickle"

    def load(self, tenant: str, content: str) -> Index | None:
        """The index saved for exactly this content, or ``None``."""
        found = disk_cache.load(self._path(tenant, content))
        return found if isinstance(found, Index) else None

    def save(self, tenant: str, content: str, index: Index) -> None:
        """Replace the tenant's saved index."""
        disk_cache.save(self._path(tenant, content), index, replaces=f"{tenant}.*.pickle")
