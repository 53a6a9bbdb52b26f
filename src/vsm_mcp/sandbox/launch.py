"""From a server's command to a `LaunchPlan`: argv + environment + working directory.

`plan_launch` is pure (everything it needs is in its arguments); `Sandbox`
adds the few effects around it (create and own the writable directories,
resolve the command on the sandbox's PATH, find interpreters that live in
hidden places) and `Host.detect` probes this machine once.

Invariants of a plan:

* the environment is exactly: PATH, HOME (``<prefix>/home``), LANG, TMPDIR,
  the npm and XDG caches inside the prefix, the gateway's certificate trust
  store variables (`TRUST_STORE_ENV`) when set, the profile's pass-through
  names, and the declared env (which wins); nothing else of the gateway's
  environment;
* no environment value appears in ``argv`` and ``repr(plan)`` shows no value;
* the plan needs no ``preexec_fn``: limits and the privilege drop are argv
  stages (see `vsm_mcp.sandbox.limits`). The launcher must start it in a new
  session (``start_new_session=True``) and stop it by signalling the group.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from vsm_mcp.errors import SandboxError, SandboxUnavailableError
from vsm_mcp.sandbox.bwrap import PRIVATE_TMP, Mounts, bwrap_argv
from vsm_mcp.sandbox.cgroups import CgroupBackend, ServerCgroup, detect_cgroups
from vsm_mcp.sandbox.egress import EgressTool, NetworkMode, network_mode, stage_argv
from vsm_mcp.sandbox.egress import bwrap_args as egress_bwrap_args
from vsm_mcp.sandbox.egress import detect as detect_egress
from vsm_mcp.sandbox.limits import derived_uid, launcher_stages
from vsm_mcp.sandbox.pin import LaunchPin
from vsm_mcp.sandbox.preamble import Preamble
from vsm_mcp.sandbox.profile import SandboxProfile
from vsm_mcp.sandbox.seccomp import SECCOMP_FD, filter_file, private_directory
from vsm_mcp.sandbox.system import SystemView

#: PATH entries after the server's own: the distribution's, never the gateway user's.
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
#: The gateway's certificate trust stores, passed to every server when set (a registry or API behind a
#: TLS-inspecting proxy is unreachable without them); the files they name are shown read-only.
TRUST_STORE_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PIP_CERT")
#: A trivial sandbox must start at once; a hung bwrap is a broken bwrap.
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """How to start one server: hand ``argv``, ``env`` and ``cwd`` to the launcher as they are."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    cwd: str
    sandboxed: bool
    #: The uid the server runs as, when the gateway (root) drops to it.
    run_as: int | None = None
    #: What the launch executes, with digests (`vsm_mcp.sandbox.pin`); set by `Sandbox.wrap`.
    pin: LaunchPin | None = None
    #: bwrap loads the seccomp filter (`vsm_mcp.sandbox.seccomp`); a sandbox without says so.
    seccomp: bool = False
    #: The server's network: only its own loopback, an egress namespace, or the host's
    #: (`vsm_mcp.sandbox.egress`; an unsandboxed server always has the host's).
    network: NetworkMode = "none"
    #: The server's cgroup, made by `Sandbox.wrap` and joined by the preamble; whoever runs the
    #: plan removes it when the server has stopped (`ServerCgroup.remove`).
    cgroup: ServerCgroup | None = None
    #: Which per-server (cgroup) limits are not enforced, and why ("" when all are).
    cgroup_problem: str = ""

    def describe(self) -> str:
        """One loggable line: argv and the *names* of the environment (values may be secrets)."""
        shape = "UNSANDBOXED"
        if self.sandboxed:
            shape = "sandboxed" if self.seccomp else "sandboxed WITHOUT SECCOMP FILTER"
        line = f"{shape}: {' '.join(self.argv)} [env: {', '.join(sorted(self.env))}]"
        return f"{line} [{self.cgroup_problem}]" if self.cgroup_problem else line


