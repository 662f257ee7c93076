"""``usher serve`` as a child process for the crash and drain tests: fixed free ports (so a
restarted server answers where the old one did), stdout parsed for readiness, stderr kept in a
log file, and a ``kill`` that always leaves no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

WAIT = 60.0  # a safety net against hangs, never an assertion about speed


def free_port() -> int:
    """A TCP port nothing listens on right now (bind 127.0.0.1:0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class UsherServe:
    """One ``python -m core.cli serve`` with ``args``; ``start()`` again after it died runs a
    fresh process with the same arguments (same ports, same data)."""

    args: list[str]
    log: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    """What the current process printed on stdout up to readiness."""
    _tail: asyncio.Task[None] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Run it and wait until it prints where it listens."""
        assert self.process is None or self.process.returncode is not None
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "core.cli", "serve"),
                *("--host", "127.0.0.1", "--port", str(self.port), *self.args),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        self.lines = []
        try:
            await asyncio.wait_for(self._ready(self.process.stdout), WAIT)
        except BaseException:
            await self.kill()
            raise
        self._tail = asyncio.create_task(self._drain(self.process.stdout))

    async def _ready(self, stdout: asyncio.StreamReader) -> None:
        async for line in stdout:
            text = line.decode().rstrip("\n")
            self.lines.append(text)
            if text.startswith("usher: gRPC listening on "):
                assert int(text.rsplit(":", 1)[1]) == self.port
            if text.startswith("usher: metrics: "):  # the last line of the banner
                return
        raise AssertionError(f"usher serve exited before it was ready; see {self.log}")

    @staticmethod
    async def _drain(stdout: asyncio.StreamReader) -> None:
        async for _ in stdout:
            pass

    async def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self) -> int:
        """The exit code, once it exits (within ``WAIT``)."""
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), WAIT)
        if self._tail is not None:
            await self._tail
            self._tail = None
        return code

    async def kill(self) -> None:
        """SIGKILL, and reap; harmless when it is not running."""
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
            self._tail = None
