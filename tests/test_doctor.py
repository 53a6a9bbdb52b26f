"""`vsm-mcp doctor`'s bubblewrap verdict follows the ``[sandbox]`` policy when bubblewrap is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vsm_mcp.doctor import Verdict, check_bubblewrap


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
def test_require_without_bwrap_fails_prefer_warns(tmp_path: Path) -> None:
    required = check_bubblewrap(tmp_path / "state", "require")
    assert (required.verdict, required.detail) == (
        Verdict.FAIL,
        'bwrap not found and [sandbox] mode = "require": stdio servers will not start',
    )
    preferred = check_bubblewrap(tmp_path / "state", "prefer")
    assert (preferred.verdict, preferred.detail) == (
        Verdict.WARN,
        'bwrap not found: stdio servers would run UNSANDBOXED ([sandbox] mode = "prefer")',
    )
