"""How to reach one downstream MCP server: the `[servers.NAME]` table of the settings file.

`ServerSpec` is validated at the edge (settings file, CLI, store) and then
treated as an immutable value. Invariants:

* exactly one of ``command`` (stdio) and ``url`` (streamable HTTP) is set, and
  ``transport`` agrees with it (it is derived when omitted);
* ``name`` is a short identifier without ``__`` so ``NAME__tool`` can always be
  split back unambiguously;
* ``namespace`` is the prefix of the unit's public tool names: ``None`` means
  the unit's name, ``""`` exposes the downstream names unchanged (collisions
  are still resolved by the routing table);
* ``sandbox`` is only for stdio servers. ``None`` (and every ``None`` field
  inside it) means the fleet's policy default (the ``[sandbox]`` settings);
  the spec holds the plain command and never a wrapped one, nor any value of
  the sandbox's own environment: the fleet wraps it at each launch
  (`vsm_mcp.fleet.confinement`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vsm_mcp.core.secrets import malformed_reference
from vsm_mcp.sandbox.profile import AbsolutePath, CgroupLimits, Rlimits

#: Separator between a unit's namespace and a downstream tool name.
NAMESPACE_SEPARATOR = "__"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")

#: ``require``: bubblewrap or nothing (the unit fails); ``prefer``: bubblewrap, else run
#: unsandboxed (limits and a scrubbed environment only) and say so; ``off``: no sandbox.
SandboxMode = Literal["require", "prefer", "off"]


class SandboxSpec(BaseModel):
    """How one stdio server is sandboxed (the `[servers.NAME.sandbox]` table)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: ``None``: the policy default (``[sandbox] mode``).
    mode: SandboxMode | None = None
    #: Network access: outbound through an egress-only namespace (never the host's loopback or
    #: link-local addresses); ``None``: the policy default.
    network: bool | None = None
    #: With ``network``: share the host's own network namespace instead (its loopback included).
    #: Only for a server that must reach a service on this host; it can then reach the gateway too.
    host_network: bool = False
    #: The server's own writable directory (its HOME and caches); ``None``: ``<state>/servers/NAME``.
    prefix: AbsolutePath | None = None
    #: Further writable directories (what the server works on).
    data_dirs: tuple[AbsolutePath, ...] = ()
    #: Paths made visible read-only even where the sandbox hides the host (homes, ``/run``).
    read_paths: tuple[AbsolutePath, ...] = ()
    #: Names of the gateway's environment variables passed through (values never stored).
    env_pass: tuple[str, ...] = ()
    #: Resource limits per process; a partial table overrides only the limits it names.
    limits: Rlimits = Field(default_factory=Rlimits)
    #: Limits of the server as a whole (its cgroup: memory, processes, CPU cores); partial tables too.
    cgroup: CgroupLimits = Field(default_factory=CgroupLimits)


