"""A server's stderr log: written bounded and private, read back bounded and clean.

The gateway appends each stdio server's stderr to ``logs/NAME.log``
(`vsm_mcp.fleet.process`); ``vsm-mcp servers logs`` reads it back. A hostile
server controls every byte of that stream, so:

* every log file is its owner's only (mode 0600): created so by ``os.open``,
  an existing looser one (and its rotated predecessors) narrowed on opening;
  a symlink in its place is refused (``O_NOFOLLOW``);
* a file never grows past ``max_bytes`` (`MAX_LOG_BYTES`): the write that
  would pass it rotates first (``NAME.log`` -> ``.1`` -> ``.2``, the oldest
  dropped), so a server's log takes at most ``(ROTATED_LOGS + 1) *
  MAX_LOG_BYTES`` of disk, whatever it prints;
* a line is at most `MAX_LINE_BYTES` plus `TRUNCATED`: `CappedLines` cuts a
  longer one as it streams in and drops the rest of it up to its newline,
  never holding more than `MAX_LINE_BYTES` of it;
* writing is cheap: one ``write`` per batch of lines, no fsync (a lost tail
  of a log costs nothing; an fsync per line would let a flood stall the
  gateway); a failing disk stops the log (with one warning), never the server;
* reading the tail (`read_tail`) seeks from the end in blocks: its memory is
  bounded by the lines asked for times `MAX_LINE_BYTES`, not by file size,
  and it continues into the rotated files when the current one is short;
* `printable` strips what a terminal would obey (C0 controls but tab, escape
  sequences, C1 controls, bidi overrides) from a line before it is shown.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

logger = logging.getLogger(__name__)

#: A log file rotates before it grows past this. 10 MiB is days of an ordinary
#: server's stderr, and small enough that three of them per server (see
#: `ROTATED_LOGS`) cannot fill a disk however fast a server prints.
MAX_LOG_BYTES = 10 * 1024 * 1024
#: Rotated files kept (``NAME.log.1`` newer, ``NAME.log.2`` older): enough history
#: to see what led to a crash after a burst of output.
ROTATED_LOGS = 2
#: The longest line kept, in bytes. Tracebacks and JSON log records fit; it also bounds
#: the unit's in-memory ring (500 lines) at 4 MiB and a ``servers logs -n N`` at N x 8 KiB.
MAX_LINE_BYTES = 8 * 1024
#: Appended to a line that was cut at `MAX_LINE_BYTES`.
TRUNCATED = b" [line truncated]"
#: How much of a pipe or file is read at once: large enough to keep up with a flood in
#: few wake-ups, small enough that one batch never holds the event loop for long.
CHUNK_BYTES = 256 * 1024

_FILE_MODE = 0o600


def rotated_paths(path: Path, keep: int = ROTATED_LOGS) -> list[Path]:
    """``path`` and its rotated predecessors, newest first: NAME.log, NAME.log.1, ..."""
    return [path, *(path.with_name(f"{path.name}.{i}") for i in range(1, keep + 1))]


def cap_line(line: bytes, limit: int = MAX_LINE_BYTES) -> bytes:
    """``line`` itself, or its first ``limit`` bytes and `TRUNCATED`."""
    return line if len(line) <= limit else line[:limit] + TRUNCATED


class CappedLines:
    """Splits a byte stream into lines of at most ``limit`` bytes (newlines removed).

    A line that passes ``limit`` is given out at once, cut and marked with
    `TRUNCATED`; the rest of it, up to its newline, is dropped unseen.
    """

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self._limit = limit
        self._partial = b""
        self._dropping = False

    def feed(self, data: bytes) -> list[bytes]:
        """The lines ``data`` completes (or cuts), in order."""
        parts = data.split(b"\n")
        tail = parts.pop()
        out: list[bytes] = []
        if parts:
            first = parts[0]
            if self._dropping:
                self._dropping = False  # ``first`` is the end of a line already cut
                rest = parts[1:]
            else:
                rest = parts
                if self._partial:
                    rest[0] = self._partial + first
            self._partial = b""
            if rest and max(map(len, rest)) > self._limit:
                rest = [cap_line(line, self._limit) for line in rest]
            out.extend(rest)
        if not self._dropping and tail:
            self._partial += tail
            if len(self._partial) > self._limit:
                out.append(cap_line(self._partial, self._limit))
                self._partial = b""
                self._dropping = True
        return out

    def end(self) -> list[bytes]:
        """The last, unterminated line, if any (at end of stream)."""
        last = [self._partial] if self._partial and not self._dropping else []
        self._partial = b""
        self._dropping = False
        return last


def _open_private(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, _FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & ~_FILE_MODE:
            os.fchmod(fd, _FILE_MODE)  # a file from before this rule, or made by hand
    except OSError:
        os.close(fd)
        raise
    return fd


class ServerLog:
    """One server's log file, appended to in batches of whole lines and rotated by size.

    Use `ServerLog.open`; ``with`` closes it.
    """

    def __init__(self, path: Path, fd: int, *, max_bytes: int, keep: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self._size = os.fstat(fd).st_size
        self._max_bytes = max_bytes
        self._keep = keep

    @classmethod
    def open(cls, path: Path, *, max_bytes: int | None = None, keep: int | None = None) -> ServerLog:
        """Open ``path`` for appending (0600, created if absent) and narrow its rotated files' modes.

        ``max_bytes`` and ``keep`` default to `MAX_LOG_BYTES` and `ROTATED_LOGS`.

        Raises:
            OSError: the file cannot be opened (e.g. a symlink is in its place).
        """
        limit = MAX_LOG_BYTES if max_bytes is None else max_bytes
        kept = ROTATED_LOGS if keep is None else keep
        if limit <= MAX_LINE_BYTES + len(TRUNCATED):
            raise ValueError(f"a log of {limit} bytes cannot hold one line of {MAX_LINE_BYTES}")
        for old in rotated_paths(path, kept)[1:]:
            try:
                mode = old.lstat().st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISREG(mode) and stat.S_IMODE(mode) & ~_FILE_MODE:
                old.chmod(_FILE_MODE)
        return cls(path, _open_private(path), max_bytes=limit, keep=kept)

    @property
    def closed(self) -> bool:
        """Whether writes are ignored (closed, or stopped by an error)."""
        return self._fd is None

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """Append ``lines`` (each without its newline, at most `MAX_LINE_BYTES` + marker long).

        An ``OSError`` (a full disk) is logged once and stops this log; it is not raised.
        """
        if self._fd is None or not lines:
            return
        data = b"\n".join(lines) + b"\n"
        try:
            self._append(data)
        except OSError as exc:
            logger.warning("stopped writing %s: %s", self.path, exc)
            self.close()

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            room = self._max_bytes - self._size
            if len(data) - pos <= room:
                self._write(view[pos:])
                return
            cut = data.rfind(b"\n", pos, pos + room) + 1  # after the last whole line that fits
            if cut <= pos and self._size == 0:
                cut = pos + room  # one line longer than a whole file: only a tiny max_bytes allows it
            if cut > pos:
                self._write(view[pos:cut])
                pos = cut
            self._rotate()

    def _write(self, data: memoryview) -> None:
        assert self._fd is not None
        while data:
            written = os.write(self._fd, data)
            self._size += written
            data = data[written:]

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        paths = rotated_paths(self.path, self._keep)
        if self._keep == 0:
            self.path.unlink(missing_ok=True)
        for newer, older in zip(reversed(paths[:-1]), reversed(paths[1:]), strict=True):
            if newer.exists():
                os.replace(newer, older)
        self._fd = _open_private(self.path)
        self._size = os.fstat(self._fd).st_size

    def close(self) -> None:
        """Close the file; later writes are ignored."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> ServerLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_log(path: Path) -> ServerLog | None:
    """`ServerLog.open` with the defaults, or None (and a warning) when the file cannot be opened."""
    try:
        return ServerLog.open(path)
    except OSError as exc:
        logger.warning("cannot write the server log %s: %s", path, exc)
        return None


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where a reader of the current log file stopped: that file (by inode) at ``offset``."""

    inode: int
    offset: int


@dataclass(frozen=True, slots=True)
class LogTail:
    """The last lines of a log (oldest first, each capped) and where the current file ended."""

    lines: list[bytes]
    position: LogPosition | None


def read_tail(path: Path, count: int, *, keep: int = ROTATED_LOGS, limit: int = MAX_LINE_BYTES) -> LogTail:
    """The last ``count`` lines of ``path``, continued into its rotated files when it has fewer.

    Memory is bounded by ``count`` x ``limit`` (a longer line comes back cut, with
    `TRUNCATED`), whatever the files' sizes.
    """
    found: list[list[bytes]] = []
    position: LogPosition | None = None
    need = count
    for i, file in enumerate(rotated_paths(path, keep)):
        try:
            handle = file.open("rb")
        except FileNotFoundError:
            continue
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if i == 0:
                position = LogPosition(os.fstat(handle.fileno()).st_ino, size)
            if need > 0:
                lines = _last_lines(handle, size, need, limit)
                found.append(lines)
                need -= len(lines)
    return LogTail([line for lines in reversed(found) for line in lines], position)


def _last_lines(handle: BinaryIO, size: int, count: int, limit: int) -> list[bytes]:
    """The last ``count`` lines of the first ``size`` bytes of ``handle``, oldest first, each capped."""
    if size == 0:
        return []
    line_end = size
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        line_end = size - 1  # a final newline ends the last line; it does not start another
    spans: list[tuple[int, int]] = []
    block_end = line_end
    while len(spans) < count and block_end > 0:
        block_start = max(0, block_end - CHUNK_BYTES)
        handle.seek(block_start)
        block = handle.read(block_end - block_start)
        found = block.rfind(b"\n")
        while found >= 0 and len(spans) < count:
            spans.append((block_start + found + 1, line_end))
            line_end = block_start + found
            found = block.rfind(b"\n", 0, found)
        block_end = block_start
    if len(spans) < count:
        spans.append((0, line_end))  # the file's first line
    lines: list[bytes] = []
    for start, end in reversed(spans):
        handle.seek(start)
        lines.append(cap_line(handle.read(min(end - start, limit + 1)), limit))
    return lines


def follow(
    path: Path, start: LogPosition | None, wait: Callable[[], bool], *, limit: int = MAX_LINE_BYTES
) -> Iterator[bytes]:
    """Lines appended to ``path`` after ``start``, as they come, across rotations.

    Calls ``wait()`` whenever there is nothing new; stops when it returns False.
    A rotated-away file is read to its end before the new one is followed from its start.
    """
    lines = CappedLines(limit)
    handle = None
    try:
        while True:
            if handle is None:
                try:
                    handle = path.open("rb")
                except FileNotFoundError:
                    pass
                else:
                    here = os.fstat(handle.fileno())
                    if start is not None and start.inode == here.st_ino and start.offset <= here.st_size:
                        handle.seek(start.offset)
                    start = None
            if handle is not None:
                while chunk := handle.read(CHUNK_BYTES):
                    yield from lines.feed(chunk)
                if _replaced(path, handle.fileno()):
                    yield from lines.end()
                    handle.close()
                    handle = None
                    continue  # the new file may already hold lines
            if not wait():
                return
    finally:
        if handle is not None:
            handle.close()


def _replaced(path: Path, fd: int) -> bool:
    """Whether ``path`` now names another file than ``fd`` (rotated), or none."""
    try:
        return path.stat().st_ino != os.fstat(fd).st_ino
    except FileNotFoundError:
        return True


#: What a terminal would act on: escape sequences (CSI, OSC/DCS/SOS/PM/APC strings up to
#: their terminator, other two-byte escapes), 8-bit CSI, C0 controls but tab, DEL, C1
#: controls, and the bidi embeddings, overrides and isolates that reorder what is shown.
_UNPRINTABLE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    """``text`` without anything a terminal would obey rather than show (see `_UNPRINTABLE`)."""
    return _UNPRINTABLE.sub("", text)
