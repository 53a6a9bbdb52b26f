"""Where the state directory and the settings file are, with the standard library only.

`vsm_mcp.settings.load_settings` reads the file these rules find. Invariant:
the settings file is ``--config FILE`` (which must exist), else
``<state-dir>/config.toml`` when it exists, where the state directory is the
flag, else ``VSM_MCP_STATE_DIR``, else the platform's user state directory.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs

from vsm_mcp.errors import ConfigError


def default_state_dir() -> Path:
    """The platform's user state directory for vsm-mcp."""
    return Path(platformdirs.user_state_dir("vsm-mcp"))


def settings_file(config: Path | None, state_dir: Path | str | None, env: Mapping[str, str]) -> Path | None:
    """The settings file in force (module docstring), None when there is none.

    Raises:
        ConfigError: ``config`` was given and does not exist.
    """
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"settings file {config} does not exist")
        return config
    where = state_dir or env.get("VSM_MCP_STATE_DIR") or default_state_dir()
    candidate = Path(where) / "config.toml"
    return candidate if candidate.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    """The settings file's table.

    Raises:
        ConfigError: it cannot be read or is not TOML.
    """
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"settings file {path} cannot be read: {exc.strerror}") from exc
