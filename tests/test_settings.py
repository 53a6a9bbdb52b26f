"""Settings: the ``[sandbox]`` section and per-server sandbox tables from the TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsm_mcp.errors import ConfigError
from vsm_mcp.settings import load_settings


def test_sandbox_defaults_are_prefer_with_network_and_prefixes_in_the_state_dir(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    policy = settings.sandbox_policy()
    assert (policy.mode, policy.network) == ("prefer", True)
    assert (policy.servers_dir, policy.state_dir, policy.host) == (tmp_path / "servers", tmp_path, None)


def test_a_server_s_sandbox_table_and_the_section_come_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[sandbox]\nmode = "require"\nnetwork = false\n'
        '[servers.files]\ncommand = "npx"\n'
        '[servers.files.sandbox]\nnetwork = true\ndata_dirs = ["/srv/docs"]\n'
    )
    settings = load_settings(config, state_dir=tmp_path)
    assert (settings.sandbox.mode, settings.sandbox.network) == ("require", False)
    own = settings.servers["files"].sandbox
    assert own is not None
    assert (own.mode, own.network, [str(p) for p in own.data_dirs]) == (None, True, ["/srv/docs"])
    monkeypatch.setenv("VSM_MCP_SANDBOX__MODE", "off")
    assert load_settings(config, state_dir=tmp_path).sandbox.mode == "off"


def test_an_unknown_sandbox_mode_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[sandbox]\nmode = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"sandbox\.mode: Input should be 'require', 'prefer' or 'off'"):
        load_settings(config, state_dir=tmp_path)
