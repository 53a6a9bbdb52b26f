"""The egress launch stage: runs *outside* the sandbox, wires slirp4netns to bwrap's network namespace,
then becomes bwrap.

Run by `vsm_mcp.sandbox.egress` as ``python3 -I -S _egress_stage.py --resolv|--no-resolv
SLIRP4NETNS [OPTION]... -- BWRAP [ARG]...`` (standard library only: it runs on the system
interpreter, without the gateway's packages). Three processes, all in the launch's process group:

* this one creates the pipes, forks the sidecar and ``exec``s bwrap with ``--info-fd INFO_FD
  --block-fd BLOCK_FD`` (and ``--ro-bind-data RESOLV_FD /etc/resolv.conf``): same pid, so the
  launcher's stop-by-group, pidfd and parent-death signal are bwrap's;
* the sidecar reads bwrap's ``{"child-pid": N}``, opens the child's network namespace (and,
  through ``NS_GET_USERNS``, the user namespace that owns it: bwrap may stack a second one on
  top), forks the relay, arms ``PR_SET_PDEATHSIG`` (SIGKILL when bwrap exits) and ``exec``s
  slirp4netns on that namespace, so the helper can never outlive the sandbox;
* the relay waits for slirp4netns's ``--ready-fd``, adds a ``prohibit`` route for the
  link-local block in the namespace (cloud metadata at 169.254.169.254), and only then writes to
  bwrap's ``--block-fd``: the server's first instruction already sees the finished network.

Invariants:

* fails closed and says so: if slirp4netns, the sidecar or the relay fails before the network is
  ready, one ``vsm-mcp egress:`` line goes to stderr and bwrap and its blocked child are SIGKILLed
  (through pidfds, so a reused pid is never hit); the server never runs on a network other than
  the one above;
* slirp4netns holds a copy of the block pipe, so a relay that dies without writing leaves the
  server blocked (never running without the route) until the launcher stops it;
* slirp4netns's stdout (its banner) goes to /dev/null, never into the server's JSON-RPC stream;
  its stderr is the server's (errors land in the server's log);
* no descriptor of this stage leaks into the sandbox besides what bwrap consumes itself.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys

# Not ``typing.TYPE_CHECKING``: importing typing alone costs more than this whole stage's work.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

#: bwrap writes ``{"child-pid": N, ...}`` here once the namespaces exist.
INFO_FD = 10
#: bwrap's child waits on this before the command runs (after its own setup, before seccomp).
BLOCK_FD = 11
#: The sandbox's ``/etc/resolv.conf`` (``--ro-bind-data``).
RESOLV_FD = 12
#: The interface slirp4netns creates in the namespace.
TAP = "tap0"
#: slirp4netns's DNS forwarder (network + 3 of its default 10.0.2.0/24): it forwards to the host's
#: resolver, loopback ones included (port 53 only), so a host on systemd-resolved still resolves.
SLIRP_DNS = "10.0.2.3"
#: Never reachable from the namespace: IPv4 link-local (cloud metadata services, host link addresses).
PROHIBITED = (("169.254.0.0", 16),)
#: Pipes are created above this, so moving them onto the fixed numbers never clobbers one another.
_HIGH_FD = 64
_NS_GET_USERNS = 0xB701
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9
_EINVAL = 22
# rtnetlink (linux/netlink.h, linux/rtnetlink.h)
_NETLINK_ROUTE, _RTM_NEWROUTE, _NLMSG_ERROR = 0, 24, 2
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_EXCL, _NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
_RT_TABLE_MAIN, _RTPROT_STATIC, _RT_SCOPE_UNIVERSE, _RTN_PROHIBIT, _RTA_DST = 254, 4, 0, 8, 1
_AF_INET = 2
#: More than any real resolv.conf; a pipe holds 64 KiB, so the write never blocks.
_RESOLV_MAX = 16384


class EgressStageError(Exception):
    """The namespace's network could not be set up; the server must not start."""


