"""Limits and the privilege drop as argv stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsm_mcp.sandbox import Rlimits
from vsm_mcp.sandbox.limits import UID_BASE, UID_SPAN, derived_uid, launcher_stages, prlimit_argv


def test_prlimit_argv_for_the_defaults() -> None:
    assert prlimit_argv("/usr/bin/prlimit", Rlimits()) == [
        "/usr/bin/prlimit",
        "--data=4294967296",
        "--cpu=3600:3602",
        "--nproc=256",
        "--fsize=1073741824",
        "--nofile=4096",
        "--",
    ]


def test_prlimit_argv_sets_only_what_is_limited() -> None:
    limits = Rlimits(address_space_bytes=1 << 28, data_bytes=None, cpu_seconds=None, fsize_bytes=None)
    assert prlimit_argv("prlimit", limits, with_nproc=False) == [
        "prlimit",
        "--as=268435456",
        "--nofile=4096",
        "--",
    ]


def test_derived_uids_are_stable_unprivileged_and_distinct() -> None:
    a, b = derived_uid(Path("/s/servers/a")), derived_uid(Path("/s/servers/b"))
    assert a == derived_uid(Path("/s/servers/a"))
    assert a != b
    assert min(a, b) >= UID_BASE and max(a, b) < UID_BASE + UID_SPAN


def test_launcher_stages_drop_privileges_before_limiting() -> None:
    stages = launcher_stages(
        Rlimits(nofile=64, data_bytes=None, cpu_seconds=None, nproc=8, fsize_bytes=None),
        prlimit="/usr/bin/prlimit",
        setpriv="/usr/bin/setpriv",
        run_as=(200000001, 200000001),
        nproc_enforceable=True,
    )
    assert stages == [
        "/usr/bin/setpriv",
        "--reuid=200000001",
        "--regid=200000001",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--pdeathsig=keep",
        "--",
        "/usr/bin/prlimit",
        "--nproc=8",
        "--nofile=64",
        "--",
    ]
    with pytest.raises(ValueError, match="setpriv"):
        launcher_stages(Rlimits(), prlimit="p", setpriv=None, run_as=(1, 1), nproc_enforceable=True)
