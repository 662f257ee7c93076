"""Settings shared by the ``usher`` commands: flags override ``USHER_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class StoreSettings:
    data_dir: Path = Path(".usher-data")
    """Where the embedded PostgreSQL and Redis keep their files (reused across runs)."""
    database_url: str | None = None
    """A PostgreSQL URL; None starts the embedded server."""
    redis_url: str | None = None
    """A Redis URL; None starts the embedded server."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StoreSettings:
        return cls(
            data_dir=Path(environ.get("USHER_DATA_DIR", ".usher-data")),
            database_url=environ.get("USHER_DATABASE_URL") or None,
            redis_url=environ.get("USHER_REDIS_URL") or None,
        )
