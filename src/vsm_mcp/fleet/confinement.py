"""Sandboxing as a property of a server, applied by the fleet at every launch.

A stdio `ServerSpec` holds the plain command (and its declared env); at each
start `Confinement.plan` turns it into the `LaunchPlan` that is run: the
spec's ``sandbox`` section over the policy's defaults (the ``[sandbox]``
settings) gives a `SandboxProfile`, and `Sandbox(profile, host).wrap` gives
argv, environment and working directory. Nothing of the wrapped command line
or of the sandbox's environment is ever written back into a spec.

Invariants:

* the host is probed at most once per `Confinement` (`Host.detect`, with the
  state directory hidden), on the first sandboxed launch, so a fleet whose
  servers are all ``off`` never probes;
* ``off`` runs the command as written, with the MCP SDK's default
  environment plus the declared env (what any MCP client does);
* ``require`` never degrades: without a working bubblewrap `plan` raises
  `SandboxUnavailableError` and nothing is started;
* ``prefer`` degrades to resource limits and a scrubbed environment, and the
  result says ``UNSANDBOXED`` (logged as a warning);
* a spec whose command is itself ``bwrap`` (stored by an older version) is
  refused, never wrapped twice;
* environment values live only in the plan handed to the process; what is
  logged or shown is `LaunchPlan.describe` and `Confined.summary` (names only).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from vsm_mcp.errors import SandboxError, SandboxUnavailableError
from vsm_mcp.fleet.spec import SandboxMode, SandboxSpec, ServerSpec
from vsm_mcp.sandbox import Host, LaunchPlan, Sandbox, SandboxProfile

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """The defaults for servers whose spec leaves a sandbox choice open, and where prefixes live.

    The library default is ``off`` with no prefix directory: a bare `Fleet`
    runs servers as written. The composition root (`vsm_mcp.runtime`) builds
    the policy from the ``[sandbox]`` settings instead.
    """

    mode: SandboxMode = "off"
    network: bool = True
    #: A server's prefix defaults to ``servers_dir / NAME``.
    servers_dir: Path | None = None
    #: Hidden from every server (the gateway's database and secrets live there).
    state_dir: Path | None = None
    #: This machine's sandbox facilities; ``None``: `Host.detect` on first use.
    host: Host | None = None


@dataclass(frozen=True, slots=True)
class Confined:
    """The launch of one server, and what it amounts to."""

    plan: LaunchPlan
    mode: SandboxMode
    network: bool

    @property
    def summary(self) -> str:
        """One short phrase for listings: ``bwrap, no network``, ``off``, ``UNSANDBOXED (...)``."""
        if self.mode == "off":
            return "off"
        if self.plan.sandboxed:
            seccomp = "" if self.plan.seccomp else ", NO SECCOMP FILTER"
            network = {"none": "no network", "egress": "egress-only network", "host": "HOST network"}
            return f"bwrap, {network.get(self.plan.network, self.plan.network)}{seccomp}"
        return "UNSANDBOXED (no working bwrap; limits and scrubbed env only)"

    @property
    def limits(self) -> str:
        """Which limits hold for the server: its cgroup's (per server) and the rlimits (per process)."""
        if self.mode == "off":
            return "none (sandbox off)"
        cgroup = self.plan.cgroup
        if cgroup is None:
            return f"per process only ({self.plan.cgroup_problem or 'no cgroup'})"
        enforced = ", ".join(sorted(cgroup.backend.enforced)) or "none"
        missing = f"; {cgroup.problem}" if cgroup.problem else ""
        return (
            f"per server: {enforced} (cgroup {cgroup.backend.version.value}){missing}; per process: rlimits"
        )


