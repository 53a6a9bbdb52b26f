"""How an acquired server is launched: its install's plain command, with a sandbox section.

`SandboxLauncher` turns an `Installation` into the `ServerSpec` that is
verified, persisted and run by the fleet. The spec holds the install's plain
command (inside its prefix) and a ``sandbox`` section (mode, network, prefix),
never a wrapped bubblewrap command line nor any environment value: the fleet
wraps it at every start (`vsm_mcp.fleet.confinement`), so a secret never
reaches the store, and a spec stays valid if bubblewrap comes or goes (the
mode then decides). The `Launch` also carries the plan of that spec on this
host, made by the same `Confinement` code the fleet uses, so verification
runs exactly what the gateway will run.

Modes: ``require`` (default) refuses to launch without a working bubblewrap
(here, and later in the fleet); ``prefer`` falls back to running unsandboxed
and says so in the result; ``off`` never sandboxes (tests of pipeline logic).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vsm_mcp.acquisition.installer import Installation
from vsm_mcp.errors import AcquisitionError, SandboxError
from vsm_mcp.fleet.confinement import Confinement, SandboxPolicy
from vsm_mcp.fleet.spec import SandboxMode, SandboxSpec, ServerSpec
from vsm_mcp.sandbox import Host, LaunchPlan

__all__ = ["Launch", "Launcher", "SandboxLauncher", "SandboxMode"]


@dataclass(frozen=True, slots=True)
class Launch:
    """The spec to store and run, its plan on this host, and whether (and how) it is sandboxed."""

    spec: ServerSpec
    plan: LaunchPlan
    sandboxed: bool
    detail: str


class Launcher(Protocol):
    """Makes the runnable spec of an installed server."""

    def launch(self, unit: str, installation: Installation, category: str) -> Launch:
        """The spec of ``unit``.

        Raises:
            AcquisitionError: (step ``sandbox``) it cannot be launched as the mode demands.
        """
        ...


class SandboxLauncher:
    """The real launcher: the install's command, sandboxed in the server's prefix."""

    def __init__(
        self,
        state_dir: Path,
        *,
        mode: SandboxMode = "require",
        network: bool = False,
        host: Host | None = None,
    ) -> None:
        """``host``: this machine's sandbox facilities when already known (else probed on first use)."""
        self.state_dir = state_dir
        self.mode: SandboxMode = mode
        self.network = network
        self.confinement = Confinement(
            SandboxPolicy(
                mode=mode,
                network=network,
                servers_dir=state_dir / "servers",
                state_dir=state_dir,
                host=host,
            )
        )

    @property
    def host(self) -> Host:
        """This machine's sandbox facilities (probed once: bwrap runs a trivial sandbox)."""
        return self.confinement.host()

    def spec(self, unit: str, installation: Installation, category: str) -> ServerSpec:
        """The spec that is stored: plain command, sandbox section, no environment."""
        sandbox = (
            SandboxSpec(mode="off")
            if self.mode == "off"
            else SandboxSpec(mode=self.mode, network=self.network, prefix=installation.prefix.resolve())
        )
        return ServerSpec(
            name=unit,
            command=installation.command,
            args=list(installation.args),
            category=category,
            sandbox=sandbox,
        )

    def launch(self, unit: str, installation: Installation, category: str) -> Launch:
        spec = self.spec(unit, installation, category)
        try:
            confined = self.confinement.plan_now(spec)
        except SandboxError as exc:
            raise AcquisitionError("sandbox", str(exc)) from exc
        plan = confined.plan
        if self.mode == "off":
            return Launch(spec, plan, False, "sandbox off")
        if not plan.sandboxed:
            why = self.host.bwrap_problem or "absent"
            return Launch(
                spec, plan, False, f"UNSANDBOXED (limits and scrubbed environment only): bubblewrap {why}"
            )
        network = "with network" if self.network else "no network"
        uid = f", uid {plan.run_as}" if plan.run_as is not None else ""
        return Launch(spec, plan, True, f"bubblewrap, only {installation.prefix} writable, {network}{uid}")
