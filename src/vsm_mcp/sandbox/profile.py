"""What a downstream server may touch: its sandbox profile, validated at the edge.

A `SandboxProfile` is per server and immutable. Invariants:

* every path is absolute and normalised (``..`` collapsed, no trailing slash);
* the server's ``prefix`` holds its install tree, visible *read-only* to the
  server (so it cannot rewrite its own launcher or code); ``prefix/home`` is
  its HOME, where its caches live (npm's included), and is writable, as are
  the declared ``data_dirs``; nothing else is writable but a private /tmp;
* ``read_paths`` are made visible read-only even where the sandbox hides the
  host (home directories, the state directory, ``/run``);
* ``env_pass`` names variables copied from the gateway's own environment; the
  server's declared variables (and secrets from the store) are handed to
  `Sandbox.wrap` by the caller. Nothing else reaches the server.

Resource limits (`Rlimits`) were chosen by measurement on Node 20 and
CPython 3.11 (see ``address_space_bytes`` below for why address space is off
by default and ``data_bytes`` bounds memory instead). They bound each process;
`CgroupLimits` bound the server as a whole (all its processes together) where
the host offers a cgroup (`vsm_mcp.sandbox.cgroups`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: The writable part of a server's prefix (its HOME); the rest of the prefix is read-only inside.
HOME_DIR = "home"

GIB = 1024**3
MIB = 1024**2


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"sandbox path {str(path)!r} must be absolute")
    return Path(os.path.normpath(path))


AbsolutePath = Annotated[Path, AfterValidator(_absolute)]


class Rlimits(BaseModel):
    """Kernel resource limits of every process of one server (``None``: not limited).

    Soft and hard limits are equal except CPU time, where the hard limit is a
    few seconds above the soft one: SIGXCPU first, SIGKILL if it is ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: RLIMIT_AS. Off by default: V8 reserves address space it never touches.
    #: Measured on Node 20: ``node -e 1`` needs >= 800 MiB, and one
    #: ``new WebAssembly.Memory`` needs >= 11 GiB (guard regions), so an AS cap
    #: low enough to matter breaks node servers. Useful for Python-only servers.
    address_space_bytes: int | None = Field(default=None, gt=0)
    #: RLIMIT_DATA (Linux >= 4.7 counts private writable mappings, not
    #: reservations): bounds real memory for node and python alike. Node dies
    #: with "JavaScript heap out of memory", Python raises MemoryError.
    data_bytes: int | None = Field(default=4 * GIB, gt=0)
    #: RLIMIT_CPU per process: a runaway loop is stopped; the supervisor restarts it.
    cpu_seconds: int | None = Field(default=3600, gt=0)
    #: RLIMIT_NPROC: processes *and threads* (node starts ~11 threads, npx -> npm -> node a few more).
    nproc: int | None = Field(default=256, gt=0)
    #: RLIMIT_FSIZE: largest file a server may write.
    fsize_bytes: int | None = Field(default=1 * GIB, gt=0)
    #: RLIMIT_NOFILE: open file descriptors per process.
    nofile: int | None = Field(default=4096, gt=0)


class CgroupLimits(BaseModel):
    """Limits of one server as a whole: every process it starts counts (``None``: not limited).

    Enforced through the server's own cgroup where the host allows one (see
    `vsm_mcp.sandbox.cgroups`); where it does not, only the per-process
    `Rlimits` hold and the launch plan says so.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: memory.max (v2) / memory.limit_in_bytes (v1), with no swap on top. Past it the kernel
    #: reclaims, then its OOM killer kills the server's largest process (SIGKILL).
    memory_bytes: int | None = Field(default=4 * GIB, gt=0)
    #: pids.max: processes and threads together; a fork past it fails with EAGAIN.
    pids: int | None = Field(default=512, gt=0)
    #: CPU time per wall-clock time, in cores (cpu.max / cfs quota over a 100 ms period):
    #: 0.5 is half of one core. The kernel's smallest quota is 1 ms per period.
    cpu_cores: float | None = Field(default=1.0, ge=0.01)


class SandboxProfile(BaseModel):
    """The sandbox of one downstream server (an S1 unit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The server's own directory: its install tree (read-only inside) and its ``home`` (writable).
    prefix: AbsolutePath
    #: Declared data directories, writable.
    data_dirs: tuple[AbsolutePath, ...] = ()
    #: Extra paths made visible read-only (also inside otherwise hidden places).
    read_paths: tuple[AbsolutePath, ...] = ()
    #: Outbound network: a namespace of its own with egress to the internet and none to the host's
    #: loopback or link-local addresses (`vsm_mcp.sandbox.egress`); False: only its own loopback.
    network: bool = False
    #: Share the host's network namespace instead (its 127.0.0.1 included): only for a server that
    #: must reach a service on the host's loopback. Needs ``network``.
    host_network: bool = False
    limits: Rlimits = Field(default_factory=Rlimits)
    #: Limits of the server as a whole (its cgroup), besides the per-process ``limits``.
    cgroup: CgroupLimits = Field(default_factory=CgroupLimits)
    #: Names of gateway environment variables passed through (besides the declared env).
    env_pass: tuple[str, ...] = ()
    #: Policy: may this server run without a sandbox when bubblewrap is unusable?
    unsandboxed_allowed: bool = False
    #: When the gateway runs as root, the server runs as this uid/gid (``None``:
    #: one derived from the prefix, so each server has its own process count).
    run_as_uid: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _host_network_needs_network(self) -> SandboxProfile:
        if self.host_network and not self.network:
            raise ValueError("host_network = true needs network = true")
        return self

    @property
    def home(self) -> Path:
        """The server's private HOME (inside its prefix, so caches persist across restarts)."""
        return self.prefix / HOME_DIR

    @property
    def writable(self) -> tuple[Path, ...]:
        """Every path the server may write (besides its private /tmp): its home and data dirs."""
        return (self.home, *self.data_dirs)