def child_pid(info: bytes) -> int | None:
    """The ``child-pid`` of bwrap's ``--info-fd`` JSON (None: bwrap wrote nothing, it failed first)."""
    _, found, rest = info.partition(b'"child-pid":')
    if not found:
        return None
    digits = rest.lstrip().split(b",")[0].split(b"}")[0].strip()
    if not digits.isdigit():
        raise EgressStageError(f"cannot read bwrap's child pid from {info[:200]!r}")
    return int(digits)


def resolv_conf(host: str) -> str:
    """The sandbox's resolv.conf: the host's, with loopback resolvers (unreachable from the
    namespace) replaced by slirp4netns's forwarder; the forwarder alone when none is left."""
    lines: list[str] = []
    servers: list[str] = []
    for line in host.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            address = words[1]
            server = SLIRP_DNS if address.startswith("127.") or address == "::1" else address
            if server not in servers:
                servers.append(server)
                lines.append(f"nameserver {server}")
        elif words[:1] != ["nameserver"]:
            lines.append(line)
    if not servers:
        lines.append(f"nameserver {SLIRP_DNS}")
    return "\n".join(lines) + "\n"


def route_request(network: str, prefix: int, seq: int = 1) -> bytes:
    """An rtnetlink RTM_NEWROUTE message: ``prohibit network/prefix`` in the main table."""
    rtmsg = struct.pack(
        "=BBBBBBBBI",
        _AF_INET,
        prefix,
        0,
        0,
        _RT_TABLE_MAIN,
        _RTPROT_STATIC,
        _RT_SCOPE_UNIVERSE,
        _RTN_PROHIBIT,
        0,
    )
    dst = struct.pack("=HH4s", 8, _RTA_DST, bytes(int(part) for part in network.split(".")))
    flags = _NLM_F_REQUEST | _NLM_F_ACK | _NLM_F_EXCL | _NLM_F_CREATE
    body = rtmsg + dst
    return struct.pack("=IHHII", 16 + len(body), _RTM_NEWROUTE, flags, seq, 0) + body


