"""The cgroup file system as `vsm_mcp.sandbox.cgroups` reads and writes it: mount and
membership tables of ``/proc``, permission checks for another uid, one-value files.

Nothing here decides anything; every function is a small, total read or one
write. Reads of files that are absent give empty results (a group that is gone
has no processes and no usage); writes raise `OSError` for the caller to translate.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Mount:
    """One cgroup file system mount (a line of ``/proc/self/mountinfo``)."""

    point: Path
    #: The cgroup shown at ``point`` (``/`` unless a sub-tree was bind-mounted).
    root: str
    fstype: str
    #: Mount and super-block options: ``ro``, and a v1 hierarchy's controllers.
    options: frozenset[str]


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def cgroup_mounts(mountinfo: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts of a ``mountinfo`` text."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 3 or not tail[0].startswith("cgroup"):
            continue
        options = frozenset(fields[5].split(",")) | frozenset(tail[2].split(","))
        found.append(Mount(Path(_unescape(fields[4])), _unescape(fields[3]), tail[0], options))
    return found


def own_cgroups(text: str) -> dict[str, str]:
    """Controller -> this process's cgroup path (``""``: the v2 hierarchy)."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


def writable_by(path: Path, uid: int) -> bool:
    """Could ``uid`` write ``path`` (and, for a directory, create in it)? Group bits are not trusted."""
    try:
        st = path.stat()
    except OSError:
        return False
    is_dir = stat.S_ISDIR(st.st_mode)
    if uid == os.geteuid():
        return os.access(path, os.W_OK | (os.X_OK if is_dir else 0))
    if uid == 0:
        return True
    if st.st_uid == uid:
        need = stat.S_IWUSR | (stat.S_IXUSR if is_dir else 0)
    else:
        need = stat.S_IWOTH | (stat.S_IXOTH if is_dir else 0)
    return st.st_mode & need == need


def gateway_id(pid: int) -> str:
    """``<pid>-<start time>``: names one process for this boot (pids are reused, start times not)."""
    return f"{pid}-{_start_time(pid)}"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (with the pid: unique on this boot)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    return stat_line.rsplit(")", 1)[1].split()[19]


def gateway_alive(gateway_id: str) -> bool:
    """Is the process ``gateway_id`` names still running?"""
    pid, _, start = gateway_id.partition("-")
    return pid.isdigit() and _start_time(int(pid)) == start


def sweep(root: Path, keep: str) -> None:
    """Remove the empty groups of gateways that are gone (a populated group stays)."""
    try:
        gateways = [p for p in root.iterdir() if p.is_dir() and p.name != keep and not gateway_alive(p.name)]
    except OSError:
        return
    for gateway in gateways:
        remove_empty((gateway,))


def make_dirs(path: Path, attempts: int = 3) -> None:
    """``mkdir -p``, again when another gateway removed an empty level at the same moment."""
    for attempt in range(attempts):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise


def remove_empty(parents: Iterable[Path]) -> None:
    """Remove each of ``parents`` with its child groups; what still holds processes stays."""
    for parent in parents:
        try:
            children = [p for p in parent.iterdir() if p.is_dir()]
        except OSError:
            continue
        for child in children:
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()


def hand_over(directory: Path, uid: int) -> None:
    """Delegate a group to ``uid`` as systemd does: the directory and the files that join it."""
    for path in (directory, directory / "cgroup.procs", directory / "tasks", directory / "cgroup.threads"):
        if path.exists():
            os.chown(path, uid, -1)


def write_value(path: Path, value: str) -> None:
    """Write one value as ``echo VALUE > PATH`` does (cgroupfs refuses to create a missing file;
    a plain directory, as in the tests' fake trees, gets it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_words(path: Path) -> list[str]:
    """The whitespace-separated words of a file; none when it cannot be read."""
    try:
        return path.read_text().split()
    except OSError:
        return []


def read_int(path: Path) -> int | None:
    """The number a file starts with; None when it cannot be read."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_keyed(path: Path) -> dict[str, int]:
    """``KEY VALUE`` lines (``cpu.stat``) as a mapping."""
    words = read_words(path)
    return {k: int(v) for k, v in zip(words[::2], words[1::2], strict=False) if v.isdigit()}


def read_pids(path: Path) -> set[int]:
    """The pids a ``cgroup.procs`` lists."""
    return {int(word) for word in read_words(path) if word.isdigit()}
