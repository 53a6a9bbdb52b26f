"""``network = true``: a namespace of its own that reaches out, never the host's loopback or link-local.

The plan (pure) says which network a server gets and refuses rather than share the host's; the
real sandboxes (both shapes) show the errno a server sees for each place it must not reach, that
it reaches the outside, and that slirp4netns lives exactly as long as the sandbox.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from pydantic import ValidationError

from vsm_mcp.errors import SandboxError
from vsm_mcp.fleet.process import spawn
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.sandbox import Host, SandboxProfile, egress, egress_probe, plan_launch
from vsm_mcp.sandbox import _egress_stage as stage
from vsm_mcp.sandbox.system import SystemView

PREFIX = Path("/state/servers/fetch")
TOOL = egress.EgressTool(slirp4netns="/usr/bin/slirp4netns", python="/usr/bin/python3")
SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "escape" / "sandboxed_server.py"
#: A sandbox start plus one python start; far more means a hung helper.
GONE_TIMEOUT_S = 10.0
#: Handshake and calls through bwrap and slirp4netns on a busy CI box.
SESSION_TIMEOUT_S = 60.0


def fake_host(*, uid: int = 1000, tool: egress.EgressTool | None = TOOL, problem: str = "") -> Host:
    return Host(
        uid=uid,
        bwrap="/usr/bin/bwrap",
        bwrap_problem="",
        prlimit="/usr/bin/prlimit",
        setpriv="/usr/bin/setpriv",
        system=SystemView((Path("/usr"), Path("/etc/resolv.conf")), ()),
        private_tmp=("/tmp",),
        egress=tool,
        egress_problem=problem,
    )


def bwrap_part(argv: tuple[str, ...]) -> list[str]:
    return list(argv[argv.index("/usr/bin/bwrap") :])


# --- the plan ------------------------------------------------------------------------------------


def test_network_off_has_only_its_own_loopback() -> None:
    plan = plan_launch("/usr/bin/server", [], {}, SandboxProfile(prefix=PREFIX), fake_host())
    assert plan.network == "none"
    assert plan.argv[0] == "/usr/bin/bwrap"
    assert "--share-net" not in plan.argv
    assert "--info-fd" not in plan.argv


@pytest.mark.parametrize("uid", [1000, 0])
def test_network_on_plans_the_egress_stage_in_front_of_bwrap(uid: int) -> None:
    plan = plan_launch(
        "/usr/bin/server", [], {}, SandboxProfile(prefix=PREFIX, network=True), fake_host(uid=uid)
    )
    assert plan.network == "egress"
    stage_part = list(plan.argv[: plan.argv.index("/usr/bin/bwrap")])
    assert stage_part == [
        "/usr/bin/python3",
        "-I",
        "-S",
        str(egress.STAGE),
        "--resolv",
        "/usr/bin/slirp4netns",
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        "--enable-seccomp",
        *(["--enable-sandbox"] if uid == 0 else []),
        "--",
    ]
    bwrap = bwrap_part(plan.argv)
    egress_args = [
        "--info-fd",
        "10",
        "--block-fd",
        "11",
        "--perms",
        "0644",
        "--ro-bind-data",
        "12",
        "/etc/resolv.conf",
    ]
    if uid == 0:
        i = bwrap.index("--unshare-net")
        assert bwrap[i + 1 : i + 1 + len(egress_args)] == egress_args
    else:
        i = bwrap.index("--unshare-all")
        assert bwrap[i + 1 : i + 1 + len(egress_args)] == egress_args
    assert "--share-net" not in bwrap
    # The resolv.conf data mount comes after every system mount it covers.
    assert bwrap.index("--ro-bind-data") > max(j for j, a in enumerate(bwrap) if a == "--remount-ro")


def test_without_a_resolv_conf_to_cover_the_stage_keeps_none() -> None:
    host = replace(fake_host(), system=SystemView((Path("/usr"),), ()))
    plan = plan_launch("/usr/bin/server", [], {}, SandboxProfile(prefix=PREFIX, network=True), host)
    assert "--no-resolv" in plan.argv
    assert "--ro-bind-data" not in plan.argv


def test_network_on_without_egress_is_refused_never_shared() -> None:
    host = fake_host(tool=None, problem="slirp4netns not found (apt-get install slirp4netns)")
    with pytest.raises(SandboxError) as caught:
        plan_launch("/usr/bin/server", [], {}, SandboxProfile(prefix=PREFIX, network=True), host)
    assert str(caught.value) == (
        "network = true needs an egress namespace, but slirp4netns not found (apt-get install slirp4netns); "
        "refusing to share the host's network (apt-get install slirp4netns, or set host_network = true)"
    )


@pytest.mark.parametrize("uid", [1000, 0])
def test_host_network_is_shared_only_on_request(uid: int) -> None:
    profile = SandboxProfile(prefix=PREFIX, network=True, host_network=True)
    plan = plan_launch("/usr/bin/server", [], {}, profile, fake_host(uid=uid, tool=None, problem="absent"))
    assert plan.network == "host"
    assert plan.argv[0] == "/usr/bin/bwrap"
    assert ("--share-net" in plan.argv) == (uid != 0)
    assert "--unshare-net" not in plan.argv
    assert "--info-fd" not in plan.argv


def test_host_network_needs_network() -> None:
    with pytest.raises(ValidationError, match="host_network = true needs network = true"):
        SandboxProfile(prefix=PREFIX, host_network=True)


def test_an_unsandboxed_server_is_on_the_host_network() -> None:
    host = replace(fake_host(), bwrap=None, bwrap_problem="bwrap not found")
    profile = SandboxProfile(prefix=PREFIX, unsandboxed_allowed=True)
    assert plan_launch("/usr/bin/server", [], {}, profile, host).network == "host"


def test_detect_names_the_package_when_slirp4netns_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert egress.detect() == (None, "slirp4netns not found (apt-get install slirp4netns)")


# --- the stage's pure parts ---------------------------------------------------------------------


def test_child_pid_is_read_from_bwraps_info() -> None:
    info = b'{\n    "child-pid": 4242,\n    "cgroup-namespace": 4026531835\n}\n'
    assert stage.child_pid(info) == 4242
    assert stage.child_pid(b'{\n    "child-pid": 17\n}\n') == 17
    assert stage.child_pid(b"") is None


def test_resolv_conf_replaces_loopback_resolvers_by_the_forwarder() -> None:
    host = "# systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.org\n"
    assert stage.resolv_conf(host) == (
        "# systemd-resolved\nnameserver 10.0.2.3\noptions edns0 trust-ad\nsearch example.org\n"
    )
    assert stage.resolv_conf("nameserver 10.255.255.53\nnameserver ::1\n") == (
        "nameserver 10.255.255.53\nnameserver 10.0.2.3\n"
    )
    assert stage.resolv_conf("") == "nameserver 10.0.2.3\n"


def test_route_request_is_prohibit_169_254_slash_16_in_main() -> None:
    message = stage.route_request("169.254.0.0", 16)
    assert message.hex() == (
        "24000000"
        "1800"
        "0506"
        "01000000"
        "00000000"  # nlmsghdr: 36 bytes, RTM_NEWROUTE, REQUEST|ACK|EXCL|CREATE
        "02100000"
        "fe040008"
        "00000000"  # rtmsg: AF_INET /16, main table, static, universe, PROHIBIT
        "08000100"
        "a9fe0000"  # RTA_DST 169.254.0.0
    )


# --- real sandboxes -----------------------------------------------------------------------------


@pytest.fixture
def greeters() -> Iterator[Callable[[str], int]]:
    """Start TCP servers on the host that greet every connection with b"hello"; returns their ports."""
    stop = threading.Event()
    servers: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(address: str) -> int:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        server = socket.create_server((address, 0), family=family)
        server.settimeout(0.2)
        servers.append(server)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(b"hello")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return int(server.getsockname()[1])

    try:
        yield start
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        for server in servers:
            server.close()


@pytest.mark.external
def test_egress_reaches_out_but_not_the_host_loopback_or_link_local(
    shape: Any, layout: Any, greeters: Callable[[str], int]
) -> None:
    v4, v6 = greeters("127.0.0.1"), greeters("::1")
    profile = layout.profile(network=True)
    expected: dict[tuple[str, int], dict[str, Any]] = {
        ("127.0.0.1", v4): {"errno": "ECONNREFUSED"},  # 127.0.0.1 inside is the namespace's own
        ("::1", v6): {"errno": "ECONNREFUSED"},
        (egress.SLIRP_GATEWAY, v4): {"errno": "ENETUNREACH"},  # slirp4netns's alias of the host loopback
        ("169.254.169.254", 80): {"errno": "EACCES"},  # the prohibit route: no metadata service
    }
    outward = egress.host_address()
    if outward is not None:  # the way out works (through slirp4netns), shown without the internet
        expected[(outward, greeters(outward))] = {"ok": True, "reply": "hello"}
    else:
        print("this host has no outbound route: egress itself is not shown here")
    for (host, port), outcome in expected.items():
        code, report, stderr = shape.attempt(profile, "connect", host, str(port))
        assert (code, report) == (0, outcome), (host, stderr)


@pytest.mark.external
def test_egress_resolves_and_connects_to_pypi(shape: Any, layout: Any) -> None:
    try:
        socket.create_connection(("pypi.org", 443), timeout=10).close()
    except OSError as exc:
        pytest.skip(f"the host itself cannot reach pypi.org:443 ({exc})")
    code, report, stderr = shape.attempt(layout.profile(network=True), "dial", "pypi.org", "443")
    assert (code, report) == (0, {"ok": True, "resolved": True, "peer": True}), stderr


def _slirp4netns_in(group: set[int]) -> int:
    found = [pid for pid in group if Path(f"/proc/{pid}/comm").read_text().strip() == "slirp4netns"]
    assert len(found) == 1, group
    return found[0]


def _wait_gone(pid: int) -> None:
    """Wait (on its pidfd, no polling) until ``pid`` has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        readable, _, _ = select.select([pidfd], [], [], GONE_TIMEOUT_S)
    finally:
        os.close(pidfd)
    assert readable, f"process {pid} still runs {GONE_TIMEOUT_S} s later"


