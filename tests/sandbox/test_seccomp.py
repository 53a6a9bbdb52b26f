"""The seccomp filter: what it compiles to, how a launch loads it, and real attempts it stops.

The escape attempts run `tests/fixtures/escape/attempt.py` in real sandboxes
of both shapes; each is also run with the filter left out, and succeeds there
(or fails otherwise), so the filter is what makes it fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from vsm_mcp.sandbox import Host, SandboxProfile, plan_launch, seccomp
from vsm_mcp.sandbox import launch as launch_module
from vsm_mcp.sandbox.preamble import Preamble
from vsm_mcp.sandbox.seccomp import SECCOMP_FD, compile_filter, filter_file, seccomp_problem

ESCAPE = Path(__file__).resolve().parents[1] / "fixtures" / "escape" / "attempt.py"
#: Installs a BPF program (path in argv[1]) the way bwrap does, then runs the escape program.
LOADER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
code = open(sys.argv[1], "rb").read()
buf = ctypes.create_string_buffer(code, len(code))
prog = Prog(len(code) // 8, ctypes.addressof(buf))
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):  # NO_NEW_PRIVS, FILTER
    sys.exit(f"cannot load the filter: {os.strerror(ctypes.get_errno())}")
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""
EPERM, ENOSYS = {"errno": "EPERM"}, {"errno": "ENOSYS"}
OK = {"ok": True}
#: attempt -> (outcome under the filter, outcome without it), alike in both shapes (measured).
ESCAPES: dict[tuple[str, ...], tuple[dict[str, Any], dict[str, Any]]] = {
    ("unshare", "user"): (EPERM, OK),
    ("clone", "user"): (EPERM, OK),
    ("clone3", "user"): (ENOSYS, OK),
    ("int80_unshare",): (EPERM, OK),  # the i386 entry of the same call
    ("x32_unshare",): (EPERM, ENOSYS),  # this kernel has no x32 ABI; the filter answers first
    ("mount_tmpfs", "/tmp"): ({"unshare": EPERM, **EPERM}, {"unshare": OK, **OK}),
    ("ptrace_child",): (EPERM, OK),
    ("keyctl",): (EPERM, OK),
    ("perf_event_open",): (EPERM, OK),
    ("io_uring_setup",): (EPERM, OK),
    ("personality", "0x40000"): (EPERM, OK),  # ADDR_NO_RANDOMIZE
    ("bpf",): (EPERM, EPERM),  # unprivileged eBPF is off here anyway (kernel.unprivileged_bpf_disabled)
}
ORDINARY = {"fork_exit": 7, "threads": [0, 1, 2, 3], "subprocess": "child\n", "socketpair": "ping"}


# --- the filter itself ---------------------------------------------------------------------------


def test_the_filter_compiles_to_the_same_bpf_in_every_process() -> None:
    program = compile_filter()
    assert seccomp_problem() == ""
    assert len(program) % 8 == 0 and 100 < len(program) // 8 < 4096  # whole instructions, under BPF_MAXINSNS
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from vsm_mcp.sandbox.seccomp import compile_filter as c; "
            "sys.stdout.buffer.write(c())",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    assert fresh == program


def test_the_filter_file_is_named_by_its_content_and_readable_by_all(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "sandbox"
    path = filter_file(directory)
    assert path == directory / f"seccomp-{hashlib.sha256(compile_filter()).hexdigest()[:16]}.bpf"
    assert path.read_bytes() == compile_filter()
    assert (directory.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o755, 0o644)
    inode = path.stat().st_ino
    assert filter_file(directory) == path and path.stat().st_ino == inode  # written once
    path.write_bytes(b"tampered")
    assert filter_file(directory).read_bytes() == compile_filter()
    assert sorted(p.name for p in directory.iterdir()) == [path.name]  # no temporary left behind


def test_a_missing_binding_is_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # import fails as if not installed
    compile_filter.cache_clear()
    try:
        assert seccomp_problem().startswith("the seccomp binding is not installed (pip install pyseccomp)")
    finally:
        compile_filter.cache_clear()


def test_every_denied_call_is_known_to_libseccomp() -> None:
    import pyseccomp

    unknown = [
        n for n in seccomp.DENIED_SYSCALLS if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, n) == -1
    ]
    assert unknown == []
    assert len(set(seccomp.DENIED_SYSCALLS)) == len(seccomp.DENIED_SYSCALLS)


def _under_filter(program: Path, *attempt: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, str(program), str(ESCAPE), *attempt],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_the_loader_installs_what_it_is_given() -> None:
    """The loader of the direct tests reports a program the kernel refuses (an empty one)."""
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, os.devnull, str(ESCAPE), "whoami"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert (proc.returncode, proc.stderr.strip()) == (1, "cannot load the filter: Invalid argument")


def test_personality_passes_exactly_the_harmless_values(tmp_path: Path) -> None:
    program = filter_file(tmp_path)
    outcomes = {
        value: _under_filter(program, "personality", hex(value))
        for value in (
            *seccomp.PERSONALITY_ALLOWED,
            0x1,
            0x40000,
            0x400000,
            0x20009,
            0x80000000,
            0xFFFFFFFE,
            0x1_0000_0000,
            0x1_0000_0008,
        )
    }
    assert outcomes == {v: OK if v in seccomp.PERSONALITY_ALLOWED else EPERM for v in outcomes}


def test_clone_is_denied_for_each_namespace_and_fork_threads_and_programs_pass(tmp_path: Path) -> None:
    program = filter_file(tmp_path)
    for namespace in ("user", "mount", "pid", "net"):
        assert _under_filter(program, "clone", namespace) == EPERM, namespace
        assert _under_filter(program, "unshare", namespace) == EPERM, namespace
    assert _under_filter(program, "ordinary_work") == ORDINARY


# --- how a launch loads it -----------------------------------------------------------------------


def _host(seccomp_file: Path | None) -> Host:
    return Host(
        uid=1000,
        bwrap="/usr/bin/bwrap",
        bwrap_problem="",
        prlimit="/usr/bin/prlimit",
        setpriv="/usr/bin/setpriv",
        seccomp=seccomp_file,
        seccomp_problem="" if seccomp_file else "libseccomp cannot be loaded",
    )


def test_a_plan_opens_the_filter_on_its_descriptor_and_bwrap_reads_it_there() -> None:
    filter_path = Path("/state/sandbox/seccomp-0123456789abcdef.bpf")
    profile = SandboxProfile(prefix=Path("/state/servers/time"))
    cgroup = Path("/sys/fs/cgroup/pids/vsm/time/cgroup.procs")
    plan = plan_launch("/usr/bin/true", [], {}, profile, _host(filter_path), preamble=Preamble((cgroup,)))
    assert plan.argv[:2] == ("/bin/sh", "-c")
    words = plan.argv[2].split("; ")
    assert words[:3] == ["set -e", f"echo 0 > {cgroup}", f"exec 9< {filter_path}"]
    assert words[-1] == 'exec "$@"'
    assert SECCOMP_FD == 9
    bwrap = plan.argv[4:]
    assert bwrap[0] == "/usr/bin/bwrap"
    at = bwrap.index("--seccomp")
    assert bwrap[at + 1] == "9" and at < bwrap.index("--")
    assert (plan.sandboxed, plan.seccomp) == (True, True)
    assert plan.describe().startswith("sandboxed: /bin/sh -c")


def test_a_sandbox_without_the_filter_says_so() -> None:
    plan = plan_launch("/usr/bin/true", [], {}, SandboxProfile(prefix=Path("/srv/x")), _host(None))
    assert "--seccomp" not in plan.argv and plan.argv[0] == "/usr/bin/bwrap"
    assert (plan.sandboxed, plan.seccomp) == (True, False)
    assert plan.describe().startswith("sandboxed WITHOUT SECCOMP FILTER: /usr/bin/bwrap")


def test_the_preamble_opens_only_descriptors_sh_can_name() -> None:
    assert Preamble(read_fds=((9, Path("/f")),)).script() == 'set -e; exec 9< /f; unset PWD; exec "$@"'
    with pytest.raises(ValueError, match="descriptors 3 to 9 only"):
        Preamble(read_fds=((10, Path("/f")),)).script()


@pytest.mark.external
def test_detect_writes_the_filter_under_the_state_dir_and_probes_with_it(layout: Any) -> None:
    host = Host.detect(layout.state)
    if host.bwrap is None and shutil.which("bwrap") is None:
        pytest.skip(f"bubblewrap is not installed: {host.bwrap_problem}")
    assert (host.bwrap_problem, host.seccomp_problem) == ("", "")
    assert host.seccomp == filter_file(layout.state / "sandbox")
    assert (layout.state / "sandbox").stat().st_mode & 0o777 == 0o755


@pytest.mark.external
def test_a_filter_that_breaks_sandboxes_is_caught_by_the_probe(
    layout: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = layout.base / "kill-all.bpf"
    broken.write_bytes(struct.pack("<HBBI", 0x06, 0, 0, 0x80000000))  # ret SECCOMP_RET_KILL_PROCESS
    broken.chmod(0o644)
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    monkeypatch.setattr(launch_module, "filter_file", lambda directory: broken)
    host = Host.detect(layout.state)
    assert (host.bwrap, host.bwrap_problem, host.seccomp) == (shutil.which("bwrap"), "", None)
    assert host.seccomp_problem.startswith("the seccomp filter breaks a trivial sandbox here: ")
    plan = plan_launch("/usr/bin/true", [], {}, layout.profile(), host)
    assert (plan.sandboxed, plan.seccomp) == (True, False)


# --- real attempts in real sandboxes -------------------------------------------------------------


@pytest.mark.external
def test_escapes_through_denied_calls_fail_with_the_exact_errno(shape: Any, layout: Any) -> None:
    plan = shape.sandbox(layout.profile()).wrap(shape.python, [str(ESCAPE), "whoami"])
    assert plan.seccomp and "--seccomp" in plan.argv
    outcomes = {attempt: shape.attempt(layout.profile(), *attempt)[:2] for attempt in ESCAPES}
    assert outcomes == {attempt: (0, denied) for attempt, (denied, _) in ESCAPES.items()}


@pytest.mark.external
def test_without_the_filter_the_same_attempts_get_through(shape: Any, layout: Any) -> None:
    bare = replace(shape, host=replace(shape.host, seccomp=None, seccomp_problem="left out by the test"))
    outcomes = {attempt: bare.attempt(layout.profile(), *attempt)[:2] for attempt in ESCAPES}
    assert outcomes == {attempt: (0, allowed) for attempt, (_, allowed) in ESCAPES.items()}


@pytest.mark.external
def test_ordinary_work_passes_the_filter(shape: Any, layout: Any) -> None:
    code, report, stderr = shape.attempt(layout.profile(), "ordinary_work")
    assert (code, report) == (0, ORDINARY), stderr


@pytest.mark.external
def test_node_spawns_children_and_threads_under_the_filter(shape: Any, layout: Any) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the libuv paths (clone3, io_uring) cannot be checked")
    # Under 255 bytes: a longer argument makes `Sandbox.program_paths` fail (ENAMETOOLONG).
    script = (
        "const c=require('child_process'),{Worker:W}=require('worker_threads');"
        "const o=c.execSync('echo spawned')+'';"
        "require('fs').readFile(process.execPath,(e,d)=>"
        "new W('0',{eval:true}).on('exit',k=>console.log(JSON.stringify({o,e,n:d.length,k}))))"
    )
    plan = shape.sandbox(layout.profile()).wrap(node, ["-e", script])
    size = Path(os.path.realpath(node)).stat().st_size
    assert plan.seccomp
    proc = shape.run(plan)
    assert (proc.returncode, proc.stdout) == (0, f'{{"o":"spawned\\n","e":null,"n":{size},"k":0}}\n'), (
        shlex.join(plan.argv),
        proc.stderr,
    )
