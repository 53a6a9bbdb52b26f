"""`vsm-mcp serve --loop`: the event loop choice and its refusals."""

from __future__ import annotations

import importlib.util

import pytest

from vsm_mcp.cli.serve import loop_options
from vsm_mcp.errors import ConfigError

UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_is_always_plain_asyncio() -> None:
    assert loop_options("asyncio") == {"use_uvloop": False}


def test_auto_uses_uvloop_exactly_when_it_is_installed() -> None:
    assert loop_options("auto") == {"use_uvloop": UVLOOP}


def test_uvloop_is_used_when_installed_and_refused_in_one_line_when_not() -> None:
    if UVLOOP:
        assert loop_options("uvloop") == {"use_uvloop": True}
    else:
        with pytest.raises(ConfigError, match="pip install uvloop"):
            loop_options("uvloop")


def test_an_unknown_loop_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="auto, asyncio or uvloop, got 'trio'"):
        loop_options("trio")