@dataclass(frozen=True, slots=True)
class Host:
    """What this machine offers the sandbox; `Host.detect` fills it in once."""

    uid: int
    #: A bwrap binary that created a trivial sandbox here, or None.
    bwrap: str | None
    #: Why bwrap is None ("" when it works).
    bwrap_problem: str
    prlimit: str
    setpriv: str | None
    #: The compiled seccomp filter every sandbox loads (`vsm_mcp.sandbox.seccomp`), or None.
    seccomp: Path | None = None
    #: Why seccomp is None ("" when the filter works).
    seccomp_problem: str = "no seccomp filter given"
    #: The system every server sees (read-only); nothing else of the host is visible.
    system: SystemView = field(default_factory=lambda: SystemView((), ()))
    private_tmp: tuple[str, ...] = PRIVATE_TMP
    #: Never visible, even inside a bound path (the state dir, other servers' places): hidden under
    #: an empty tmpfs where a bound path contains them, never bound for a command's files.
    protected: tuple[Path, ...] = ()
    lang: str = "C.UTF-8"
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Where servers get per-server limits (`vsm_mcp.sandbox.cgroups`), for the gateway's uid.
    cgroups: CgroupBackend = field(default_factory=lambda: CgroupBackend.unavailable(-1, "not detected"))
    #: slirp4netns and the stage's interpreter, for ``network = true`` (`vsm_mcp.sandbox.egress`), or None.
    egress: EgressTool | None = None
    #: Why egress is None ("" when it is usable).
    egress_problem: str = "egress not detected"

    @property
    def privileged(self) -> bool:
        return self.uid == 0

    @classmethod
    def detect(cls, state_dir: Path | None = None, extra_hidden: Sequence[Path] = ()) -> Host:
        """Probe this machine: tools on PATH, a real trivial sandbox, the system servers see.

        ``state_dir`` and ``extra_hidden`` are protected: never visible inside.
        The seccomp filter is written to ``state_dir/sandbox`` (a private
        temporary directory without one); the trivial sandbox loads it, so a
        filter that breaks sandboxes is found here, and then left out (and
        said so: ``seccomp_problem``, `LaunchPlan.seccomp`), not each server.

        Raises:
            SandboxError: ``prlimit`` (util-linux) is missing; no limits, no launch.
        """
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            raise SandboxError("prlimit (util-linux) not found: resource limits cannot be applied")
        host = cls(
            uid=os.geteuid(),
            bwrap=None,
            bwrap_problem="",
            prlimit=prlimit,
            setpriv=shutil.which("setpriv"),
            system=SystemView.detect(),
            private_tmp=tuple(p for p in PRIVATE_TMP if p == "/dev/shm" or Path(p).is_dir()),
            protected=tuple(
                Path(os.path.realpath(p)) for p in (*([state_dir] if state_dir else []), *extra_hidden)
            ),
            lang=os.environ.get("LANG", "C.UTF-8"),
            environ=dict(os.environ),
            cgroups=detect_cgroups(os.geteuid()),
        )
        try:
            directory = state_dir / "sandbox" if state_dir is not None else private_directory()
            host = replace(host, seccomp=filter_file(directory), seccomp_problem="")
        except (SandboxError, OSError) as exc:
            host = replace(host, seccomp=None, seccomp_problem=str(exc))
        egress, egress_problem = detect_egress()
        host = replace(host, egress=egress, egress_problem=egress_problem)
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            return _with_bwrap(host, None, "bwrap not found (apt-get install bubblewrap)")
        problem = probe(host, bwrap)
        if problem and host.seccomp is not None and not probe(replace(host, seccomp=None), bwrap):
            return replace(
                _with_bwrap(host, bwrap, ""),
                seccomp=None,
                seccomp_problem=f"the seccomp filter breaks a trivial sandbox here: {problem}",
            )
        return _with_bwrap(host, bwrap, problem)


def _with_bwrap(host: Host, bwrap: str | None, problem: str) -> Host:
    return replace(host, bwrap=bwrap if not problem else None, bwrap_problem=problem)


