"""`vsm-mcp doctor`: is this machine able to run VSM-MCP, and if not, how to fix it.

Each check runs the real tool (``node --version``, a throw-away ``bwrap``
sandbox, a write in the state directory) rather than only looking it up on
PATH, so a verdict reflects what will happen when a server is launched.
"""

from __future__ import annotations

import enum
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from vsm_mcp.errors import SandboxError
from vsm_mcp.sandbox import egress, egress_probe
from vsm_mcp.sandbox.cgroups import DELEGATE_HINT, LIMITED, CgroupBackend, detect_cgroups
from vsm_mcp.sandbox.launch import Host

#: A version probe of a local tool should answer at once; a hung tool is a failed check.
PROBE_TIMEOUT_S = 10.0
MIN_NODE_MAJOR = 18
CONFORMANCE_NODE_MAJOR = 22


class Verdict(enum.StrEnum):
    """Outcome of one check; only FAIL makes `doctor` exit non-zero."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One diagnosis: what was checked, what was found, how to fix it."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stdout or proc.stderr).strip()


def check_python() -> Check:
    """The interpreter running VSM-MCP (its package metadata already requires 3.11+)."""
    version = ".".join(str(p) for p in sys.version_info[:3])
    return Check("python", Verdict.OK, f"Python {version} at {sys.executable}")


def check_node() -> Check:
    """Node.js and npx, needed for npm-published MCP servers."""
    node, npx = shutil.which("node"), shutil.which("npx")
    if node is None or npx is None:
        return Check(
            "node/npx",
            Verdict.WARN,
            "node or npx not on PATH: npm MCP servers cannot run",
            "install Node.js >= 18 (e.g. `apt-get install nodejs npm`)",
        )
    code, out = _run([node, "--version"])
    if code != 0:
        return Check("node/npx", Verdict.FAIL, f"`node --version` failed: {out}", "reinstall Node.js")
    try:
        major = int(out.lstrip("v").split(".")[0])
    except ValueError:
        return Check("node/npx", Verdict.WARN, f"cannot parse node version {out!r}")
    if major < MIN_NODE_MAJOR:
        return Check(
            "node/npx", Verdict.FAIL, f"node {out} is too old", f"install Node.js >= {MIN_NODE_MAJOR}"
        )
    note = "" if major >= CONFORMANCE_NODE_MAJOR else " (the MCP conformance suite needs Node 22)"
    return Check("node/npx", Verdict.OK, f"node {out}, npx at {npx}{note}")


def check_python_installers() -> Check:
    """uv/uvx (preferred) or pip, needed for PyPI-published MCP servers."""
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv:
        code, out = _run([uv, "--version"])
        if code == 0:
            return Check("uv/pip", Verdict.OK, out)
    code, out = _run([sys.executable, "-m", "pip", "--version"])
    if code == 0:
        return Check(
            "uv/pip", Verdict.WARN, f"no uv; {out.split(' from ')[0]}", "pip install uv (faster installs)"
        )
    return Check("uv/pip", Verdict.FAIL, "neither uv nor pip works", "pip install uv")


def check_bubblewrap(state_dir: Path, mode: str = "prefer") -> Check:
    """bubblewrap creates a sandbox shaped exactly like a real server launch (not only exists on PATH).

    ``mode`` is the ``[sandbox]`` default: with ``require``, no bubblewrap means
    the servers will not start (FAIL); with ``prefer`` they run UNSANDBOXED,
    which is a FAIL too (never a quiet fallback); only ``off`` makes it a WARN.
    """
    try:
        host = Host.detect(state_dir)
    except SandboxError as exc:
        return Check("bubblewrap", Verdict.FAIL, str(exc), "apt-get install util-linux")
    if host.bwrap is None and shutil.which("bwrap") is None:
        if mode == "require":
            return Check(
                "bubblewrap",
                Verdict.FAIL,
                'bwrap not found and [sandbox] mode = "require": stdio servers will not start',
                'apt-get install bubblewrap (or set [sandbox] mode = "prefer")',
            )
        return Check(
            "bubblewrap",
            Verdict.WARN if mode == "off" else Verdict.FAIL,
            f'bwrap not found: stdio servers would run UNSANDBOXED ([sandbox] mode = "{mode}")',
            "apt-get install bubblewrap",
        )
    if host.bwrap is None:
        return Check(
            "bubblewrap",
            Verdict.FAIL,
            host.bwrap_problem,
            "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root",
        )
    shape = "root: each server runs as its own uid" if host.privileged else "user namespace"
    if host.seccomp is None:
        return Check(
            "bubblewrap",
            Verdict.FAIL,
            f"{host.bwrap} creates sandboxes ({shape}) but without the seccomp filter: {host.seccomp_problem}",
            "apt-get install libseccomp2 (and reinstall vsm-mcp so pyseccomp is present)",
        )
    return Check("bubblewrap", Verdict.OK, f"{host.bwrap} creates sandboxes ({shape}, seccomp filter loaded)")


def check_cgroups(backend: CgroupBackend | None = None) -> Check:
    """Which per-server limits (memory, processes, CPU of a server as a whole) cgroups enforce for
    this uid (``backend``: `detect_cgroups` by default); the per-process rlimits hold regardless."""
    backend = backend or detect_cgroups()
    if backend.enforced == frozenset(LIMITED):
        return Check("cgroups", Verdict.OK, backend.describe())
    return Check(
        "cgroups",
        Verdict.WARN,
        f"{backend.describe()} (per-process rlimits only for those)",
        DELEGATE_HINT,
    )


def check_egress(state_dir: Path, mode: str = "prefer") -> Check:
    """``network = true`` gets a namespace of its own that reaches out but not the host: a real
    egress sandbox connects here (`vsm_mcp.sandbox.egress_probe.probe`). Without one, such servers are
    refused (never quietly given the host's network), hence FAIL."""
    if mode == "off":
        return Check("egress", Verdict.OK, 'sandbox mode "off": servers share the host network')
    try:
        host = Host.detect(state_dir)
    except SandboxError as exc:
        return Check("egress", Verdict.FAIL, str(exc), "apt-get install util-linux")
    if host.bwrap is None:
        return Check(
            "egress",
            Verdict.WARN,
            "no working bwrap: no network namespaces (unsandboxed servers share the host network)",
            "see the bubblewrap check",
        )
    problem = egress_probe.probe(host)
    if problem:
        return Check(
            "egress",
            Verdict.FAIL,
            f"{problem}: servers with network = true will be refused",
            "apt-get install slirp4netns; chmod 0666 /dev/net/tun (or host_network = true per server)",
        )
    assert host.egress is not None  # the probe ran it
    outward = egress.host_address()
    if outward is None:
        return Check(
            "egress",
            Verdict.WARN,
            "egress namespaces keep off the host's loopback, but this host has no outbound route",
            "give the host a default route for servers that need the internet",
        )
    return Check(
        "egress",
        Verdict.OK,
        f"{host.egress.slirp4netns}: own network namespace, reaches {outward}, not 127.0.0.1 or 169.254/16",
    )


def check_state_dir(state_dir: Path) -> Check:
    """The state directory exists (or can be made) and is writable."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-", delete=True) as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return Check(
            "state dir",
            Verdict.FAIL,
            f"{state_dir} is not writable: {exc.strerror}",
            "pass --state-dir to a writable directory or fix its permissions",
        )
    return Check("state dir", Verdict.OK, f"{state_dir} is writable")


def check_secrets(users: Mapping[str, Sequence[str]], kept: Set[str]) -> Check:
    """Every secret the servers refer to (``users``: name -> servers) is among those ``kept``."""
    missing = sorted(name for name in users if name not in kept)
    if missing:
        listed = "; ".join(f"{name} (used by {', '.join(users[name])})" for name in missing)
        return Check(
            "secrets",
            Verdict.FAIL,
            f"not set: {listed}; those servers will not start",
            f"vsm-mcp secrets set {missing[0]}",
        )
    if not users:
        return Check("secrets", Verdict.OK, "no server refers to a secret")
    return Check("secrets", Verdict.OK, f"all {len(users)} secrets the servers refer to are set")


def diagnose(state_dir: Path, *, sandbox_mode: str = "prefer") -> list[Check]:
    """Run every check, in a fixed order (``sandbox_mode``: the ``[sandbox]`` default mode)."""
    return [
        check_python(),
        check_node(),
        check_python_installers(),
        check_bubblewrap(state_dir, sandbox_mode),
        check_cgroups(),
        check_egress(state_dir, sandbox_mode),
        check_state_dir(state_dir),
    ]


def check_servers(live: object, max_age_s: float = 10.0, now: float | None = None) -> Check:
    """The servers a running gateway reported (its live status): FAIL while any is failed, naming each.

    ``live`` is the stored live status (``{"at": ..., "fleet": [...]}``) or None; an old one (no
    gateway runs) says so rather than judging servers nobody runs.
    """
    if not isinstance(live, dict) or not isinstance(live.get("at"), int | float):
        return Check(
            "servers", Verdict.OK, "no running gateway has reported (servers are checked while one runs)"
        )
    age = (time.time() if now is None else now) - float(live["at"])
    if age > max_age_s:
        return Check("servers", Verdict.OK, f"no running gateway (its last report is {age:.0f} s old)")
    units = [u for u in live.get("fleet", []) if isinstance(u, dict)]
    failed = [u for u in units if u.get("state") == "failed"]
    quarantined = [u for u in units if u.get("quarantine")]
    if not failed and not quarantined:
        return Check("servers", Verdict.OK, f"{len(units)} running, none failed or quarantined")
    parts = []
    if failed:
        named = "; ".join(f"{u.get('name')}: {u.get('last_error') or 'failed'}" for u in failed)
        parts.append(f"{len(failed)} of {len(units)} failed: {named}")
    if quarantined:
        named = "; ".join(f"{u.get('name')}: {u.get('quarantine')}" for u in quarantined)
        parts.append(f"{len(quarantined)} quarantined: {named}")
    first = (failed or quarantined)[0].get("name")
    fix = (
        f"fix the cause, then vsm-mcp servers restart {first} (vsm-mcp servers logs {first} shows its stderr)"
        if failed
        else f"review the change: vsm-mcp servers approve {first}"
    )
    return Check("servers", Verdict.FAIL, "; ".join(parts), fix)
