"""Resource limits and the privilege drop, as argv stages run *inside* the sandbox.

Limits are applied by ``prlimit(1)`` as the last stage before the server's
command, after bubblewrap has created the namespaces, not by a ``preexec_fn``
in the gateway's child. Why, measured on Linux 6.x:

* RLIMIT_NPROC is counted per user namespace (kernel >= 5.14 ucounts). Set
  after bwrap created the server's user namespace, it bounds the processes of
  *that* sandbox only; set before, the namespace inherits it as the ceiling
  for every process of the same uid on the host (a desktop user has hundreds),
  and the server cannot fork at all.
* The kernel never enforces RLIMIT_NPROC for uid 0. A root gateway therefore
  runs each server as its own unprivileged uid (`derived_uid`), dropped by
  ``setpriv(1)`` inside the sandbox, after bwrap (still root) made the mounts.
* An argv-only launch works with any launcher: the fleet's own spawn and the
  SDK's ``stdio_client`` alike, with no callable crossing the fork.

``prlimit`` and ``setpriv`` come from util-linux (Debian: essential).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

from vsm_mcp.sandbox.profile import Rlimits

#: After SIGXCPU at the soft CPU limit, how many more CPU seconds before SIGKILL:
#: long enough for a handler to log, short enough that ignoring it buys nothing.
CPU_HARD_GRACE_S = 2

#: Servers of a root gateway run as uids in [UID_BASE, UID_BASE + UID_SPAN): far
#: above distribution and subordinate-id ranges, so they own no host files.
UID_BASE = 200_000_000
UID_SPAN = 100_000_000


def derived_uid(prefix: Path) -> int:
    """A stable unprivileged uid for the server installed in ``prefix``.

    Distinct servers get distinct uids (collisions are 1 in 10^8), so their
    RLIMIT_NPROC pools and file ownership are separate.
    """
    return UID_BASE + zlib.crc32(str(prefix).encode()) % UID_SPAN


def prlimit_argv(prlimit: str, limits: Rlimits, *, with_nproc: bool = True) -> list[str]:
    """``prlimit --as=... --nproc=... --`` for the limits that are set (soft = hard except CPU).

    ``with_nproc=False`` leaves the process count alone: outside a user
    namespace it would count every process of the uid on the host.
    """
    argv = [prlimit]
    if limits.address_space_bytes is not None:
        argv.append(f"--as={limits.address_space_bytes}")
    if limits.data_bytes is not None:
        argv.append(f"--data={limits.data_bytes}")
    if limits.cpu_seconds is not None:
        argv.append(f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + CPU_HARD_GRACE_S}")
    if limits.nproc is not None and with_nproc:
        argv.append(f"--nproc={limits.nproc}")
    if limits.fsize_bytes is not None:
        argv.append(f"--fsize={limits.fsize_bytes}")
    if limits.nofile is not None:
        argv.append(f"--nofile={limits.nofile}")
    argv.append("--")
    return argv


def setpriv_argv(setpriv: str, uid: int, gid: int) -> list[str]:
    """Drop from root to ``uid``/``gid`` for good: no groups, no capabilities, no new privileges.

    ``--pdeathsig keep`` re-arms the parent-death signal, which the kernel
    clears on a credential change.
    """
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--pdeathsig=keep",
        "--",
    ]


def launcher_stages(
    limits: Rlimits,
    *,
    prlimit: str,
    setpriv: str | None,
    run_as: tuple[int, int] | None,
    nproc_enforceable: bool,
) -> Sequence[str]:
    """The stages between the sandbox and the server's command: drop privileges, then limit."""
    stages: list[str] = []
    if run_as is not None:
        if setpriv is None:
            raise ValueError("a privilege drop needs setpriv")
        stages += setpriv_argv(setpriv, *run_as)
    stages += prlimit_argv(prlimit, limits, with_nproc=nproc_enforceable)
    return stages