@pytest.mark.external
@pytest.mark.parametrize("ending", ["exit", "sigkill"])
def test_slirp4netns_never_outlives_the_sandbox(shape: Any, layout: Any, group_of: Any, ending: str) -> None:
    plan = shape.sandbox(layout.profile(network=True)).wrap(
        shape.python, ["-c", "import sys; print('up', flush=True); sys.stdin.read()"]
    )
    with subprocess.Popen(
        **shape.popen_args(plan), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdin is not None
            assert proc.stdout.readline() == b"up\n"  # the server runs: its network is finished
            slirp = _slirp4netns_in(group_of(proc.pid))
            if ending == "exit":
                proc.stdin.close()  # the server ends by itself
            else:
                os.kill(proc.pid, signal.SIGKILL)  # bwrap alone is killed, not its group
            proc.wait(timeout=GONE_TIMEOUT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
    _wait_gone(slirp)
    assert proc.returncode == (0 if ending == "exit" else -signal.SIGKILL)


@pytest.mark.external
def test_a_failing_slirp4netns_stops_the_launch_with_a_reason(shape: Any, layout: Any) -> None:
    assert shape.host.egress is not None
    broken = replace(
        shape, host=replace(shape.host, egress=replace(shape.host.egress, slirp4netns="/bin/false"))
    )
    code, report, stderr = broken.attempt(layout.profile(network=True), "whoami")
    assert (code, report) == (-signal.SIGKILL, None)  # bwrap killed before the server ran
    assert stderr.splitlines()[-1] == (
        "vsm-mcp egress: slirp4netns exited before the network was up (see its message above); "
        "the server is not started"
    )


@pytest.mark.external
def test_probe_finds_egress_working_here(native: Any) -> None:
    assert egress_probe.probe(native.host) == ""


@pytest.mark.anyio
@pytest.mark.external
@pytest.mark.slow
async def test_fleet_spawn_runs_an_egress_server_and_leaves_no_helper(
    native: Any, layout: Any, group_of: Any, greeters: Callable[[str], int]
) -> None:
    port = greeters("127.0.0.1")
    plan = native.sandbox(layout.profile(network=True)).wrap(sys.executable, [str(SERVER)])
    assert plan.network == "egress"
    spec = ServerSpec(
        name="egress", command=plan.argv[0], args=list(plan.argv[1:]), env=dict(plan.env), cwd=plan.cwd
    )
    with anyio.fail_after(SESSION_TIMEOUT_S):
        async with spawn(spec) as (read, write, child), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            assert {"connect", "whoami"} <= {tool.name for tool in listed.tools}
            result = await session.call_tool("connect", {"host": "127.0.0.1", "port": port})
            assert result.structured_content == {"result": errno.errorcode[errno.ECONNREFUSED]}
            slirp = _slirp4netns_in(group_of(child.pid))
    await anyio.to_thread.run_sync(_wait_gone, slirp)
