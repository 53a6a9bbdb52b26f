"""`vsm_mcp.fleet.logfile`: capped lines, private rotated files, a bounded tail, clean printing."""

from __future__ import annotations

import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from vsm_mcp.fleet import logfile
from vsm_mcp.fleet.logfile import (
    MAX_LINE_BYTES,
    TRUNCATED,
    CappedLines,
    LogPosition,
    ServerLog,
    follow,
    printable,
    read_tail,
    rotated_paths,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- CappedLines ------------------------------------------------------------------------


def test_lines_are_split_across_chunks_and_the_last_one_waits_for_its_newline() -> None:
    lines = CappedLines(limit=10)
    assert lines.feed(b"one\ntw") == [b"one"]
    assert lines.feed(b"o\n\nthr") == [b"two", b""]
    assert lines.feed(b"ee") == []
    assert lines.end() == [b"three"]
    assert lines.end() == []


def test_a_long_line_is_cut_at_once_and_its_rest_dropped_up_to_its_newline() -> None:
    lines = CappedLines(limit=4)
    assert lines.feed(b"abcdefgh") == [b"abcd" + TRUNCATED]
    assert lines.feed(b"more of the same line") == []
    assert lines.feed(b" still\nnext\n0123456789\nend") == [b"next", b"0123" + TRUNCATED]
    assert lines.end() == [b"end"]


def test_a_cut_line_ending_the_stream_adds_nothing_more() -> None:
    lines = CappedLines(limit=3)
    assert lines.feed(b"abcdef") == [b"abc" + TRUNCATED]
    assert lines.end() == []


def test_a_partial_line_and_its_continuation_together_past_the_limit_are_cut() -> None:
    lines = CappedLines(limit=5)
    assert lines.feed(b"abc") == []
    assert lines.feed(b"defg\nok\n") == [b"abcde" + TRUNCATED, b"ok"]


# -- ServerLog ---------------------------------------------------------------------------


def test_a_new_log_is_private_and_an_old_loose_one_and_its_rotations_are_narrowed(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.log"
    with ServerLog.open(fresh) as log:
        log.write_lines([b"hello"])
    assert (_mode(fresh), fresh.read_bytes()) == (0o600, b"hello\n")

    old = tmp_path / "old.log"
    old.write_bytes(b"before\n")
    old.chmod(0o644)
    rotated = tmp_path / "old.log.2"
    rotated.write_bytes(b"older\n")
    rotated.chmod(0o664)
    with ServerLog.open(old) as log:
        log.write_lines([b"after"])
    assert (_mode(old), _mode(rotated)) == (0o600, 0o600)
    assert old.read_bytes() == b"before\nafter\n"


def test_a_symlink_in_place_of_the_log_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "s.log").symlink_to(target)
    with pytest.raises(OSError):
        ServerLog.open(tmp_path / "s.log")
    assert logfile.open_log(tmp_path / "s.log") is None
    assert target.read_bytes() == b""


def test_files_rotate_before_passing_the_limit_and_only_two_old_ones_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.log"
    limit = MAX_LINE_BYTES + 100  # room for 8 lines of 1000 bytes
    lines = [b"%03d" % i + b"y" * 996 for i in range(180)]  # 1000 bytes each with its newline
    with ServerLog.open(path, max_bytes=limit) as log:
        for i in range(0, 180, 3):
            log.write_lines(lines[i : i + 3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.log", "r.log.1", "r.log.2"]
    for file in rotated_paths(path):
        assert _mode(file) == 0o600
    # 180 lines, 8 a file: 22 full files, the last 2 of them kept, and 4 lines in the current one.
    assert [file.read_bytes() for file in rotated_paths(path)] == [
        b"".join(line + b"\n" for line in lines[first:last])
        for first, last in ((176, 180), (168, 176), (160, 168))
    ]


def test_a_batch_larger_than_a_file_is_spread_over_rotations(tmp_path: Path) -> None:
    path = tmp_path / "b.log"
    limit = MAX_LINE_BYTES + 100
    with ServerLog.open(path, max_bytes=limit, keep=1) as log:
        log.write_lines([b"%05d" % i for i in range(3000)])  # 18000 bytes in one call
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.log", "b.log.1"]
    assert path.stat().st_size <= limit
    assert path.read_bytes().endswith(b"02999\n")


def test_a_failing_disk_stops_the_log_without_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ServerLog.open(tmp_path / "d.log") as log:
        assert log._fd is not None
        os.close(log._fd)
        log._fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail with EBADF
        log.write_lines([b"lost"])
        assert log.closed
        log.write_lines([b"ignored"])
    assert "stopped writing" in caplog.text


def test_a_limit_that_cannot_hold_a_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot hold one line"):
        ServerLog.open(tmp_path / "x.log", max_bytes=MAX_LINE_BYTES)


# -- read_tail ---------------------------------------------------------------------------


def test_tail_reads_the_last_lines_and_continues_into_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    path.with_name("t.log.2").write_bytes(b"a1\na2\n")
    path.with_name("t.log.1").write_bytes(b"b1\nb2\n")
    path.write_bytes(b"c1\nc2")  # the last line is still being written
    assert read_tail(path, 3).lines == [b"b2", b"c1", b"c2"]
    assert read_tail(path, 100).lines == [b"a1", b"a2", b"b1", b"b2", b"c1", b"c2"]
    assert read_tail(path, 0).lines == []
    assert read_tail(path, 1).position == LogPosition(path.stat().st_ino, 5)


def test_tail_keeps_empty_lines_and_handles_edges(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    path.write_bytes(b"\nx\n\n")
    assert read_tail(path, 10).lines == [b"", b"x", b""]
    path.write_bytes(b"")
    assert read_tail(path, 10).lines == []
    assert read_tail(tmp_path / "missing.log", 5) == logfile.LogTail([], None)


def test_tail_spans_lines_across_block_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfile, "CHUNK_BYTES", 7)
    path = tmp_path / "k.log"
    body = [b"%d" % (i * 12345) for i in range(50)]
    path.write_bytes(b"\n".join(body) + b"\n")
    assert read_tail(path, 20).lines == body[-20:]


def test_tail_cuts_long_lines_and_its_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with path.open("wb") as out:
        out.write(b"z" * (20 * 1024 * 1024) + b"\n")  # one 20 MiB line
        for _ in range(20):
            out.write(b"short line\n" * 100_000)
        out.write(b"w" * 100_000 + b"\nlast\n")
    tracemalloc.start()
    try:
        tail = read_tail(path, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tail.lines == [b"w" * MAX_LINE_BYTES + TRUNCATED, b"last"]
    assert peak < 1024 * 1024  # the file is 42 MiB


# -- follow ------------------------------------------------------------------------------


def test_follow_prints_what_is_appended_and_crosses_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "f.log"
    path.write_bytes(b"old\n")
    start = read_tail(path, 1).position
    steps = [
        lambda: _append(path, b"one\ntw"),
        lambda: _append(path, b"o\n"),
        lambda: (_append(path, b"end of first\n"), path.rename(path.with_name("f.log.1")))[-1],
        lambda: _append(path, b"second file\n"),
    ]

    def wait() -> bool:
        if not steps:
            return False
        steps.pop(0)()
        return True

    assert list(follow(path, start, wait)) == [b"one", b"two", b"end of first", b"second file"]


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)


# -- printable ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b]0;new title\x07after", "after"),
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1bPdevice\x1b\\x", "x"),
        ("clear\x1b[2J\x1b[H", "clear"),
        ("a\rb\x08c\x00d\x7fe", "abcde"),
        ("tab\tkept", "tab\tkept"),
        ("\x9b31mC1 csi\x85", "C1 csi"),
        ("file\u202egpj.exe\u2066x\u2069", "filegpj.exex"),
        ("trailing escape\x1b", "trailing escape"),
        ("plain ünïcode ✓", "plain ünïcode ✓"),
    ],
)
def test_printable_drops_what_a_terminal_would_obey(raw: str, shown: str) -> None:
    assert printable(raw) == shown
