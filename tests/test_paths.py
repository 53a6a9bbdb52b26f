"""Settings validated once per distinct input: a hit skips the validator, any change is a miss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vsm_mcp.errors import ConfigError
from vsm_mcp.paths import cached


def test_values_are_validated_once_per_input_and_any_change_validates_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    state = tmp_path / "state"
    state.mkdir()
    runs: list[int] = []

    def validate() -> dict[str, Any]:
        runs.append(1)
        return {"state_dir": str(state), "max_age_s": 60.0 * len(runs)}

    assert cached(None, state, validate) == {"state_dir": str(state), "max_age_s": 60.0}
    assert cached(None, state, validate)["max_age_s"] == 60.0  # a hit: not validated again
    assert len(runs) == 1
    (state / "config.toml").write_text("[variety]\nmax_age_s = 5\n")  # the file appears
    assert cached(None, state, validate)["max_age_s"] == 120.0
    (state / "config.toml").write_text("[variety]\nmax_age_s = 6\n")  # its content changes
    cached(None, state, validate)
    monkeypatch.setenv("VSM_MCP_VARIETY__MAX_AGE_S", "7")  # an environment variable changes
    cached(None, state, validate)
    assert len(runs) == 4
    cached(None, state, validate)
    assert len(runs) == 4


def test_a_refused_setting_is_never_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def refuse() -> dict[str, Any]:
        raise ConfigError("invalid setting variety.max_age_s")

    for _ in range(2):
        with pytest.raises(ConfigError, match=r"variety\.max_age_s"):
            cached(None, tmp_path, refuse)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("settings-*.json"))