class ServerSpec(BaseModel):
    """One downstream MCP server (an S1 unit) and how it is supervised."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    transport: Literal["stdio", "http"] | None = None
    namespace: str | None = None
    category: str | None = None
    enabled: bool = True
    sandbox: SandboxSpec | None = None

    # Timeouts of one call: the idle clock restarts on every progress notification.
    call_timeout_s: float = Field(default=300.0, gt=0)
    idle_timeout_s: float = Field(default=60.0, gt=0)
    # How long the MCP handshake may take; npx-launched servers can be slow to start.
    start_timeout_s: float = Field(default=60.0, gt=0)
    # S3* health probe: MCP ping every interval, failed when slower than the timeout.
    ping_interval_s: float = Field(default=10.0, gt=0)
    ping_timeout_s: float = Field(default=5.0, gt=0)
    # Restart back-off and crash-loop detection (N restarts within T seconds).
    backoff_initial_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    crash_loop_restarts: int = Field(default=5, ge=1)
    crash_loop_window_s: float = Field(default=60.0, gt=0)
    # Damping (S2): a server that keeps coming up and going down (N restarts within T seconds,
    # too slow for a crash loop) is held this long before its next start, not restarted in a loop.
    flap_restarts: int = Field(default=10, ge=2)
    flap_window_s: float = Field(default=600.0, gt=0)
    flap_hold_s: float = Field(default=300.0, gt=0)
    # Circuit breaker: open after N consecutive failures, probe again after the cool-down.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=10.0, gt=0)
    # Retries of read-only / idempotent tools after a transport failure.
    retries: int = Field(default=2, ge=0)
    # At most this many calls in flight at the server; the rest wait, clients taking turns (S2).
    max_concurrency: int | None = Field(default=None, ge=1)
    # S3: stop the server after this long without a call (its tools stay listed; the next call
    # starts it again, waiting up to start_timeout_s). None: it runs until stopped.
    idle_stop_s: float | None = Field(default=None, gt=0)
    # S3: "on_demand" starts the server at its first call, not with the gateway; until then its
    # tools are listed from its definition pin. Without a pin yet, it starts once to learn (and
    # pin) them and stops at once. "always": it starts with the gateway.
    start: Literal["always", "on_demand"] = "always"

    @model_validator(mode="before")
    @classmethod
    def _derive_transport(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("transport") is None:
            if data.get("url"):
                return {**data, "transport": "http"}
            if data.get("command"):
                return {**data, "transport": "stdio"}
        return data

    @model_validator(mode="after")
    def _check(self) -> ServerSpec:
        if not _NAME.match(self.name) or NAMESPACE_SEPARATOR in self.name:
            raise ValueError(
                f"server name {self.name!r} must be 1-48 letters, digits, '-' or '_', "
                f"start with a letter or digit and not contain {NAMESPACE_SEPARATOR!r}"
            )
        if (self.command is None) == (self.url is None):
            raise ValueError(f"server {self.name!r} needs exactly one of 'command' (stdio) or 'url' (http)")
        if self.transport == "stdio" and self.command is None:
            raise ValueError(f"server {self.name!r}: transport 'stdio' needs 'command'")
        if self.transport == "http" and self.url is None:
            raise ValueError(f"server {self.name!r}: transport 'http' needs 'url'")
        if self.sandbox is not None and self.transport != "stdio":
            raise ValueError(f"server {self.name!r}: a sandbox applies to stdio servers only")
        if self.namespace and NAMESPACE_SEPARATOR in self.namespace:
            raise ValueError(f"server {self.name!r}: namespace must not contain {NAMESPACE_SEPARATOR!r}")
        for kind, values in (("env", self.env), ("headers", self.headers)):
            for key, value in values.items():
                bad = malformed_reference(value)
                if bad is not None:
                    raise ValueError(
                        f"server {self.name!r}: {kind} {key} = {bad!r} is not a secret reference: "
                        "write ${secret:NAME} with NAME of 1-64 letters, digits, '_', '-' or '.'"
                    )
        if self.idle_timeout_s > self.call_timeout_s:
            raise ValueError(f"server {self.name!r}: idle_timeout_s cannot exceed call_timeout_s")
        return self

    @property
    def prefix(self) -> str:
        """The namespace of this unit's public tool names ('' for none)."""
        return self.name if self.namespace is None else self.namespace

    def public_name(self, tool: str) -> str:
        """The preferred public name of a downstream tool of this unit."""
        prefix = self.prefix
        return f"{prefix}{NAMESPACE_SEPARATOR}{tool}" if prefix else tool

    def describe(self) -> str:
        """One line for listings: the command line or the URL."""
        if self.url is not None:
            return self.url
        return " ".join([self.command or "", *self.args])


def namespace_clash(spec: ServerSpec, others: Iterable[ServerSpec]) -> str | None:
    """Why ``spec`` cannot join ``others`` (a namespace, or its name, is another unit's), or None."""
    for other in others:
        if other.name == spec.name:
            continue
        mine = {spec.prefix, spec.name} - {""}
        theirs = {other.prefix, other.name} - {""}
        shared = sorted(mine & theirs)
        if shared:
            return (
                f"server {spec.name!r} would publish tools as {shared[0]}__..., which is server "
                f"{other.name!r}'s namespace: choose another name or namespace (--namespace)"
            )
    return None
