"""What ``usher serve`` prints once it listens: a few ``usher: <what>: <value>`` lines.

The first part says where the server is (gRPC, the web port, metrics; ``usher: metrics:`` is
its last line, which scripts wait for); with ``--demo`` a second part follows: the console's
address, the demo agents' sign-in names and passwords, the demo web chat and the demo tokens.
Logs go to stderr; the embedded PostgreSQL's and Redis's output to their files under the data
directory (``core.store.embedded``), never here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CONSOLE_PATH = "/console"


@dataclass(frozen=True, slots=True)
class Demo:
    """The demo tenant as seeded for this run."""

    tenant: str
    tokens: Mapping[str, str]
    """Role -> a new API token of that role."""
    sign_ins: Sequence[tuple[str, str, str]] = ()
    """(agent id, display name, password) of each demo agent, set afresh each run."""
    chat_url: str | None = None
    """The demo web chat page, when it runs."""


@dataclass(frozen=True, slots=True)
class Banner:
    grpc: str
    """``host:port``."""
    services: int
    routing: str
    postgres: str
    redis: str
    metrics: str
    web: str | None = None
    """The web port's base URL (the API for browsers and the console)."""
    cors: str = ""
    workers: str | None = None
    tls_cert: Path | None = None
    demo: Demo | None = field(default=None)

    def lines(self) -> list[str]:
        out = [f"gRPC listening on {self.grpc}"]
        if self.tls_cert is not None:
            out.append(f"TLS only, certificate {self.tls_cert}")
        out.append(f"services: {self.services} (list them: grpcurl -plaintext {self.grpc} list)")
        out.append(f"routing: {self.routing}")
        if self.workers is not None:
            out.append(f"workers: {self.workers}")
        out.append(f"PostgreSQL: {self.postgres}")
        out.append(f"Redis: {self.redis}")
        if self.web is not None:
            out.append(f"web API (Connect, gRPC-Web): {self.web}")
            out.append(f"web API CORS origins: {self.cors}")
        out.append(f"metrics: {self.metrics}")
        demo = self.demo
        if demo is not None:
            for role, token in demo.tokens.items():
                out.append(f"demo {role} token (tenant {demo.tenant}): {token}")
            if demo.chat_url is not None:
                out.append(f"demo web chat: open {demo.chat_url}")
        if self.web is not None:
            tenant = f"?tenant={demo.tenant}" if demo is not None else ""
            out.append(f"console (agents, supervisors): open {self.web}{CONSOLE_PATH}{tenant}")
        if demo is not None and demo.sign_ins:
            names = ", ".join(f"{agent} / {password}" for agent, _, password in demo.sign_ins)
            out.append(f"console sign-in (tenant {demo.tenant}; agent number or name): {names}")
        return [f"usher: {line}" for line in out]
