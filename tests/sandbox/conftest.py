"""Real sandboxes for escape tests: a state directory with a secret, two server prefixes, two shapes.

Shapes (see `vsm_mcp.sandbox.bwrap`):

* ``root``: the gateway is root; bwrap makes the mounts and ``setpriv`` drops
  the server to its own uid. Needs root.
* ``user``: the gateway is an ordinary user; bwrap creates a user namespace.
  As root, the tests become uid 65534 with ``setpriv`` before bwrap, exactly
  as an unprivileged gateway would start it.

bwrap present but unable to sandbox is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from vsm_mcp.sandbox import Host, LaunchPlan, Rlimits, Sandbox, SandboxProfile, detect_cgroups

ESCAPE = Path(__file__).resolve().parents[1] / "fixtures" / "escape" / "attempt.py"
#: The system interpreter (any uid may run it): the escape program needs only the standard library.
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
NOBODY = 65534
#: A sandboxed attempt is a python start plus at most a second of work; 30 s means it hung.
ATTEMPT_TIMEOUT_S = 30.0


@dataclass
class Layout:
    """The host side of a test: where the gateway keeps its state and the servers live."""

    base: Path
    state: Path
    secret: Path
    prefix: Path
    other_prefix: Path
    other_token: Path

    def profile(self, *, network: bool = False, **limits: Any) -> SandboxProfile:
        """The probe server's profile with these limits (the rest at their defaults)."""
        return SandboxProfile(prefix=self.prefix, network=network, limits=Rlimits(**limits))


@dataclass
class Shape:
    name: str
    host: Host
    #: argv put before the plan (``setpriv`` to an ordinary user in the ``user`` shape as root).
    launcher: tuple[str, ...]
    #: uid of files the server must own (None: the sandbox prepares them itself).
    owner: int | None
    python: str = PYTHON

    def redetect(self, state: Path) -> Shape:
        """The same shape over a fresh `Host.detect` (e.g. after the environment changed)."""
        host = detect_host(state)
        return replace(self, host=host if self.owner is None else as_user(host, self.owner))

    def sandbox(self, profile: SandboxProfile) -> Sandbox:
        sandbox = Sandbox(profile, self.host)
        sandbox.prepare()
        if self.owner is not None:
            for path in profile.writable:
                for directory, dirs, files in os.walk(path):
                    for name in (directory, *(os.path.join(directory, n) for n in (*dirs, *files))):
                        os.lchown(name, self.owner, self.owner)
        return sandbox

    def popen_args(self, plan: LaunchPlan) -> dict[str, Any]:
        return {
            "args": [*self.launcher, *plan.argv],
            "env": dict(plan.env),
            "cwd": plan.cwd,
            "start_new_session": True,
        }

    def run(self, plan: LaunchPlan, timeout: float = ATTEMPT_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            **self.popen_args(plan), capture_output=True, text=True, timeout=timeout, check=False
        )

    def attempt(
        self, profile: SandboxProfile, *args: str, env: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any] | None, str]:
        """Run one escape attempt; its exit code, its JSON report (None if it printed none), stderr."""
        plan = self.sandbox(profile).wrap(PYTHON, [str(ESCAPE), *args], env)
        try:
            proc = self.run(plan)
        finally:
            if plan.cgroup is not None:
                plan.cgroup.remove()  # as the fleet does when a server stops
        report = json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, report, proc.stderr


@pytest.fixture
def layout() -> Iterator[Layout]:
    # Not under tmp_path: its parents are 0700, and the ``user`` shape must walk through them.
    base = Path(tempfile.mkdtemp(prefix="vsm-sandbox-", dir="/tmp"))
    base.chmod(0o755)
    state = base / "state"
    prefix = state / "servers" / "probe"
    other = state / "servers" / "other"
    for directory in (prefix, other):
        directory.mkdir(parents=True)
    secret = state / "secret.txt"
    secret.write_text("the gateway's secret\n")
    token = other / "token"
    token.write_text("another server's token\n")
    for path in (state, state / "servers", other, secret, token):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by all: only the sandbox hides them
    try:
        yield Layout(base, state, secret, prefix, other, token)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def detect_host(state: Path) -> Host:
    """The real host, or a skip (bwrap absent) / failure (bwrap present but broken)."""
    host = Host.detect(state)
    if host.bwrap is None:
        if shutil.which("bwrap") is None:
            pytest.skip(f"bubblewrap is not installed: {host.bwrap_problem}")
        pytest.fail(f"bwrap is installed but the sandbox does not work: {host.bwrap_problem}")
    return host


@pytest.fixture(params=["root", "user"])
def shape(request: pytest.FixtureRequest, layout: Layout) -> Shape:
    host = detect_host(layout.state)
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("the root shape needs a root gateway (tests run as an ordinary user)")
        return Shape("root", host, (), None)
    if os.geteuid() != 0:
        return Shape("user", host, (), None)
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to test the user shape as root"
    launcher = (setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--")
    return Shape("user", as_user(host, NOBODY), launcher, NOBODY)


def as_user(host: Host, uid: int) -> Host:
    """``host`` as a gateway of ``uid`` sees it (cgroups: what that uid may write, here none
    unless a test delegates a subtree)."""
    return replace(host, uid=uid, cgroups=detect_cgroups(uid))


@pytest.fixture
def group_of() -> Any:
    return sandbox_pids


@pytest.fixture(name="alive")
def alive_fixture() -> Any:
    return alive


def sandbox_pids(leader: int) -> set[int]:
    """Host pids of every process in ``leader``'s process group."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == leader and fields[0] != "Z":
                found.add(int(entry))
    return found


def alive(pids: Sequence[int] | set[int]) -> set[int]:
    still = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            still.add(pid)
    return still


@pytest.fixture
def native(layout: Layout) -> Shape:
    """The shape this machine really has (root or not), with no test launcher in front."""
    return Shape("root" if os.geteuid() == 0 else "user", detect_host(layout.state), (), None)
