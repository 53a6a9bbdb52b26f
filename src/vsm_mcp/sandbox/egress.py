"""Egress without the host: a server with ``network = true`` gets a network namespace of its own,
with outbound access and no way to the host's loopback or link-local addresses.

Sharing the host's network namespace (what ``network = true`` used to mean) lets a hostile server
connect to every listener on the host's 127.0.0.1, the gateway's own HTTP face included. Instead,
bwrap unshares the network as for ``network = false``, and slirp4netns (user-mode TCP/IP, the
rootless-podman way) connects that namespace to the outside through ordinary sockets of the
host:

* ``--disable-host-loopback``: the gateway address 10.0.2.2 does not map to the host's
  127.0.0.1 (connects fail with ENETUNREACH); inside, 127.0.0.0/8 and ::1 are the namespace's
  own loopback;
* a ``prohibit`` route for 169.254.0.0/16 (EACCES at once: no cloud metadata service, no host
  link address); IPv6 is not forwarded at all (no ``--enable-ipv6``), so fe80::/10 leads nowhere;
* DNS: the sandbox's resolv.conf is the host's with loopback resolvers replaced by slirp4netns's
  forwarder 10.0.2.3 (which may reach the host's resolver on port 53, and nothing else there);
* the host's non-loopback addresses stay reachable, as from any machine on the network.

Network modes of a plan (`NetworkMode`, `network_mode`): ``none`` (only a loopback of its own),
``egress`` (the above) and ``host`` (the host's namespace: explicitly asked for with
``host_network = true``, or a server running unsandboxed). ``network = true`` never quietly
becomes ``host``: without a usable slirp4netns the launch is refused (`SandboxError`).

The plan stays argv only: `stage_argv` is a stage in front of bwrap (after the preamble), run by
the system's ``python3 -I -S`` (standard library only), which wires slirp4netns to bwrap's
``--info-fd``/``--block-fd`` and then becomes bwrap (`vsm_mcp.sandbox._egress_stage` has the
details and the invariants: the helper dies with bwrap, the server never runs before its network
is finished, any failure stops the launch with one line on stderr).

Why slirp4netns and not pasta (Debian 12's ``passt`` 2023-03 snapshot): as root pasta drops to
``nobody`` and then cannot open the namespace of a root-owned sandbox, it has no ready or exit
descriptor, and it forwards host ports and maps the gateway to the host unless told otherwise.
slirp4netns has ``--ready-fd``, ``--disable-host-loopback``, and (as root) ``--enable-sandbox``.

No allow-list of destinations (``egress_hosts``): slirp4netns cannot filter by destination, and
names resolve to changing addresses; that takes a filtering proxy, which this is not.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vsm_mcp.errors import SandboxError
from vsm_mcp.sandbox import _egress_stage as stage
from vsm_mcp.sandbox.profile import SandboxProfile

#: What network a plan gives its server (module docstring).
NetworkMode = Literal["none", "egress", "host"]
#: The stage program (standard library only), run by `EgressTool.python`.
STAGE = Path(stage.__file__)
#: Interpreters for the stage, best first: the system's (any uid can run it), else the gateway's.
PYTHONS = ("/usr/bin/python3", "/bin/python3", "/usr/local/bin/python3")
#: The device slirp4netns opens inside the namespace (as the gateway's uid).
TUN = Path("/dev/net/tun")
#: The gateway address of slirp4netns's network: the host's 127.0.0.1 unless disabled.
SLIRP_GATEWAY = "10.0.2.2"
#: A trivial egress sandbox (python start, three connects) must finish at once.
PROBE_TIMEOUT_S = 20.0
#: Used only to learn which source address the host's default route has (nothing is sent).
_ROUTE_PROBE_ADDRESS = ("198.51.100.1", 9)

_INSTALL = "apt-get install slirp4netns"


@dataclass(frozen=True, slots=True)
class EgressTool:
    """What an egress launch needs on this host."""

    slirp4netns: str
    #: The interpreter that runs the stage (`STAGE`).
    python: str


def detect() -> tuple[EgressTool | None, str]:
    """Find slirp4netns and an interpreter, and check this process can use ``/dev/net/tun``.

    Returns the tool, or None and why not (one line naming what to install or fix). Cheap: no
    sandbox is started (`probe` does that, for ``vsm-mcp doctor``).
    """
    slirp = shutil.which("slirp4netns")
    if slirp is None:
        return None, f"slirp4netns not found ({_INSTALL})"
    python = next((p for p in PYTHONS if os.access(p, os.X_OK)), sys.executable)
    uid = os.geteuid()
    if uid != 0 and not os.access(TUN, os.R_OK | os.W_OK):
        try:
            mode = f"mode {TUN.stat().st_mode & 0o777:04o}"
        except OSError as exc:
            mode = exc.strerror or "absent"
        return None, f"{TUN} is not usable by uid {uid} ({mode}): chmod 0666 {TUN} (the udev default)"
    return EgressTool(slirp, python), ""


def network_mode(profile: SandboxProfile, tool: EgressTool | None, problem: str) -> NetworkMode:
    """The network a sandboxed launch of ``profile`` gets on a host with ``tool``.

    Raises:
        SandboxError: ``network = true`` but no egress namespace can be made here, and the
            profile does not ask for the host's network.
    """
    if profile.host_network:
        return "host"
    if not profile.network:
        return "none"
    if tool is None:
        raise SandboxError(
            f"network = true needs an egress namespace, but {problem or 'slirp4netns is unusable'}; "
            f"refusing to share the host's network ({_INSTALL}, or set host_network = true)"
        )
    return "egress"


def bwrap_args(*, resolv_conf: bool) -> list[str]:
    """bwrap's side of the stage: the descriptors it writes and blocks on, and the sandbox's
    resolv.conf (only where the sandbox has one to cover: ``resolv_conf``)."""
    args = ["--info-fd", str(stage.INFO_FD), "--block-fd", str(stage.BLOCK_FD)]
    if resolv_conf:
        # bwrap makes a data file 0600 (root's, in the root shape) unless told otherwise.
        args += ["--perms", "0644", "--ro-bind-data", str(stage.RESOLV_FD), "/etc/resolv.conf"]
    return args


def slirp4netns_argv(tool: EgressTool, *, privileged: bool) -> list[str]:
    """slirp4netns and its fixed options (the stage adds the descriptors and the namespace).

    ``--enable-sandbox`` (its own mount namespace, capabilities dropped) only as root: without a
    root mapped in bwrap's user namespace it cannot become root there and fails.
    """
    argv = [tool.slirp4netns, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-seccomp"]
    if privileged:
        argv.append("--enable-sandbox")
    return argv


def stage_argv(tool: EgressTool, command: Sequence[str], *, privileged: bool, resolv_conf: bool) -> list[str]:
    """``command`` (a bwrap argv with `bwrap_args`) run behind the egress stage."""
    dns = "--resolv" if resolv_conf else "--no-resolv"
    return [
        tool.python,
        "-I",
        "-S",
        str(STAGE),
        dns,
        *slirp4netns_argv(tool, privileged=privileged),
        "--",
        *command,
    ]


def host_address() -> str | None:
    """The host's source address for its default route (None: no outbound route at all)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(_ROUTE_PROBE_ADDRESS)
            address: str = sock.getsockname()[0]
    except OSError:
        return None
    return address