def _pipe() -> tuple[int, int]:
    """A close-on-exec pipe whose ends sit above the fixed descriptor numbers."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD))
        os.close(fd)
    return ends[0], ends[1]


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data


def _fail(victims: Sequence[int], message: str) -> NoReturn:
    """Say why on stderr, SIGKILL the ``victims`` (pidfds: bwrap, then the sandbox's init), exit.

    The init must be killed itself: bwrap's child arms its parent-death signal only right before
    it runs the command, so a child blocked on BLOCK_FD would outlive a killed bwrap and go on
    as soon as the block pipe closes (this process holds it open until then). bwrap goes first,
    so the launcher sees SIGKILL rather than bwrap reporting its child's death.
    """
    import contextlib  # only on failure: these cost an enum import
    import signal

    os.write(2, f"vsm-mcp egress: {message}; the server is not started\n".encode(errors="replace"))
    for pidfd in victims:
        with contextlib.suppress(OSError):  # already gone
            signal.pidfd_send_signal(pidfd, _SIGKILL)
    os._exit(1)


def _prohibit_link_local(netfd: int, userfd: int, libc: Any) -> None:
    """Enter the namespace (as its owner) and add the ``prohibit`` routes (``libc``: ctypes' CDLL)."""
    import _socket  # not socket: its enums cost milliseconds on the start-up path
    import ctypes

    # Joining the owning user namespace gives the capabilities in it; in the root shape it is
    # the one we are in already (EINVAL) and root needs none.
    if libc.setns(userfd, _CLONE_NEWUSER) != 0 and ctypes.get_errno() != _EINVAL:
        raise EgressStageError(f"setns(user): {os.strerror(ctypes.get_errno())}")
    if libc.setns(netfd, _CLONE_NEWNET) != 0:
        raise EgressStageError(f"setns(net): {os.strerror(ctypes.get_errno())}")
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, _NETLINK_ROUTE)
    try:
        for seq, (network, prefix) in enumerate(PROHIBITED, start=1):
            sock.send(route_request(network, prefix, seq))
            reply = sock.recv(4096)
            kind = struct.unpack_from("=H", reply, 4)[0]
            error = struct.unpack_from("=i", reply, 16)[0] if kind == _NLMSG_ERROR else -1
            if error:
                raise EgressStageError(f"route prohibit {network}/{prefix}: {os.strerror(-error)}")
    finally:
        sock.close()


def _relay(
    ready_r: int, block_w: int, *, netfd: int, userfd: int, victims: Sequence[int], libc: Any
) -> NoReturn:
    """Wait for slirp4netns, add the routes, release bwrap's child (module docstring)."""
    try:
        if os.read(ready_r, 1) != b"1":
            raise EgressStageError("slirp4netns exited before the network was up (see its message above)")
        _prohibit_link_local(netfd, userfd, libc)
        os.write(block_w, b"1")
    except BaseException as exc:  # any failure must stop the server
        _fail(victims, str(exc) or type(exc).__name__)
    os._exit(0)


def _sidecar(tool: Sequence[str], info_r: int, block_w: int, bwrap: int, bwrap_pid: int) -> NoReturn:
    """Wait for bwrap's child, then become slirp4netns on its namespace (module docstring)."""
    try:
        # Loaded while bwrap sets up, before its info arrives: off the start-up path.
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pid = child_pid(_read_all(info_r))
        os.close(info_r)
        if pid is None:
            os._exit(0)  # bwrap failed before creating the sandbox, and said why
        # The child is blocked on BLOCK_FD (it can neither exit nor have its pid reused yet).
        victims = (bwrap, os.pidfd_open(pid))
    except BaseException as exc:  # any failure must stop the server
        _fail((bwrap,), str(exc) or type(exc).__name__)
    try:
        _become_slirp4netns(tool, pid, block_w, victims=victims, bwrap_pid=bwrap_pid, libc=libc)
    except BaseException as exc:
        _fail(victims, str(exc) or type(exc).__name__)


def _become_slirp4netns(
    tool: Sequence[str], pid: int, block_w: int, *, victims: Sequence[int], bwrap_pid: int, libc: Any
) -> NoReturn:
    """Open the child's namespaces, start the relay, arm the parent-death signal, exec slirp4netns."""
    netfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    userfd = fcntl.ioctl(netfd, _NS_GET_USERNS)
    ready_r, ready_w = _pipe()
    relay = os.fork()
    if relay == 0:
        os.close(ready_w)
        if os.fork() == 0:  # orphaned at once: nobody has to reap the relay
            _relay(ready_r, block_w, netfd=netfd, userfd=userfd, victims=victims, libc=libc)
        os._exit(0)
    os.waitpid(relay, 0)
    os.close(ready_r)
    libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    if os.getppid() != bwrap_pid:
        raise EgressStageError("bwrap exited before its network was set up")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    for fd in (netfd, userfd, ready_w, block_w):
        os.set_inheritable(fd, True)
    os.execv(
        tool[0],
        [
            *tool,
            f"--ready-fd={ready_w}",
            "--netns-type=path",
            f"--userns-path=/proc/self/fd/{userfd}",
            f"/proc/self/fd/{netfd}",
            TAP,
        ],
    )


def main(argv: Sequence[str]) -> None:
    """Parse ``--resolv|--no-resolv TOOL... -- BWRAP...``, start the sidecar, become bwrap."""
    dns, rest = argv[0], list(argv[1:])
    split = rest.index("--")
    tool, command = rest[:split], rest[split + 1 :]
    bwrap_pid = os.getpid()
    bwrap = os.pidfd_open(bwrap_pid)  # close-on-exec: the sidecar and relay keep it, bwrap does not
    info_r, info_w = _pipe()
    block_r, block_w = _pipe()
    if os.fork() == 0:
        os.close(info_w)
        os.close(block_r)
        _sidecar(tool, info_r, block_w, bwrap, bwrap_pid)
    os.close(info_r)
    os.close(block_w)
    os.dup2(info_w, INFO_FD)
    os.dup2(block_r, BLOCK_FD)
    if dns == "--resolv":
        resolv_r, resolv_w = _pipe()
        try:
            with open("/etc/resolv.conf", encoding="utf-8", errors="replace") as fh:
                host = fh.read(_RESOLV_MAX)
        except OSError:
            host = ""
        os.write(resolv_w, resolv_conf(host).encode())
        os.close(resolv_w)
        os.dup2(resolv_r, RESOLV_FD)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
