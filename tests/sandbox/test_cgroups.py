"""Per-server limits with cgroups: detection on fake trees, then real limits in both gateway shapes.

Fake trees (plain directories in ``tmp_path`` plus a ``mountinfo`` and a
``cgroup`` file standing for ``/proc/self``) test where the groups go and what
is written, under v1 and v2 layouts, for any uid.

The real tests run a server through `Sandbox.wrap` under the ``root`` shape
(the host's own cgroups) and the ``user`` shape, for which `delegated` hands
a v1 subtree to uid 65534 the way systemd delegates one. Scale: the documented
case is 3 x 2 GiB under a 4 GiB server limit; here it is 3 x 160 MiB under
400 MiB (about a tenth), so the machine never holds more than 480 MiB for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from pydantic import ValidationError

from vsm_mcp.doctor import Check, Verdict, check_cgroups
from vsm_mcp.fleet.process import spawn
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.sandbox import (
    CgroupBackend,
    CgroupLimits,
    CgroupUsage,
    Host,
    Rlimits,
    Sandbox,
    SandboxProfile,
    detect_cgroups,
    plan_launch,
)
from vsm_mcp.sandbox import _cgroupfs as fs
from vsm_mcp.sandbox.cgroups import DELEGATE_HINT, CgroupVersion

from .conftest import ESCAPE, NOBODY, PYTHON

MIB = 1024**2
GIB = 1024**3
ME = os.geteuid()
#: A uid that is not this process's (for "not writable by another uid").
OTHER = NOBODY if ME != NOBODY else 4242
V1 = ("memory", "pids", "cpu", "cpuacct")
ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "tests" / "fixtures" / "escape" / "sandboxed_server.py"
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
#: A sandboxed python start and a bounded attempt; 60 s means something hung.
RUN_TIMEOUT_S = 60.0


# --- fake trees -------------------------------------------------------------------------------


def _fake_proc(tmp: Path, mounts: list[str], cgroup: list[str]) -> Path:
    proc = tmp / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "mountinfo").write_text("".join(f"{n} 1 0:{n} {m}\n" for n, m in enumerate(mounts, 30)))
    (proc / "cgroup").write_text("".join(f"{line}\n" for line in cgroup))
    return proc


def fake_v1(
    tmp: Path, own: str = "/job", controllers: tuple[str, ...] = V1, ro: bool = False, unified: str = ""
) -> Path:
    """One v1 hierarchy per controller at ``tmp/cg/<c>``, the gateway in ``own`` in each; with
    ``unified``, also a cgroup2 at ``tmp/cg/unified`` offering those controllers (a hybrid host)."""
    mounts, cgroup = [], []
    for n, name in enumerate(controllers, 1):
        point = tmp / "cg" / name
        (point / own.lstrip("/")).mkdir(parents=True)
        mounts.append(f"/ {point} {'ro' if ro else 'rw'},nosuid shared:{n} - cgroup cgroup rw,{name}")
        cgroup.append(f"{n}:{name}:{own}")
    if unified:
        point = tmp / "cg" / "unified"
        point.mkdir(parents=True)
        (point / "cgroup.controllers").write_text(unified + "\n")
        mounts.append(f"/ {point} rw,nosuid - cgroup2 cgroup2 rw")
        cgroup.append("0::/")
    return _fake_proc(tmp, mounts, cgroup)


def fake_v2(tmp: Path, own: str = "/user.slice/gw.scope", procs: tuple[int, ...] = ()) -> tuple[Path, Path]:
    """A pure v2 host at ``tmp/cg``; the gateway's cgroup ``own`` offers memory, pids and cpu and holds
    ``procs`` (default: this process). Returns the proc dir and the gateway's cgroup directory."""
    point = tmp / "cg"
    point.mkdir(parents=True)
    group = point / own.lstrip("/")
    group.mkdir(parents=True, exist_ok=True)
    for directory in {point, group}:
        (directory / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
        (directory / "cgroup.subtree_control").write_text("")
        (directory / "cgroup.procs").write_text("")
    if group != point:
        (group / "cgroup.type").write_text("domain\n")  # the real root has none
    (group / "cgroup.procs").write_text("".join(f"{p}\n" for p in (procs or (os.getpid(),))))
    return _fake_proc(tmp, [f"/ {point} rw,nosuid - cgroup2 cgroup2 rw"], [f"0::{own}"]), group


def test_v1_groups_go_under_the_gateways_own_cgroup_in_each_hierarchy(tmp_path: Path) -> None:
    backend = detect_cgroups(ME, proc=fake_v1(tmp_path), gateway_id="7-9")
    cg = tmp_path / "cg"
    assert backend.version is CgroupVersion.V1
    assert backend.enforced == {"memory", "pids", "cpu"}
    assert backend.bases == {name: cg / name / "job" for name in V1}
    assert backend.parents() == tuple(cg / name / "job/vsm-mcp/7-9" for name in V1)
    assert backend.problem == ""
    places = ", ".join(f"{cg / name}/job/vsm-mcp" for name in V1)
    assert backend.describe() == f"cgroup v1: memory, pids, cpu enforced per server under {places}"


def test_a_missing_hierarchy_leaves_the_others_enforced_and_says_which(tmp_path: Path) -> None:
    backend = detect_cgroups(ME, proc=fake_v1(tmp_path, controllers=("memory", "pids")), gateway_id="7-9")
    assert (backend.version, backend.enforced) == (CgroupVersion.V1, {"memory", "pids"})
    assert backend.problem == "cgroup cpu limit not enforced: no cpu hierarchy mounted"
    assert backend.describe().endswith("; cgroup cpu limit not enforced: no cpu hierarchy mounted")


def test_another_uid_cannot_use_a_cgroup_it_may_not_write(tmp_path: Path) -> None:
    backend = detect_cgroups(OTHER, proc=fake_v1(tmp_path), gateway_id="7-9")
    cg = tmp_path / "cg"
    assert (backend.version, backend.enforced, backend.bases) == (CgroupVersion.NONE, frozenset(), {})
    assert backend.problem == (
        "cgroup limits not enforced: cgroup v2: no cgroup2 hierarchy mounted; cgroup v1: "
        f"{cg}/memory/job is not writable by uid {OTHER}; {cg}/pids/job is not writable by uid {OTHER}; "
        f"{cg}/cpu/job is not writable by uid {OTHER}"
    )
    assert backend.describe() == backend.problem
    with pytest.raises(ValueError, match="no cgroup backend"):
        backend.server_group("probe")


@pytest.mark.skipif(ME != 0, reason="handing a directory to another uid needs root")
def test_a_delegated_directory_is_writable_by_its_uid(tmp_path: Path) -> None:
    proc = fake_v1(tmp_path)
    for name in V1:
        os.chown(tmp_path / "cg" / name / "job", NOBODY, NOBODY)
    backend = detect_cgroups(NOBODY, proc=proc, gateway_id="7-9")
    assert (backend.version, backend.enforced, backend.uid) == (
        CgroupVersion.V1,
        {"memory", "pids", "cpu"},
        NOBODY,
    )


def test_a_read_only_cgroup_mount_is_not_used(tmp_path: Path) -> None:
    backend = detect_cgroups(ME, proc=fake_v1(tmp_path, controllers=("memory",), ro=True), gateway_id="7-9")
    assert backend.version is CgroupVersion.NONE
    assert f"{tmp_path}/cg/memory is mounted read-only" in backend.problem


def test_a_hybrid_hosts_empty_cgroup2_falls_back_to_v1(tmp_path: Path) -> None:
    # This machine's layout: a cgroup2 at /sys/fs/cgroup/unified whose controllers are all in v1.
    proc = fake_v1(tmp_path, unified="hugetlb")
    assert detect_cgroups(ME, proc=proc, gateway_id="7-9").version is CgroupVersion.V1
    refused = detect_cgroups(OTHER, proc=proc, gateway_id="7-9")
    assert refused.problem.startswith(
        f"cgroup limits not enforced: cgroup v2: {tmp_path}/cg/unified offers none of memory, pids, cpu "
        "(its controllers: hugetlb; on a hybrid host they are cgroup v1); cgroup v1: "
    )


def test_v2_delegated_scope_the_gateway_moves_to_a_leaf_and_limits_are_written(tmp_path: Path) -> None:
    proc, scope = fake_v2(tmp_path)
    backend = detect_cgroups(ME, proc=proc, gateway_id="7-9")
    assert (backend.version, backend.enforced, backend.problem) == (
        CgroupVersion.V2,
        {"memory", "pids", "cpu"},
        "",
    )
    assert set(backend.bases.values()) == {scope}
    group = backend.server_group("time")
    group.create(CgroupLimits(memory_bytes=400 * MIB, pids=64, cpu_cores=0.5))
    # No internal processes: the gateway left the scope for a leaf, then the scope enabled the
    # controllers for its children, down to this gateway's group.
    assert (scope / "vsm-mcp-gateway" / "cgroup.procs").read_text() == str(os.getpid())
    for level in (scope, scope / "vsm-mcp", scope / "vsm-mcp" / "7-9"):
        assert (level / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    server = scope / "vsm-mcp" / "7-9" / group.key
    assert group.directories == (server,)
    assert group.procs_files == (server / "cgroup.procs",)
    assert {f.name: f.read_text() for f in server.iterdir()} == {
        "memory.max": str(400 * MIB),
        "pids.max": "64",
        "cpu.max": "50000 100000",
    }  # no memory.swap.max: this (fake) kernel has no swap accounting, so none is written


def test_v2_unlimited_values_are_written_as_max(tmp_path: Path) -> None:
    proc, _ = fake_v2(tmp_path)
    group = detect_cgroups(ME, proc=proc, gateway_id="7-9").server_group("time")
    group.create(CgroupLimits(memory_bytes=None, pids=None, cpu_cores=None))
    server = group.directories[0]
    assert [(server / n).read_text() for n in ("memory.max", "pids.max", "cpu.max")] == [
        "max",
        "max",
        "max 100000",
    ]


def test_v2_a_cgroup_shared_with_other_processes_is_refused(tmp_path: Path) -> None:
    proc, scope = fake_v2(tmp_path, procs=(os.getpid(), 1))
    backend = detect_cgroups(ME, proc=proc, gateway_id="7-9")
    assert backend.version is CgroupVersion.NONE
    assert backend.problem.startswith(
        f"cgroup limits not enforced: cgroup v2: {scope} holds other processes (1), so it cannot enable "
        "controllers for child groups (no internal processes): start the gateway in a cgroup of its own"
    )


def test_v2_a_scope_not_delegated_to_the_uid_is_not_used(tmp_path: Path) -> None:
    proc, scope = fake_v2(tmp_path)
    backend = detect_cgroups(OTHER, proc=proc, gateway_id="7-9")
    assert backend.problem == (
        f"cgroup limits not enforced: cgroup v2: {scope} is not delegated to uid {OTHER} (not writable); "
        "cgroup v1: no memory hierarchy mounted; no pids hierarchy mounted; no cpu hierarchy mounted"
    )


def test_v2_a_gateway_already_in_its_leaf_keeps_the_scope_as_base(tmp_path: Path) -> None:
    proc, scope = fake_v2(tmp_path)
    (proc / "cgroup").write_text("0::/user.slice/gw.scope/vsm-mcp-gateway\n")
    assert set(detect_cgroups(ME, proc=proc, gateway_id="7-9").bases.values()) == {scope}


def test_v2_the_real_root_enables_controllers_without_moving_anyone(tmp_path: Path) -> None:
    proc, root = fake_v2(tmp_path, own="/", procs=(1, os.getpid()))
    backend = detect_cgroups(ME, proc=proc, gateway_id="7-9")
    assert (backend.version, set(backend.bases.values())) == (CgroupVersion.V2, {root})
    backend.server_group("time").create(CgroupLimits())
    assert not (root / "vsm-mcp-gateway").exists()
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"


def test_v1_limits_are_written_in_each_hierarchy(tmp_path: Path) -> None:
    backend = detect_cgroups(ME, proc=fake_v1(tmp_path), gateway_id="7-9")
    group = backend.server_group("my server!")
    assert group.key.startswith("my_server_-")
    group.create(CgroupLimits(memory_bytes=400 * MIB, pids=100, cpu_cores=1.5))
    dirs = group.dirs
    assert dirs == {n: tmp_path / "cg" / n / "job/vsm-mcp/7-9" / group.key for n in V1}
    assert {n: sorted(f.name for f in d.iterdir()) for n, d in dirs.items()} == {
        "memory": ["memory.limit_in_bytes"],  # no memsw file in the fake: swap accounting is off
        "pids": ["pids.max"],
        "cpu": ["cpu.cfs_period_us", "cpu.cfs_quota_us"],
        "cpuacct": [],  # accounting only
    }
    assert (dirs["memory"] / "memory.limit_in_bytes").read_text() == str(400 * MIB)
    assert (dirs["pids"] / "pids.max").read_text() == "100"
    assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "150000"
    assert (dirs["cpu"] / "cpu.cfs_period_us").read_text() == "100000"


def test_each_launch_has_a_group_of_its_own(tmp_path: Path) -> None:
    backend = detect_cgroups(ME, proc=fake_v1(tmp_path), gateway_id="7-9")
    first, second = backend.server_group("time"), backend.server_group("time")
    assert first.key != second.key
    assert {first.key.rsplit("-", 1)[0], second.key.rsplit("-", 1)[0]} == {"time"}


def test_usage_reads_the_counters_of_either_version(tmp_path: Path) -> None:
    v1 = detect_cgroups(ME, proc=fake_v1(tmp_path / "a"), gateway_id="7-9").server_group("s")
    v1.create(CgroupLimits())
    dirs = v1.dirs
    (dirs["memory"] / "memory.usage_in_bytes").write_text("1048576\n")
    (dirs["memory"] / "memory.max_usage_in_bytes").write_text("4194304\n")
    (dirs["pids"] / "pids.current").write_text("3\n")
    (dirs["cpuacct"] / "cpuacct.usage").write_text("2500000000\n")
    assert v1.usage() == CgroupUsage(1048576, 4194304, 3, 2.5)
    proc, _ = fake_v2(tmp_path / "b")
    v2 = detect_cgroups(ME, proc=proc, gateway_id="7-9").server_group("s")
    v2.create(CgroupLimits())
    group = v2.directories[0]
    (group / "memory.current").write_text("2097152\n")
    (group / "pids.current").write_text("5\n")
    (group / "cpu.stat").write_text("usage_usec 1250000\nuser_usec 1000000\nsystem_usec 250000\n")
    assert v2.usage() == CgroupUsage(2097152, None, 5, 1.25)  # no memory.peak before Linux 5.19


def test_the_empty_groups_of_a_dead_gateway_are_swept(tmp_path: Path) -> None:
    proc = fake_v1(tmp_path, controllers=("memory",))
    root = tmp_path / "cg/memory/job/vsm-mcp"
    dead = root / f"{os.getpid()}-0" / "time-1"  # this pid, another start time: a gateway that is gone
    alive = root / fs.gateway_id(1) / "time-1"  # pid 1 is running
    for group in (dead, alive):
        group.mkdir(parents=True)
    detect_cgroups(ME, proc=proc, gateway_id="7-9").server_group("time").create(CgroupLimits())
    assert not dead.parent.exists()
    assert alive.is_dir()


def test_limits_defaults_and_bounds() -> None:
    assert CgroupLimits() == CgroupLimits(memory_bytes=4 * GIB, pids=512, cpu_cores=1.0)
    assert SandboxProfile(prefix=Path("/srv/s")).cgroup == CgroupLimits()
    with pytest.raises(ValidationError):
        CgroupLimits(cpu_cores=0.001)  # below the kernel's 1 ms per 100 ms
    with pytest.raises(ValidationError):
        CgroupLimits(pids=0)


def _host(cgroups: CgroupBackend, uid: int = 1000) -> Host:
    return Host(
        uid=uid,
        bwrap=None,
        bwrap_problem="no bwrap",
        prlimit="/usr/bin/prlimit",
        setpriv=None,
        cgroups=cgroups,
    )


def test_the_preamble_joins_every_hierarchy_before_anything_runs(tmp_path: Path) -> None:
    # A gateway of uid 1000 (detected as this uid, which owns the fake tree).
    backend = replace(detect_cgroups(ME, proc=fake_v1(tmp_path), gateway_id="7-9"), uid=1000)
    group = backend.server_group("time")
    profile = SandboxProfile(prefix=Path("/srv/time"), unsandboxed_allowed=True)
    plan = plan_launch("/usr/bin/server", [], {}, profile, _host(backend), cgroup=group)
    joins = "; ".join(f"echo 0 > {d}/cgroup.procs" for d in group.directories)
    shell, flag, script, argv0, first = plan.argv[:5]
    assert (shell, flag, argv0, first) == ("/bin/sh", "-c", "vsm-mcp-launch", "/usr/bin/prlimit")
    assert script.startswith(f"set -e; {joins}; ")  # every hierarchy joined before anything else
    assert script.endswith('exec "$@"')
    assert (plan.cgroup, plan.cgroup_problem) == (group, "")
    assert "not enforced" not in plan.describe()


def test_without_a_backend_the_plan_says_limits_are_not_enforced(tmp_path: Path) -> None:
    backend = detect_cgroups(OTHER, proc=fake_v1(tmp_path), gateway_id="7-9")
    host = _host(backend, uid=OTHER)
    profile = SandboxProfile(prefix=Path("/srv/time"), unsandboxed_allowed=True)
    assert Sandbox(profile, host).cgroup() is None
    plan = plan_launch("/usr/bin/server", [], {}, profile, host)
    assert plan.argv[0] == "/usr/bin/prlimit"  # rlimits only, and no preamble
    assert (plan.cgroup, plan.cgroup_problem) == (None, backend.problem)
    assert plan.describe().endswith(f"[{backend.problem}]")


def test_a_backend_detected_for_another_uid_is_not_used(tmp_path: Path) -> None:
    backend = detect_cgroups(ME, proc=fake_v1(tmp_path), gateway_id="7-9")
    host = _host(backend, uid=ME + 1)
    profile = SandboxProfile(prefix=Path("/srv/time"), unsandboxed_allowed=True)
    assert Sandbox(profile, host).cgroup() is None
    plan = plan_launch("/usr/bin/server", [], {}, profile, host)
    assert (
        plan.cgroup_problem == f"cgroup limits not enforced: cgroups were detected for uid {ME}, not {ME + 1}"
    )


def test_doctor_says_which_limits_hold(tmp_path: Path) -> None:
    full = detect_cgroups(ME, proc=fake_v1(tmp_path / "a"), gateway_id="7-9")
    assert check_cgroups(full) == Check("cgroups", Verdict.OK, full.describe())
    partial = detect_cgroups(ME, proc=fake_v1(tmp_path / "b", controllers=("memory",)), gateway_id="7-9")
    check = check_cgroups(partial)
    assert (check.verdict, check.fix) == (Verdict.WARN, DELEGATE_HINT)
    assert check.detail == (
        f"cgroup v1: memory enforced per server under {tmp_path}/b/cg/memory/job/vsm-mcp; "
        "cgroup pids, cpu limits not enforced: no pids hierarchy mounted; no cpu hierarchy mounted "
        "(per-process rlimits only for those)"
    )
    none = check_cgroups(detect_cgroups(OTHER, proc=fake_v1(tmp_path / "c"), gateway_id="7-9"))
    assert none.verdict is Verdict.WARN
    assert none.detail.startswith("cgroup limits not enforced: ")
    assert "systemd-run --user --scope -p Delegate=yes" in none.fix


# --- real cgroups -----------------------------------------------------------------------------


def _remove_tree(top: Path) -> None:
    """Kill everything in ``top``'s cgroup tree, then remove its groups, deepest first."""
    deadline = time.monotonic() + 5.0
    while top.exists() and time.monotonic() < deadline:
        for directory, _, _ in os.walk(top, topdown=False):
            for pid in fs.read_pids(Path(directory) / "cgroup.procs"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        if top.exists():
            time.sleep(0.01)  # killed processes leave their group asynchronously; no event for it
    assert not top.exists(), f"cgroup {top} could not be removed"


@pytest.fixture
def delegated(tmp_path: Path) -> Iterator[CgroupBackend]:
    """A cgroup v1 subtree delegated to uid 65534 as systemd delegates one (the directory and its
    ``cgroup.procs`` and ``tasks`` chowned), in each hierarchy; the backend a uid-65534 gateway
    living there detects (its ``/proc/self/cgroup`` names that subtree). Removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("delegating a cgroup subtree to another uid needs root")
    mine = detect_cgroups(0)
    if mine.version is not CgroupVersion.V1:
        pytest.skip(f"this fixture delegates cgroup v1 subtrees; this host has: {mine.describe()}")
    name = f"vsm-test-delegated-{uuid.uuid4().hex[:8]}"
    made: list[Path] = []
    try:
        for base in dict.fromkeys(mine.bases.values()):
            subtree = base / name
            subtree.mkdir()
            made.append(subtree)
            for path in (subtree, subtree / "cgroup.procs", subtree / "tasks"):
                os.chown(path, NOBODY, NOBODY)
        lines = []
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            number, controllers, path = line.split(":", 2)
            if any(c in mine.bases for c in controllers.split(",")):
                path = f"{path.rstrip('/')}/{name}"
            lines.append(f"{number}:{controllers}:{path}")
        proc = tmp_path / "proc"
        proc.mkdir()
        shutil.copy("/proc/self/mountinfo", proc / "mountinfo")
        (proc / "cgroup").write_text("\n".join(lines) + "\n")
        backend = detect_cgroups(NOBODY, proc=proc)
        assert backend.enforced == {"memory", "pids", "cpu"}, backend.describe()
        yield backend
    finally:
        for subtree in made:
            _remove_tree(subtree)


@pytest.fixture
def cg_shape(shape: Any, request: pytest.FixtureRequest) -> Any:
    """The ``shape`` with cgroups: the root gateway's own, or a subtree delegated to uid 65534."""
    if shape.name == "user" and shape.owner is not None:
        backend = request.getfixturevalue("delegated")
        return replace(shape, host=replace(shape.host, cgroups=backend))
    if shape.host.cgroups.enforced != {"memory", "pids", "cpu"}:
        pytest.skip(f"this gateway has no cgroups here: {shape.host.cgroups.describe()}")
    return shape


def _run(shape: Any, profile: SandboxProfile, *args: str) -> tuple[dict[str, Any], CgroupUsage]:
    """Run one attempt in a cgroup (removed afterwards); its report and the group's usage at its end."""
    plan = shape.sandbox(profile).wrap(shape.python, [str(ESCAPE), *args])
    assert plan.cgroup is not None, plan.cgroup_problem
    try:
        proc = shape.run(plan, timeout=RUN_TIMEOUT_S)
        assert proc.returncode == 0, proc.stderr
        usage = plan.cgroup.usage()
    finally:
        plan.cgroup.remove()
    assert not any(d.exists() for d in plan.cgroup.directories)
    return json.loads(proc.stdout), usage


@pytest.mark.external
def test_three_children_together_stay_under_the_server_memory_limit(cg_shape: Any, layout: Any) -> None:
    # Scaled: 3 x 160 MiB under 400 MiB (module docstring). Two hogs and four pythons fit, three do not.
    limit = 400 * MIB
    profile = SandboxProfile(prefix=layout.prefix, cgroup=CgroupLimits(memory_bytes=limit))
    report, usage = _run(cg_shape, profile, "hogs", "3", str(160 * MIB))
    # Each child alone is far under RLIMIT_DATA (4 GiB): only the server's limit stops them.
    assert report == {"ended": ["SIGKILL", "exit 0", "exit 0"]}  # the OOM killer took one child
    assert usage.memory_peak_bytes is not None
    assert 2 * 160 * MIB < usage.memory_peak_bytes <= limit


@pytest.mark.external
def test_a_fork_bomb_stops_at_the_server_pids_limit(cg_shape: Any, layout: Any) -> None:
    profile = SandboxProfile(prefix=layout.prefix, limits=Rlimits(nproc=None), cgroup=CgroupLimits(pids=100))
    report, _ = _run(cg_shape, profile, "forkbomb", "2000")
    # 100 in the group: bwrap outside, the sandbox's init, the python, 97 children.
    assert report == {"forked": 97, "procs": 99, "errno": "EAGAIN"}


@pytest.mark.external
def test_a_cpu_spin_is_held_to_the_server_quota(cg_shape: Any, layout: Any) -> None:
    profile = SandboxProfile(prefix=layout.prefix, cgroup=CgroupLimits(cpu_cores=0.5))
    report, usage = _run(cg_shape, profile, "burn", "2")
    # Unlimited, one spinning thread gets a whole core (ratio ~1.0); the quota allows half of one
    # (measured 0.50 on an idle machine; the lower bound leaves room for a busy CI box).
    assert 0.25 <= report["cpu_s"] / report["wall_s"] <= 0.55, report
    assert usage.cpu_seconds is not None
    assert report["cpu_s"] <= usage.cpu_seconds <= report["cpu_s"] + 0.5  # + python's start


@pytest.mark.external
def test_removing_the_group_kills_what_is_still_running(cg_shape: Any, layout: Any) -> None:
    script = "import time\nprint('ready', flush=True)\ntime.sleep(120)\n"
    plan = cg_shape.sandbox(SandboxProfile(prefix=layout.prefix)).wrap(cg_shape.python, ["-c", script])
    assert plan.cgroup is not None
    with subprocess.Popen(**cg_shape.popen_args(plan), stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            members = plan.cgroup.pids()
            assert proc.pid in members and len(members) == 3  # bwrap, the sandbox's init, the server
            plan.cgroup.remove()
            assert proc.wait(timeout=RUN_TIMEOUT_S) == -signal.SIGKILL
        finally:
            proc.kill()
            plan.cgroup.remove()
    assert not any(d.exists() for d in plan.cgroup.directories)
    assert plan.cgroup.pids() == set()


@pytest.mark.external
def test_without_delegation_the_plan_says_not_enforced_and_the_server_runs(shape: Any, layout: Any) -> None:
    if shape.name == "root":
        pytest.skip("a root gateway always writes the cgroups here; this is about a gateway that cannot")
    if shape.host.cgroups.enforced:
        pytest.skip(f"this uid has a delegated cgroup here: {shape.host.cgroups.describe()}")
    profile = layout.profile()
    plan = shape.sandbox(profile).wrap(shape.python, [str(ESCAPE), "whoami"])
    assert plan.cgroup is None
    assert plan.cgroup_problem == shape.host.cgroups.problem
    assert plan.cgroup_problem.startswith("cgroup limits not enforced: ")
    if os.geteuid() == 0:  # as root the user shape is uid 65534: nothing here is delegated to it
        assert f"is not writable by uid {NOBODY}" in plan.cgroup_problem
    assert plan.describe().endswith(f"[{plan.cgroup_problem}]")
    proc = shape.run(plan)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["uid"] == (shape.owner if shape.owner is not None else os.geteuid())


@pytest.mark.external
@pytest.mark.anyio
async def test_the_fleet_removes_the_group_when_the_server_stops(native: Any, layout: Any) -> None:
    if not native.host.cgroups.enforced:
        pytest.skip(f"no cgroups for this gateway: {native.host.cgroups.describe()}")
    plan = native.sandbox(layout.profile()).wrap(sys.executable, [str(SERVER)])
    assert plan.cgroup is not None
    spec = ServerSpec(name="sandboxed", command=plan.argv[0], args=list(plan.argv[1:]))
    with anyio.fail_after(RUN_TIMEOUT_S):
        async with spawn(spec, plan=plan) as (read, write, child), ClientSession(read, write) as session:
            await session.initialize()  # the server answers: it is running, inside its group
            assert child.pid in plan.cgroup.pids()
            assert all(d.is_dir() for d in plan.cgroup.directories)
    assert not any(d.exists() for d in plan.cgroup.directories)


GATEWAY_65534 = """
import json, os, sys
from pathlib import Path
from vsm_mcp.sandbox import CgroupLimits, detect_cgroups
for procs in sys.argv[1:]:  # where systemd would have started it: its delegated subtree
    Path(procs).write_text("0")
backend = detect_cgroups()
group = backend.server_group("probe")
group.create(CgroupLimits(memory_bytes=64 * 1024**2, pids=16, cpu_cores=0.25))
made = {c: d.stat().st_uid for c, d in group.dirs.items()}
pids_max = (group.dirs["pids"] / "pids.max").read_text().strip()
group.remove()
print(json.dumps({"uid": os.getuid(), "version": str(backend.version), "enforced": sorted(backend.enforced),
                  "bases": {c: str(p) for c, p in backend.bases.items()}, "made_by": made,
                  "pids_max": pids_max, "removed": not any(d.exists() for d in group.directories)}))
"""


@pytest.mark.external
def test_a_uid_65534_gateway_in_a_delegated_subtree_finds_it_and_manages_its_groups(
    delegated: CgroupBackend,
) -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv is not None
    joins = [str(base / "cgroup.procs") for base in dict.fromkeys(delegated.bases.values())]
    proc = subprocess.run(
        [
            setpriv,
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "--",
            PYTHON,
            "-c",
            GATEWAY_65534,
            *joins,
        ],
        env={"PYTHONPATH": f"{ROOT / 'src'}:{SITE_PACKAGES}", "PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen == {
        "uid": NOBODY,
        "version": "v1",
        "enforced": ["cpu", "memory", "pids"],
        "bases": {c: str(p) for c, p in delegated.bases.items()},
        "made_by": dict.fromkeys(delegated.bases, NOBODY),
        "pids_max": "16",
        "removed": True,
    }
