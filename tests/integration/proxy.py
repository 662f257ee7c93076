"""A loopback TCP proxy that tests cut, stall and restore, to make PostgreSQL "go away" and "come
back" without stopping it (the real PostgreSQL on CI is shared by the whole machine). It is the
chaos suite's ``StoreProxy``."""

from __future__ import annotations

from benchmarks.chaos.proxy import StoreProxy


class CuttableProxy(StoreProxy):
    """A ``StoreProxy`` in front of the PostgreSQL of ``target_url`` (default port 5432)."""

    def __init__(self, target_url: str) -> None:
        super().__init__(target_url, 5432)
