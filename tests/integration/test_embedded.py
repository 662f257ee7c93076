"""The embedded stores stop with their last live user, in real processes (one may be SIGKILLed)."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # bound of every poll (seconds); the polls end as soon as their condition holds

# A process using both stores: prints their URLs, stops them when a line arrives on stdin.
# Logging as verbose as a user could make it: nothing of the stores may reach the terminal.
CHILD = """
import json, logging, sys
from pathlib import Path
logging.basicConfig(level=logging.DEBUG)
from core.store.embedded import EmbeddedPostgres, EmbeddedRedis
data = Path(sys.argv[1])
pg, rd = EmbeddedPostgres(data), EmbeddedRedis(data)
print(json.dumps({"pg": pg.start(), "redis": rd.start()}), flush=True)
sys.stdin.readline()
rd.stop()
pg.stop()
"""


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def answers(path: Path) -> bool:
    """Whether a server accepts connections on Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


class Servers:
    """The servers under one data directory, found through their pid files."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.users: list[subprocess.Popen[str]] = []

    def postmaster(self) -> int:
        return int((self.data / "postgres" / "postmaster.pid").read_text().split()[0])

    def redis(self) -> int:
        return int((self.data / "redis" / "redis.pid").read_text())

    def sockets(self, urls: dict[str, str]) -> list[Path]:
        pg_dir = urls["pg"].split("host=", 1)[1]
        return [Path(pg_dir) / ".s.PGSQL.5432", Path(urls["redis"].removeprefix("unix://"))]

    def spawn(self) -> tuple[subprocess.Popen[str], dict[str, str]]:
        """A user of both stores, started; with the URLs it printed."""
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(self.data)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.users.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], WAIT)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the child did not start the stores:\n{err}")
        urls: dict[str, str] = json.loads(line)
        return proc, urls

    def kill_all(self) -> None:
        """After a failed test: no stray users or servers."""
        for proc in self.users:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        for read in (self.postmaster, self.redis):
            try:
                pid = read()
            except (OSError, ValueError):
                continue
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def data() -> Iterator[Path]:
    # Outside pytest's temporary tree: pgserver runs PostgreSQL as another user (see conftest).
    # One directory for the module: PostgreSQL is initialised once.
    directory = Path(tempfile.mkdtemp(prefix="usher-test-embedded-"))
    yield directory
    Servers(directory).kill_all()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def servers(data: Path) -> Iterator[Servers]:
    servers = Servers(data)
    yield servers
    servers.kill_all()


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a user gracefully; it exits cleanly and prints nothing."""
    out, err = proc.communicate("stop\n", timeout=WAIT)
    assert proc.returncode == 0, err
    assert (out, err) == ("", "")


def assert_gone(servers: Servers, postmaster: int, redis: int, sockets: list[Path]) -> None:
    assert eventually(lambda: not alive(postmaster)), "PostgreSQL still runs"
    assert eventually(lambda: not alive(redis)), "redis-server still runs"
    assert not any(answers(path) for path in sockets)
    users = [servers.data / "postgres.users.json", servers.data / "redis.users.json"]
    assert [json.loads(path.read_text()) for path in users] == [{}, {}]
    assert json.loads((servers.data / "postgres" / ".handle_pids.json").read_text()) == []


def test_one_user_stops_both_stores(servers: Servers) -> None:
    proc, urls = servers.spawn()
    postmaster, redis = servers.postmaster(), servers.redis()
    sockets = servers.sockets(urls)
    assert alive(postmaster) and alive(redis)
    assert all(answers(path) for path in sockets)

    stop(proc)

    assert_gone(servers, postmaster, redis, sockets)


def test_last_live_user_stops_both_stores_after_a_sigkill(servers: Servers) -> None:
    first, urls = servers.spawn()
    postmaster, redis = servers.postmaster(), servers.redis()
    second, second_urls = servers.spawn()
    assert second_urls == urls  # joined the same servers
    assert (servers.postmaster(), servers.redis()) == (postmaster, redis)

    first.kill()  # SIGKILL: it never leaves
    first.communicate(timeout=WAIT)
    assert alive(postmaster) and alive(redis)  # still used by the second
    assert all(answers(path) for path in servers.sockets(urls))

    stop(second)

    assert_gone(servers, postmaster, redis, servers.sockets(urls))