class Confinement:
    """Plans the launches of stdio servers under one `SandboxPolicy`."""

    def __init__(self, policy: SandboxPolicy | None = None) -> None:
        self.policy = policy or SandboxPolicy()
        self._host = self.policy.host
        self._detect_lock = threading.Lock()

    def mode(self, spec: ServerSpec) -> SandboxMode:
        """The effective mode of ``spec`` (its own, else the policy's)."""
        own = spec.sandbox.mode if spec.sandbox is not None else None
        return own or self.policy.mode

    def network(self, spec: ServerSpec) -> bool:
        """Whether ``spec`` shares the host's network (its own choice, else the policy's)."""
        own = spec.sandbox.network if spec.sandbox is not None else None
        return self.policy.network if own is None else own

    def intent(self, spec: ServerSpec) -> str:
        """What the policy asks for ``spec``, without probing anything: ``prefer, no network``."""
        if spec.transport != "stdio":
            return "-"
        mode = self.mode(spec)
        if mode == "off":
            return "off"
        return f"{mode}, {'network' if self.network(spec) else 'no network'}"

    def profile(self, spec: ServerSpec) -> SandboxProfile | None:
        """The sandbox profile of ``spec``; ``None`` when its mode is ``off``.

        Raises:
            SandboxError: the server needs a prefix and neither the spec nor the policy gives one.
        """
        mode = self.mode(spec)
        if mode == "off":
            return None
        own = spec.sandbox or SandboxSpec()
        prefix = own.prefix
        if prefix is None:
            if self.policy.servers_dir is None:
                raise SandboxError(
                    f"server {spec.name!r} is to be sandboxed but has no prefix: "
                    "set its sandbox prefix or give the fleet a servers directory"
                )
            prefix = self.policy.servers_dir / spec.name
        return SandboxProfile(
            prefix=prefix.resolve(),
            data_dirs=own.data_dirs,
            read_paths=own.read_paths,
            network=self.network(spec),
            host_network=own.host_network and self.network(spec),
            limits=own.limits,
            cgroup=own.cgroup,
            env_pass=own.env_pass,
            unsandboxed_allowed=mode == "prefer",
        )

    def host(self) -> Host:
        """This machine's sandbox facilities, probed once (blocking: a trivial bwrap sandbox runs).

        Raises:
            SandboxError: ``prlimit`` is missing, so no limits can be applied.
        """
        with self._detect_lock:
            if self._host is None:
                self._host = Host.detect(self.policy.state_dir)
                if self._host.bwrap is None:
                    logger.warning("bubblewrap unusable here: %s", self._host.bwrap_problem)
            return self._host

    def plan_now(self, spec: ServerSpec) -> Confined:
        """The launch of ``spec`` (blocking: may probe the host and prepare the prefix).

        Raises:
            SandboxUnavailableError: no working bwrap and the mode is ``require``.
            SandboxError: the command cannot be found or the prefix prepared.
        """
        assert spec.command is not None, "only stdio servers are launched"
        mode, network = self.mode(spec), self.network(spec)
        profile = self.profile(spec)
        if profile is not None and Path(spec.command).name == "bwrap":
            raise SandboxError(
                f"server {spec.name!r} is stored as a bubblewrap command line (an older vsm-mcp wrote it): "
                f"remove it (vsm-mcp servers remove {spec.name}) and acquire or add it again"
            )
        if profile is None:
            plain = LaunchPlan(
                argv=(spec.command, *spec.args),
                env=_default_environment() | spec.env,
                cwd=os.path.abspath(spec.cwd) if spec.cwd is not None else os.getcwd(),
                sandboxed=False,
                network="host",  # no sandbox: the host's network, loopback included
            )
            return Confined(plain, mode, network)
        host = self.host()
        try:
            plan = Sandbox(profile, host).wrap(spec.command, spec.args, spec.env, spec.cwd)
        except SandboxUnavailableError as exc:
            if host.bwrap is not None or mode != "require":
                raise  # a refusal of its own (a root gateway's unsandboxed run): the unit names it
            raise SandboxUnavailableError(
                f"cannot sandbox server {spec.name!r}: {host.bwrap_problem or 'bwrap unusable'}; "
                f'its sandbox mode is "require" (install bubblewrap, or set mode = "prefer" '
                "to let it run unsandboxed)"
            ) from exc
        confined = Confined(plan, mode, network)
        if plan.sandboxed:
            logger.info("server %s: %s", spec.name, plan.describe())
        else:
            logger.warning("server %s runs %s: %s", spec.name, confined.summary, plan.describe())
        return confined

    def warning(self, specs: list[ServerSpec]) -> str | None:
        """A banner when bubblewrap is unusable and some of ``specs`` want a sandbox (blocking: may
        probe the host); None when every sandboxed server can have one, or none wants one."""
        wanting = [s for s in specs if s.transport == "stdio" and self.mode(s) != "off"]
        if not wanting:
            return None
        host = self.host()
        if host.bwrap is not None:
            return None
        unsandboxed = sorted(s.name for s in wanting if self.mode(s) == "prefer")
        refused = sorted(s.name for s in wanting if self.mode(s) == "require")
        parts = [f"bubblewrap is unusable here ({host.bwrap_problem})"]
        if unsandboxed:
            parts.append(f"running UNSANDBOXED: {', '.join(unsandboxed)}")
        if refused:
            parts.append(f"not started (sandbox required): {', '.join(refused)}")
        return "WARNING: " + "; ".join(parts) + ". Fix: apt-get install bubblewrap"

    async def plan(self, spec: ServerSpec) -> Confined:
        """`plan_now` in a worker thread, so probing and preparing never block the event loop."""
        return await anyio.to_thread.run_sync(self.plan_now, spec)


def _default_environment() -> dict[str, str]:
    """The SDK's default environment of a stdio server (imported here: the SDK's client is heavy, and
    the settings, which import this module for `SandboxPolicy`, are read by quick commands)."""
    from mcp.client.stdio import get_default_environment

    return get_default_environment()
