"""CPU time and memory of processes, read from Linux ``/proc`` (no dependency).

``cpu_ticks`` sums user + system time of the given processes in clock ticks; a process that is
gone counts 0, so take both samples over the same set and compare like with like. ``tree`` is a
process and all its descendants now (a server with its Ray workers); ``is_ray`` tells Ray's
processes (its servers, agents and workers, whose titles are ``ray::<Actor>``) from the others.
Elsewhere than Linux every figure is 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_ticks(pids: Iterable[int]) -> int:
    """User + system CPU time of ``pids``, in clock ticks (``TICKS_PER_S`` a second)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total


def per_process_ticks(pids: Iterable[int]) -> dict[int, int]:
    """User + system CPU ticks of each process still there."""
    found: dict[int, int] = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            found[pid] = int(fields[11]) + int(fields[12])
    return found


def cores(ticks: int, seconds: float) -> float:
    """CPU ticks over ``seconds`` of wall time, as cores busy (1.0 = one core all the time)."""
    return round(ticks / TICKS_PER_S / seconds, 2) if seconds > 0 else 0.0


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of ``pids`` summed (shared pages count once per process)."""
    return sum(rss_each(pids).values())


def rss_each(pids: Iterable[int]) -> dict[int, int]:
    """Resident memory of each process still there, in bytes."""
    found: dict[int, int] = {}
    for pid in pids:
        try:
            found[pid] = int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return found


def children() -> dict[int, list[int]]:
    """Every process's children now, by parent id (one pass over ``/proc``)."""
    found: dict[int, list[int]] = {}
    try:
        entries = [e.name for e in PROC.iterdir() if e.name.isdigit()]
    except OSError:
        return found
    for name in entries:
        fields = _stat(int(name))
        if fields is not None:
            found.setdefault(int(fields[1]), []).append(int(name))
    return found


def cmdline(pid: int) -> str:
    """The process's command line (its title, if it set one), or "" if it is gone."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_ray(command: str) -> bool:
    """A Ray process, by its command line: a worker or actor titled ``ray::...``, or a program
    from the ``ray`` package (``gcs_server``, ``raylet``, the dashboard, the monitors)."""
    return command.startswith("ray::") or "-packages/ray/" in command


def tree(root: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """``root`` and all its descendants now (empty if ``root`` is gone); ``kids`` from
    ``children()`` saves reading ``/proc`` again."""
    if kids is None:
        kids = children()
    if _stat(root) is None:
        return []
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, ()))
    return found


def find(needle: str) -> list[int]:
    """Processes whose command line contains ``needle``."""
    try:
        pids = [int(e.name) for e in PROC.iterdir() if e.name.isdigit()]
    except OSError:
        return []
    return [pid for pid in pids if needle in cmdline(pid)]