def probe(host: Host, bwrap: str) -> str:
    """Run ``true`` in a sandbox shaped like a real launch; "" when it worked, else why not."""
    with tempfile.TemporaryDirectory(prefix="vsm-mcp-probe-") as tmp:
        profile = SandboxProfile(prefix=Path(tmp))
        profile.home.mkdir()
        trial = replace(host, bwrap=bwrap)
        plan = plan_launch("/bin/true", (), {}, profile, trial)
        try:
            proc = subprocess.run(
                plan.argv,
                env=dict(plan.env),
                cwd=plan.cwd,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap cannot run: {exc}"
    if proc.returncode != 0:
        return f"bwrap cannot create a sandbox here: {proc.stderr.strip() or f'exit {proc.returncode}'}"
    return ""


def bwrap_available() -> bool:
    """True when bubblewrap is installed *and* creates a sandbox on this machine."""
    return Host.detect().bwrap is not None


def server_env(
    profile: SandboxProfile, host: Host, declared: Mapping[str, str], command_dir: Path
) -> dict[str, str]:
    """The complete environment of the server (module invariants)."""
    path = [str(profile.prefix / "bin"), str(command_dir), *SYSTEM_PATH]
    env = {
        "PATH": ":".join(dict.fromkeys(path)),
        "HOME": str(profile.home),
        "LANG": host.lang,
        "TMPDIR": "/tmp",
        "npm_config_cache": str(profile.home / ".npm"),
        "XDG_CACHE_HOME": str(profile.home / ".cache"),
    }
    env |= {name: host.environ[name] for name in TRUST_STORE_ENV if name in host.environ}
    env |= {name: host.environ[name] for name in profile.env_pass if name in host.environ}
    env |= declared
    return env


def trust_store_paths(env: Mapping[str, str]) -> list[Path]:
    """The certificate files and directories the trust-store variables of ``env`` name (that exist)."""
    found = [Path(env[name]) for name in TRUST_STORE_ENV if os.path.isabs(env.get(name, ""))]
    return [Path(os.path.realpath(p)) for p in found if p.exists()]


def _outside(path: Path, writable: Sequence[Path]) -> list[Path]:
    """``[path]`` unless it is already visible inside a writable path."""
    return [] if any(path == w or w in path.parents for w in writable) else [path]


def plan_launch(
    command: str,
    args: Sequence[str],
    declared_env: Mapping[str, str],
    profile: SandboxProfile,
    host: Host,
    *,
    cwd: Path | None = None,
    extra_read: Sequence[Path] = (),
    preamble: Preamble | None = None,
    cgroup: ServerCgroup | None = None,
) -> LaunchPlan:
    """Turn a resolved command (an absolute path) into the plan that launches it sandboxed.

    With a ``cgroup``, the preamble joins it before anything else runs; without
    one, the plan's ``cgroup_problem`` says that per-server limits do not hold.

    Without a working bwrap, the plan runs the server unsandboxed (still with
    its limits and scrubbed environment) if the profile allows it. With one,
    bwrap loads the host's seccomp filter, opened by the preamble; a host
    without a filter gives a plan whose ``seccomp`` is False.

    Raises:
        SandboxUnavailableError: no working bwrap and ``unsandboxed_allowed`` is false.
        SandboxError: ``network`` without a usable egress tool (`vsm_mcp.sandbox.egress`).
    """
    preamble = preamble or Preamble()
    if cgroup is not None:
        preamble = replace(preamble, cgroup_procs=(*cgroup.procs_files, *preamble.cgroup_procs))
        cgroup_problem = cgroup.problem
    else:
        backend = host.cgroups.for_uid(host.uid)
        cgroup_problem = backend.problem or "cgroup limits not enforced: no cgroup given for this launch"
    workdir = cwd or profile.home
    env = server_env(profile, host, declared_env, Path(command).parent)
    uid: int | None = None
    if host.privileged:
        if host.setpriv is None:
            raise SandboxError("the gateway runs as root but setpriv (util-linux) is missing: refusing")
        uid = profile.run_as_uid or derived_uid(profile.prefix)
    stages = launcher_stages(
        profile.limits,
        prlimit=host.prlimit,
        setpriv=host.setpriv,
        run_as=(uid, uid) if uid is not None else None,
        # Per-sandbox counting needs a user namespace or a uid of the server's own.
        nproc_enforceable=host.bwrap is not None or uid is not None,
    )
    server = [*stages, command, *args]
    if host.bwrap is None:
        if not profile.unsandboxed_allowed:
            raise SandboxUnavailableError(
                f"cannot sandbox {command}: {host.bwrap_problem or 'bwrap unusable'}; "
                "this server's profile does not allow running unsandboxed (unsandboxed_allowed)"
            )
        return LaunchPlan(
            tuple(preamble.argv(server)),
            env,
            str(workdir),
            sandboxed=False,
            run_as=uid,
            network="host",
            cgroup=cgroup,
            cgroup_problem=cgroup_problem,
        )
    network = network_mode(profile, host.egress, host.egress_problem)
    # Only a resolv.conf the system view binds can be covered by the namespace's own.
    resolv = Path("/etc/resolv.conf") in host.system.binds
    read = (profile.prefix, *profile.read_paths, *extra_read, *_outside(workdir, profile.writable))
    bound = (*host.system.binds, *read, *profile.writable)
    mounts = Mounts(
        system=host.system.binds,
        links=host.system.links,
        # A protected place is hidden only where a bound path would show it; elsewhere it is absent.
        hidden=[p for p in host.protected if any(p != b and b in p.parents for b in bound)],
        read=read,
        writable=profile.writable,
        private_tmp=host.private_tmp,
    )
    if host.seccomp is not None:
        # bwrap reads the filter from a descriptor: the preamble opens the file onto it.
        preamble = replace(preamble, read_fds=(*preamble.read_fds, (SECCOMP_FD, host.seccomp)))
    argv = bwrap_argv(
        host.bwrap,
        mounts,
        network=network == "host",
        privileged=host.privileged,
        chdir=workdir,
        env=env,
        command=server,
        seccomp_fd=SECCOMP_FD if host.seccomp is not None else None,
        egress=egress_bwrap_args(resolv_conf=resolv) if network == "egress" else (),
    )
    if host.egress is not None and network == "egress":
        # The egress stage runs after the preamble (so slirp4netns counts in the server's cgroup).
        argv = stage_argv(host.egress, argv, privileged=host.privileged, resolv_conf=resolv)
    return LaunchPlan(
        tuple(preamble.argv(argv)),
        env,
        str(workdir),
        sandboxed=True,
        run_as=uid,
        seccomp=host.seccomp is not None,
        network=network,
        cgroup=cgroup,
        cgroup_problem=cgroup_problem,
    )
