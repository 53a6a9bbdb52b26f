"""Where the state directory and the settings file are, with the standard library only.

`vsm_mcp.settings.load_settings` reads the file these rules find. Invariant:
the settings file is ``--config FILE`` (which must exist), else
``<state-dir>/config.toml`` when it exists, where the state directory is the
flag, else ``VSM_MCP_STATE_DIR``, else the platform's user state directory.
`cached` keeps the few values a quick command needs, validated once per
distinct input.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tomllib
from collections.abc import Callable, Mapping
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


#: Variables the platform's default directories derive from.
_DIRS_ENV = frozenset({"HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"})
#: Bumped when what the cache holds changes meaning.
_CACHE_VERSION = 1


def _cache_path(config: Path | None, state_dir: Path | None, env: Mapping[str, str]) -> Path:
    """Where the validated values for exactly these inputs are kept (module docstring of `cached`)."""
    file = settings_file(config, state_dir, env)
    key = {
        "v": _CACHE_VERSION,
        "config": str(config) if config else None,
        "state_dir": str(state_dir) if state_dir else None,
        # Every variable the settings read, and those the default state directory derives from.
        "env": sorted((k, v) for k, v in env.items() if k.startswith("VSM_MCP_") or k in _DIRS_ENV),
        "file": str(file) if file else None,
        "content": hashlib.sha256(file.read_bytes()).hexdigest() if file else None,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return Path(platformdirs.user_cache_dir("vsm-mcp")) / f"settings-{digest}.json"


def cached(
    config: Path | None, state_dir: Path | None, validate: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Values of the settings ``validate`` derives, validated once per distinct input.

    A command that needs only a few settings (``status``) must still refuse a bad settings file,
    but need not import the validator on every run: the values are kept in the user's cache
    directory under a digest of everything they derive from (the flags, every ``VSM_MCP_*``
    variable, ``HOME`` and the XDG directories, the settings file's path and content). Any change is a miss: ``validate`` runs
    (and raises on a bad setting, which is never cached). An unreadable cache is a miss.

    Raises:
        ConfigError: ``validate`` refused the settings, or a named settings file does not exist.
    """
    path = _cache_path(config, state_dir, os.environ)
    with contextlib.suppress(OSError, ValueError):
        kept: Any = json.loads(path.read_text())
        if isinstance(kept, dict):
            return kept
    values = validate()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(values))
        temporary.chmod(0o600)
        os.replace(temporary, path)
    return values
