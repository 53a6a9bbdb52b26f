"""Memory readings for S3: one pass over /proc for every process group, reported again when they move."""

from __future__ import annotations

import os
import subprocess
import sys

from vsm_mcp.bridge.sampling import RSS_REPORT_SHARE, _moved, group_rss, rss_bytes


def test_group_rss_reads_each_group_once_and_leaves_out_groups_with_no_process() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"  # the interpreter is loaded
        mine = os.getpgrp()
        totals = group_rss({mine, child.pid, 2**22 + 7})
        assert set(totals) == {mine, child.pid}  # no process leads the third
        assert totals[child.pid] > 1 << 20  # a python interpreter: well over a MiB resident
        single = rss_bytes(child.pid)
        assert single is not None and single > 1 << 20
        assert rss_bytes(None) is None
    finally:
        child.communicate(b"")


def test_memory_is_reported_again_when_it_appears_vanishes_or_moves_by_the_share() -> None:
    assert _moved(None, 100) and _moved(100, None) and not _moved(None, None)
    assert not _moved(1000, int(1000 * (1 + RSS_REPORT_SHARE)))
    assert _moved(1000, int(1000 * (1 + RSS_REPORT_SHARE)) + 1)
    assert _moved(1000, 800)
