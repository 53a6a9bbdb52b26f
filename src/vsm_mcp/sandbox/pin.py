"""What a launch executes, as content: the launcher chain and the program files, with digests.

A server's launch is fixed when it is installed or approved: `LaunchPin`
records every file the launch runs (the command, each symlink hop, each
``#!`` interpreter, the program files its arguments name) with a digest, and
every later start re-computes it and compares. A launcher rewritten by the
server itself (possible only where it ran unsandboxed, under its own uid) or
by anyone else is then refused instead of run.

Digests: a symlink is its target (``-> usr/bin/python3.11``); a regular file
is the SHA-256 of its content, except files above `HASH_LIMIT_BYTES`
(interpreter binaries: node is ~100 MB), which are identified by size,
modification time and inode, enough to notice a replacement and cheap at
every start. Those big files live in system or toolchain places no server
can write.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Files up to this size are hashed at every start (a launcher script, a program file); larger ones
#: (an interpreter binary) are identified by size, mtime and inode. 8 MiB hashes in ~10 ms.
HASH_LIMIT_BYTES = 8 * 1024 * 1024
#: Read size while hashing.
_CHUNK = 1024 * 1024


def digest(path: Path) -> str:
    """The digest of one file of a launch (module docstring); ``missing`` when it is gone."""
    try:
        info = os.lstat(path)
    except OSError:
        return "missing"
    if stat.S_ISLNK(info.st_mode):
        return "-> " + os.readlink(path)
    if not stat.S_ISREG(info.st_mode):
        return f"not a file (mode {stat.filemode(info.st_mode)})"
    if info.st_size > HASH_LIMIT_BYTES:
        return f"stat:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
    sha = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return "sha256:" + sha.hexdigest()


@dataclass(frozen=True, slots=True)
class LaunchPin:
    """Every file a launch runs, in chain order, with its digest."""

    files: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, paths: Iterable[Path]) -> LaunchPin:
        """Pin ``paths`` as they are now (each once, in order)."""
        return cls(tuple((str(p), digest(p)) for p in dict.fromkeys(paths)))

    def to_json(self) -> dict[str, str]:
        return dict(self.files)

    @classmethod
    def from_json(cls, data: object) -> LaunchPin | None:
        """The pin stored as `to_json` gave it; None for anything else (a corrupt or foreign value)."""
        if not isinstance(data, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            return None
        return cls(tuple(data.items()))

    def changes(self, now: LaunchPin) -> list[str]:
        """What differs in ``now``, one phrase per file (empty when the launch is the pinned one)."""
        before, after = dict(self.files), dict(now.files)
        found = [
            f"{path}: {before[path]} -> {after[path]}"
            for path in before
            if path in after and before[path] != after[path]
        ]
        found += [f"{path}: no longer run" for path in before if path not in after]
        found += [f"{path}: newly run ({after[path]})" for path in after if path not in before]
        return found
