"""SandboxProfile and Rlimits: validation at the edge, measured defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vsm_mcp.sandbox import Rlimits, SandboxProfile


def test_defaults_are_the_measured_ones() -> None:
    limits = Rlimits()
    assert limits.model_dump() == {
        "address_space_bytes": None,
        "data_bytes": 4 * 1024**3,
        "cpu_seconds": 3600,
        "nproc": 256,
        "fsize_bytes": 1024**3,
        "nofile": 4096,
    }
    profile = SandboxProfile(prefix=Path("/srv/vsm/servers/time"))
    assert (profile.network, profile.unsandboxed_allowed, profile.env_pass) == (False, False, ())


def test_paths_must_be_absolute_and_are_normalised() -> None:
    with pytest.raises(ValidationError, match="must be absolute"):
        SandboxProfile(prefix=Path("servers/time"))
    profile = SandboxProfile(prefix=Path("/srv/vsm/x/../servers/time/"), data_dirs=(Path("/data//a"),))
    assert profile.prefix == Path("/srv/vsm/servers/time")
    assert profile.home == Path("/srv/vsm/servers/time/home")
    assert profile.writable == (Path("/srv/vsm/servers/time/home"), Path("/data/a"))


def test_profile_is_frozen_and_strict() -> None:
    profile = SandboxProfile(prefix=Path("/p"))
    with pytest.raises(ValidationError):
        profile.network = True  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        SandboxProfile(prefix=Path("/p"), netwrok=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Rlimits(nproc=0)
