"""How an acquired server is launched: its install's command, inside the sandbox.

`SandboxLauncher` turns an `Installation` into the `ServerSpec` that is
verified, run by the fleet and persisted: the command is wrapped by
`vsm_mcp.sandbox.Sandbox` (bubblewrap with the host hidden except the
server's own prefix, no network unless allowed, resource limits, a scrubbed
environment, a derived uid when the gateway is root), so verification runs
exactly what the gateway will run.

Modes: ``require`` refuses to launch without a working bubblewrap;
``prefer`` (default) falls back to running unsandboxed and says so in the
result; ``off`` never sandboxes (tests of pipeline logic).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol

from vsm_mcp.acquisition.installer import Installation
from vsm_mcp.errors import AcquisitionError, SandboxError
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.sandbox import Host, Sandbox, SandboxProfile

SandboxMode = Literal["require", "prefer", "off"]


@dataclass(frozen=True, slots=True)
class Launch:
    """The spec to run, and whether (and how) it is sandboxed."""

    spec: ServerSpec
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
    """The real launcher: wraps the command with the sandbox of the server's prefix."""

    def __init__(self, state_dir: Path, *, mode: SandboxMode = "prefer", network: bool = False) -> None:
        self.state_dir = state_dir
        self.mode = mode
        self.network = network

    @cached_property
    def host(self) -> Host:
        """This machine's sandbox facilities (probed once: bwrap runs a trivial sandbox)."""
        return Host.detect(self.state_dir)

    def launch(self, unit: str, installation: Installation, category: str) -> Launch:
        plain = ServerSpec(
            name=unit, command=installation.command, args=list(installation.args), category=category
        )
        if self.mode == "off":
            return Launch(plain, False, "sandbox off")
        profile = SandboxProfile(
            prefix=installation.prefix.resolve(),
            network=self.network,
            unsandboxed_allowed=self.mode == "prefer",
        )
        try:
            plan = Sandbox(profile, self.host).wrap(installation.command, installation.args)
        except SandboxError as exc:
            raise AcquisitionError("sandbox", str(exc)) from exc
        spec = ServerSpec(
            name=unit,
            command=plan.argv[0],
            args=list(plan.argv[1:]),
            env=dict(plan.env),
            cwd=plan.cwd,
            category=category,
        )
        if not plan.sandboxed:
            why = self.host.bwrap_problem or "absent"
            return Launch(
                spec, False, f"UNSANDBOXED (limits and scrubbed environment only): bubblewrap {why}"
            )
        network = "with network" if self.network else "no network"
        uid = f", uid {plan.run_as}" if plan.run_as is not None else ""
        return Launch(spec, True, f"bubblewrap, only {installation.prefix} writable, {network}{uid}")
