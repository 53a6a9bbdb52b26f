"""`vsm-mcp doctor`'s bubblewrap verdict follows the ``[sandbox]`` policy when bubblewrap is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vsm_mcp.doctor import Verdict, check_bubblewrap, check_egress, check_servers


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with util-linux's prlimit and setpriv, and no bubblewrap."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("prlimit", "setpriv"):
        found = shutil.which(name)
        assert found is not None, f"{name} (util-linux) is needed"
        (tools / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))


@pytest.mark.usefixtures("no_bwrap")
def test_without_bwrap_require_and_prefer_fail_off_warns(tmp_path: Path) -> None:
    required = check_bubblewrap(tmp_path / "state", "require")
    assert (required.verdict, required.detail) == (
        Verdict.FAIL,
        'bwrap not found and [sandbox] mode = "require": stdio servers will not start',
    )
    preferred = check_bubblewrap(tmp_path / "state", "prefer")
    assert (preferred.verdict, preferred.detail) == (
        Verdict.FAIL,
        'bwrap not found: stdio servers would run UNSANDBOXED ([sandbox] mode = "prefer")',
    )
    off = check_bubblewrap(tmp_path / "state", "off")
    assert (off.verdict, off.detail) == (
        Verdict.WARN,
        'bwrap not found: stdio servers would run UNSANDBOXED ([sandbox] mode = "off")',
    )


@pytest.mark.external
def test_egress_is_probed_for_real_and_its_absence_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("bwrap") is None or shutil.which("slirp4netns") is None:
        pytest.skip("bubblewrap and slirp4netns are needed (apt-get install bubblewrap slirp4netns)")
    works = check_egress(tmp_path / "state")
    assert works.verdict == Verdict.OK, works.detail
    assert works.detail.startswith(f"{shutil.which('slirp4netns')}: own network namespace, reaches ")
    # As this host would be without slirp4netns (bwrap stays: the check must get to the probe).
    monkeypatch.setattr(
        "vsm_mcp.sandbox.launch.detect_egress",
        lambda: (None, "slirp4netns not found (apt-get install slirp4netns)"),
    )
    missing = check_egress(tmp_path / "state")
    assert (missing.verdict, missing.detail) == (
        Verdict.FAIL,
        "slirp4netns not found (apt-get install slirp4netns): servers with network = true will be refused",
    )
    assert check_egress(tmp_path / "state", "off").verdict == Verdict.OK


def test_servers_fail_while_a_running_gateway_reports_a_failed_one() -> None:
    live = {
        "at": 1000.0,
        "fleet": [
            {"name": "ok", "state": "ready", "last_error": ""},
            {"name": "time", "state": "failed", "last_error": "start failed: uvx: no such file or command"},
        ],
    }
    check = check_servers(live, now=1001.0)
    assert (check.verdict, check.detail, check.fix) == (
        Verdict.FAIL,
        "1 of 2 failed: time: start failed: uvx: no such file or command",
        "fix the cause, then vsm-mcp servers restart time (vsm-mcp servers logs time shows its stderr)",
    )
    assert check_servers({**live, "fleet": live["fleet"][:1]}, now=1001.0).verdict is Verdict.OK
    pulled = {"at": 1000.0, "fleet": [{"name": "rp", "state": "ready", "quarantine": "tool fetch changed"}]}
    quarantined = check_servers(pulled, now=1001.0)
    assert (quarantined.verdict, quarantined.detail, quarantined.fix) == (
        Verdict.FAIL,
        "1 quarantined: rp: tool fetch changed",
        "review the change: vsm-mcp servers approve rp",
    )
    stale = check_servers(live, now=1100.0)
    assert (stale.verdict, stale.detail) == (Verdict.OK, "no running gateway (its last report is 100 s old)")
    assert check_servers(None).verdict is Verdict.OK
