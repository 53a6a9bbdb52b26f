"""Hostile servers against the real gateway: every attempt is contained, the gateway and a benign
server keep serving, and what the gateway records of it is in its state database.

Each test starts ``vsm-mcp serve --stdio`` as a subprocess (configured by a ``config.toml`` in a
fresh state directory that the gateway's user owns), with one hostile server of
``tests/fixtures/hostile`` and the probe server as the benign one, and talks to it with the
SDK's stdio client. Every test runs under two gateway users:

* ``root``: the gateway is root; bwrap makes the mounts and each server runs as a uid of its own;
* ``user``: an ordinary Linux user made for this module (``useradd``, removed after); bwrap makes
  a user namespace. The project's venv interpreter lives under ``/root`` (0700), so this gateway
  runs a venv of the system interpreter whose ``.pth`` adds the project venv's site directory.

Servers run that same system-interpreter venv in both shapes, with the project venv's site
directory declared readable (``read_paths``), so a server's configuration is the same for both.
The gateway's sandbox mode is ``require``: a server never runs unsandboxed here.

What the gateway records is read from its state database: an expected alert is waited for while
the gateway runs, and once it has stopped (S5 stores the alerts still queued on the way out) the
hostile unit's alerts must be exactly the expected kinds; most attempts leave none.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import REQUEST_TIMEOUT

from vsm_mcp.fleet.logfile import MAX_LOG_BYTES, ROTATED_LOGS, rotated_paths
from vsm_mcp.fleet.process import group_cpu_seconds
from vsm_mcp.fleet.unit import RUNAWAY_CPU_SHARE, RUNAWAY_GRACE_S
from vsm_mcp.sandbox import Host, detect_cgroups
from vsm_mcp.sandbox.egress import SLIRP_GATEWAY
from vsm_mcp.store import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.external]

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
PROBE = ROOT / "tests" / "fixtures" / "servers" / "probe_server.py"
#: The project venv's site directory (the SDK and the gateway's dependencies).
SITE = Path(sysconfig.get_paths()["purelib"])
#: The interpreter the ``user`` venv is made of: any uid may run it.
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: The gateway's start and both servers' first starts through bwrap, on a busy 2-core box.
READY_TIMEOUT_S = 60.0
#: One hostile call (a fork bomb, children filling memory) on that box.
CALL_TIMEOUT_S = 30.0
#: A health round (1 s here) and the algedonic window, on a busy box.
ALERT_TIMEOUT_S = 15.0
#: Stands for the state directory in a settings file (it is made per gateway).
STATE = "@STATE@"
#: Where the launcher-rewriting server is installed, in its prefix (under the state directory).
LAUNCHER = "servers/hostile/bin/hostile"
#: The benign server's secret (test 11) is set through the CLI before the gateway starts.
SECRET_NAME = "benign_token"
#: Short correlation window: alerts reach S5 (and the store) promptly.
GATEWAY_CONFIG = """\
[algedonic]
window_s = 0.2

[sandbox]
mode = "require"
network = false
"""


# -- the two gateway users -------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayUser:
    """Who runs the gateway, and the venv it runs from (its ``bin/vsm-mcp``)."""

    name: str
    uid: int
    gid: int
    home: Path
    venv: Path
    #: The interpreter servers run with (same in both shapes).
    server_python: Path

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def run_as(self, argv: list[str]) -> list[str]:
        """``argv`` run as this user (setpriv drops root to it before anything runs)."""
        if self.is_root:
            return argv
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) is needed to run a non-root gateway"
        return [setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *argv]

    def vsm_mcp(self, *args: str) -> list[str]:
        """``vsm-mcp ARGS`` as this user."""
        return self.run_as([str(self.venv / "bin" / "vsm-mcp"), *args])

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def own(self, path: Path) -> None:
        """Give ``path`` (and everything below) to this user."""
        for directory, dirs, files in os.walk(path):
            for name in (directory, *(os.path.join(directory, n) for n in (*dirs, *files))):
                os.lchown(name, self.uid, self.gid)


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Not under /tmp (each sandbox has a private one) and walkable by every uid involved.
    (ROOT / ".tools").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="hostile-", dir=ROOT / ".tools"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_venv(workdir: Path) -> Path:
    """A venv of the system interpreter over the project venv's packages (no install: a .pth)."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"{SYSTEM_PYTHON} is absent: no interpreter an ordinary user can run")
    version = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != f"{sys.version_info.major}.{sys.version_info.minor}":
        pytest.skip(f"{SYSTEM_PYTHON} is {version}: it cannot load this venv's {sys.version[:4]} packages")
    venv = workdir / "venv"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{version}" / "site-packages"
    # addsitedir (not a bare path line) so the project venv's own .pth files (its editable
    # install of vsm_mcp) are processed too.
    (site / "vsm_project.pth").write_text(f"import site; site.addsitedir({str(SITE)!r})\n")
    script = venv / "bin" / "vsm-mcp"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nfrom vsm_mcp.cli.app import main\nmain()\n")
    script.chmod(0o755)
    return venv


@pytest.fixture(scope="session")
def test_user() -> Iterator[pwd.struct_passwd]:
    """An ordinary user for these tests (removed after, with its home and every process it left)."""
    if os.geteuid() != 0:
        pytest.skip("creating the non-root gateway's user needs root (useradd)")
    name = f"vsmtest{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    entry = pwd.getpwnam(name)
    try:
        yield entry
    finally:
        for pid in _pids_of_uid(entry.pw_uid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


@pytest.fixture(scope="module", params=["root", "user"])
def gateway_user(request: pytest.FixtureRequest, server_venv: Path, workdir: Path) -> GatewayUser:
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("the root gateway shape needs root")
        host = Host.detect(workdir)
        if host.bwrap is None:
            pytest.fail(f"bubblewrap does not work here: {host.bwrap_problem}")
        return GatewayUser("root", 0, 0, Path("/root"), Path(sys.prefix), server_venv / "bin" / "python")
    entry: pwd.struct_passwd = request.getfixturevalue("test_user")
    user = GatewayUser(
        entry.pw_name,
        entry.pw_uid,
        entry.pw_gid,
        Path(entry.pw_dir),
        server_venv,
        server_venv / "bin" / "python",
    )
    # A non-root gateway needs bwrap to make a user namespace; a kernel or LSM that forbids it
    # (kernel.unprivileged_userns_clone = 0, AppArmor's restrict_unprivileged_userns) ends here.
    trial = subprocess.run(
        user.run_as(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--", "/bin/true"]),
        capture_output=True,
        text=True,
        check=False,
    )
    if trial.returncode != 0:
        pytest.skip(f"an ordinary user cannot make a bwrap sandbox here: {trial.stderr.strip()}")
    return user


# -- one gateway ---------------------------------------------------------------------------


@dataclass
class Gateway:
    """A running ``vsm-mcp serve --stdio`` and the client session to it."""

    session: ClientSession
    state: Path
    pid: int
    user: GatewayUser

    async def call(self, tool: str, **arguments: Any) -> Any:
        """A tool's structured result (unwrapped from ``{"result": ...}``); fails on ``isError``."""
        result = await self.session.call_tool(tool, arguments)
        assert not result.is_error, result.content
        content = result.structured_content
        assert content is not None, result.content
        return content["result"] if set(content) == {"result"} else content

    async def units(self) -> dict[str, dict[str, Any]]:
        """The gateway's ``vsm_status``: each unit's state, pid, sandbox, limits, counters."""
        result = await self.session.call_tool("vsm_status", {})
        status = json.loads(result.content[0].text)  # type: ignore[union-attr]
        return {unit["name"]: unit for unit in status["units"]}

    async def benign_serves(self) -> None:
        """The benign server answers a call through the gateway."""
        assert await self.call("benign__echo", text="still serving") == "still serving"

    def alive(self) -> bool:
        return _alive(self.pid)


def _config(user: GatewayUser, hostile: str, *, benign: str = "", extra: str = "") -> str:
    """The settings file: the benign probe server and the hostile one, both sandboxed."""
    python, site = json.dumps(str(user.server_python)), json.dumps(str(SITE))
    return (
        GATEWAY_CONFIG
        + f"""
[servers.benign]
command = {python}
args = [{json.dumps(str(PROBE))}]
start_timeout_s = 30
{benign}
[servers.benign.sandbox]
read_paths = [{site}]

[servers.hostile]
start_timeout_s = 30
{hostile}
[servers.hostile.sandbox]
read_paths = [{site}]
{extra}
"""
    )


def _hostile_command(user: GatewayUser, fixture: str) -> str:
    return f"command = {json.dumps(str(user.server_python))}\nargs = [{json.dumps(str(HOSTILE / fixture))}]"


def _make_state(
    user: GatewayUser, workdir: Path, config: str, prepare: Callable[[Path], None] | None
) -> Path:
    """A fresh state directory with its settings file, owned by the gateway's user."""
    state = Path(tempfile.mkdtemp(prefix="state-", dir=workdir))
    state.chmod(0o700)
    (state / "config.toml").write_text(config.replace(STATE, str(state)))
    if prepare is not None:
        prepare(state)
    user.own(state)
    return state


@asynccontextmanager
async def open_gateway(
    user: GatewayUser,
    workdir: Path,
    config: str,
    *,
    prepare: Callable[[Path], None] | None = None,
    network: str = "no network",
) -> AsyncIterator[Gateway]:
    """Start a gateway with ``config`` in a fresh state directory; yield once both units are up.

    ``prepare`` runs on the state directory before the gateway starts (as root; the directory is
    then given to the gateway's user). ``network``: the hostile unit's expected network. The
    gateway's stderr is printed when the block fails.
    """
    state = await anyio.to_thread.run_sync(_make_state, user, workdir, config, prepare)
    stderr = state.parent / f"{state.name}.stderr"
    command = user.vsm_mcp("--state-dir", str(state), "serve", "--stdio")
    params = StdioServerParameters(command=command[0], args=command[1:], env=user.env(), cwd=str(workdir))
    try:
        with stderr.open("w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                with anyio.fail_after(READY_TIMEOUT_S):
                    await session.initialize()
                    gateway = Gateway(session, state, _gateway_pid(state), user)
                    units = await gateway.units()
                    while {u["state"] for u in units.values()} != {"ready"}:
                        assert "failed" not in {u["state"] for u in units.values()}, units
                        await anyio.sleep(0.1)
                        units = await gateway.units()
                # Both really sandboxed, seccomp included, whoever runs the gateway.
                assert units["benign"]["sandbox"] == "bwrap, no network"
                assert units["hostile"]["sandbox"] == f"bwrap, {network}"
                yield gateway
    except BaseException:
        print(f"gateway stderr ({stderr}):\n" + stderr.read_text()[-4000:])
        raise


async def recorded(state: Path) -> dict[str, list[str]]:
    """The hostile unit's algedonic alerts in the state database: kind -> details."""
    kinds: dict[str, list[str]] = {}
    async with SqliteStore.open(state / "state.db") as store:
        for alert in await store.alerts(limit=1000):
            if alert.source == "unit:hostile":
                kinds.setdefault(alert.kind, []).append(alert.detail)
    return kinds


async def wait_recorded(state: Path, kind: str) -> None:
    """Return once the running gateway has stored an alert of ``kind`` from the hostile unit."""
    with anyio.fail_after(ALERT_TIMEOUT_S):
        async with SqliteStore.open(state / "state.db") as store:
            while not any(  # noqa: ASYNC110 - polls another process's database
                a.source == "unit:hostile" and a.kind == kind for a in await store.alerts(limit=1000)
            ):
                await anyio.sleep(0.1)


def _per_server(limits: str) -> set[str]:
    """The limits a unit's cgroup enforces, from its ``limits`` line (`Confined.limits`)."""
    prefix = "per server: "
    if not limits.startswith(prefix):
        return set()
    return set(limits.removeprefix(prefix).split(" (")[0].split(", "))


# -- processes -------------------------------------------------------------------------------


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _pids_of_uid(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _cmdline(pid: int | str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _gateway_pid(state: Path) -> int:
    """The host pid of the gateway serving ``state``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = _cmdline(entry)
            if str(state) in argv and "serve" in argv:
                return int(entry)
    raise AssertionError(f"no gateway process serves {state}")


def _group(pgid: int) -> list[int]:
    """Host pids of the live processes of process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def opt_canary() -> Iterator[Path]:
    """A world-readable secret in an /opt-like directory, outside every server's trees."""
    directory = Path(f"/opt/vsmtest-{secrets.token_hex(4)}")
    directory.mkdir(mode=0o755, parents=True)
    canary = directory / "secret"
    canary.write_text("opt canary\n")
    canary.chmod(0o644)
    try:
        yield canary
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- 1, 2: files outside the server's trees ------------------------------------------------------


async def test_a_world_readable_file_outside_its_trees_is_absent(
    gateway_user: GatewayUser, workdir: Path, opt_canary: Path
) -> None:
    assert oct(opt_canary.stat().st_mode & 0o777) == "0o644"  # noqa: ASYNC240 - there, readable by all
    config = _config(gateway_user, _hostile_command(gateway_user, "steal_files.py"))
    paths = [str(opt_canary), str(opt_canary.parent), "/opt", "/srv", "/var/lib"]
    async with open_gateway(gateway_user, workdir, config) as gateway:
        assert await gateway.call("hostile__steal", paths=paths) == dict.fromkeys(paths, "ENOENT")
        await gateway.benign_serves()
    assert await recorded(gateway.state) == {}  # a refused read leaves no alert


async def test_a_private_file_in_a_home_is_absent(gateway_user: GatewayUser, workdir: Path) -> None:
    # The gateway user's own home and root's, each with a file only its owner may read.
    name = f".vsmtest-canary-{secrets.token_hex(4)}"
    canaries = {Path("/root") / name: 0, gateway_user.home / name: gateway_user.uid}
    for canary, owner in canaries.items():
        canary.write_text("home canary\n")
        canary.chmod(0o600)
        os.chown(canary, owner, owner)
    try:
        config = _config(gateway_user, _hostile_command(gateway_user, "steal_files.py"))
        async with open_gateway(gateway_user, workdir, config) as gateway:
            paths = list(dict.fromkeys([*map(str, canaries), str(gateway_user.home), "/root", "/home"]))
            taken = await gateway.call("hostile__steal", paths=paths)
            assert taken == dict.fromkeys(paths, "ENOENT")
            await gateway.benign_serves()
        assert await recorded(gateway.state) == {}
    finally:
        for canary in canaries:
            canary.unlink(missing_ok=True)


# -- 3: rewriting its own launcher -------------------------------------------------------------


async def test_a_server_cannot_rewrite_its_launcher_to_expose_a_hidden_directory(
    gateway_user: GatewayUser, workdir: Path, opt_canary: Path
) -> None:
    # The launcher lives in the server's prefix (as an installed server's does), owned by the
    # gateway's user: file permissions would let the server write it, only the sandbox stops it.
    launcher_text = f"#!{gateway_user.server_python}\n" + (HOSTILE / "rewrite_launcher.py").read_text()

    def install(state: Path) -> None:
        launcher = state / LAUNCHER
        launcher.parent.mkdir(parents=True)
        launcher.write_text(launcher_text)
        launcher.chmod(0o755)

    hidden = opt_canary.parent
    config = _config(gateway_user, "command = " + json.dumps(f"{STATE}/{LAUNCHER}"))
    async with open_gateway(gateway_user, workdir, config, prepare=install) as gateway:
        launcher = gateway.state / LAUNCHER
        first = await gateway.call("hostile__boot")
        outcome = await gateway.call("hostile__rewrite", interpreter=str(hidden / "bin" / "python3"))
        assert outcome == {
            "launcher": str(launcher),
            "in_place": "EROFS",
            "by_rename": "EROFS",
            "by_unlink": "EROFS",
        }
        assert launcher.read_text() == launcher_text
        with anyio.fail_after(READY_TIMEOUT_S):  # it exits; the gateway starts it again
            while (second := await _boot_after_restart(gateway)) in (first, None):  # noqa: ASYNC110
                await anyio.sleep(0.1)
        assert second != first
        for path in (hidden, opt_canary, gateway.state / "logs", gateway.state / "state.db"):
            assert await gateway.call("hostile__read", path=str(path)) == "ENOENT"
        assert (await gateway.units())["hostile"]["restarts"] == 1
        # Had the rewrite landed, the next start would be refused: the launch pin (fixed at the
        # first start) no longer matches.
        launcher.write_text(f"#!{hidden / 'bin' / 'python3'}\nprint('rewritten')\n")
        await gateway.call("hostile__rewrite", interpreter=str(hidden / "bin" / "python3"))
        with anyio.fail_after(READY_TIMEOUT_S):
            while (await gateway.units())["hostile"]["state"] != "failed":  # noqa: ASYNC110
                await anyio.sleep(0.1)
        with pytest.raises(MCPError) as refused:
            await gateway.session.call_tool("hostile__read", {"path": str(hidden)})
        assert refused.value.error.message.startswith(
            "server 'hostile' is failed by its sandbox policy (not started: server 'hostile' would run "
            f"files that changed since it was installed or approved: {launcher}: sha256:"
        )
        await wait_recorded(gateway.state, "launcher_changed")
        await gateway.benign_serves()
    alerts = await recorded(gateway.state)
    # It exited on its own after each rewrite attempt (server_lost), then its changed launch was refused.
    assert sorted(alerts) == ["launcher_changed", "server_lost"]
    assert str(launcher) in alerts["launcher_changed"][0]


async def _boot_after_restart(gateway: Gateway) -> str | None:
    """The hostile server's boot id, or None while it is restarting."""
    try:
        result = await gateway.session.call_tool("hostile__boot", {})
    except MCPError:
        return None  # not ready again within the gateway's wait
    if result.is_error or result.structured_content is None:
        return None
    return str(result.structured_content["result"])


# -- 4: the host's loopback ------------------------------------------------------------------


async def test_a_networked_server_cannot_reach_the_hosts_loopback(
    gateway_user: GatewayUser, workdir: Path
) -> None:
    config = _config(gateway_user, _hostile_command(gateway_user, "connect_host.py"), extra="network = true")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        # The plan must not share the host's network: an egress namespace is what network = true is.
        async with open_gateway(gateway_user, workdir, config, network="egress-only network") as gateway:
            targets = [f"127.0.0.1:{port}", f"{SLIRP_GATEWAY}:{port}"]
            outcome = await gateway.call("hostile__connect", targets=targets)
            assert outcome == {f"127.0.0.1:{port}": "ECONNREFUSED", f"{SLIRP_GATEWAY}:{port}": "ENETUNREACH"}
            await gateway.benign_serves()
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the host's listener
    assert await recorded(gateway.state) == {}


# -- 5, 6, 7: resources --------------------------------------------------------------------------

#: The hostile server's own process limit where the host enforces cgroups (below RLIMIT_NPROC,
#: so the cgroup is what stops the fork bomb there).
FORK_CGROUP_PIDS = 128
#: RLIMIT_NPROC of every server process (`vsm_mcp.sandbox.profile.Rlimits.nproc`).
NPROC = 256
#: Threads and processes a server has before it forks (bwrap's init, the interpreter's threads).
ALREADY_RUNNING = 8


async def test_a_fork_bomb_stops_at_the_limit(gateway_user: GatewayUser, workdir: Path) -> None:
    config = _config(
        gateway_user,
        _hostile_command(gateway_user, "fork_bomb.py") + "\nping_interval_s = 1",
        extra=f"[servers.hostile.sandbox.cgroup]\npids = {FORK_CGROUP_PIDS}",
    )
    per_server = "pids" in detect_cgroups(gateway_user.uid).enforced
    async with open_gateway(gateway_user, workdir, config) as gateway:
        assert ("pids" in _per_server((await gateway.units())["hostile"]["limits"])) == per_server
        with anyio.fail_after(CALL_TIMEOUT_S):
            outcome = await gateway.call("hostile__fork", n=2000)
        print(f"[{gateway_user.name}] fork bomb: {outcome}")
        # The pids cgroup where this gateway has one, else RLIMIT_NPROC (per sandbox: a user
        # namespace, or the server's own uid under a root gateway).
        limit = FORK_CGROUP_PIDS if per_server else NPROC
        assert outcome["error"] == "EAGAIN"
        assert limit - ALREADY_RUNNING <= outcome["forked"] < limit, outcome
        assert gateway.alive()
        await gateway.benign_serves()
        assert await gateway.call("hostile__fork", n=3) == {"forked": 3, "error": ""}
        if per_server:
            await wait_recorded(gateway.state, "limit_hit")
    alerts = await recorded(gateway.state)
    if per_server:
        assert list(alerts) == ["limit_hit"]
        assert alerts["limit_hit"][0].startswith("process limit reached: ")
    else:
        assert alerts == {}  # RLIMIT_NPROC refuses forks unseen: nothing is recorded


#: The hostile server's memory where the host enforces cgroups; its children want more together.
HOG_MEMORY = 384 * 1024 * 1024
#: Where only per-process limits hold: RLIMIT_DATA of each process, below one child's want.
HOG_DATA = 128 * 1024 * 1024
HOG_CHILD_MIB = 160
HOG_CHILDREN = 3
#: How memory_hog.py's child exits when its allocation is refused.
REFUSED = 3


async def test_children_filling_memory_are_stopped_at_the_servers_limit(
    gateway_user: GatewayUser, workdir: Path
) -> None:
    # Where this gateway has no cgroup (an ordinary user on a cgroup v1 host) only the per-process
    # RLIMIT_DATA holds: the server as a whole is not bounded, each of its processes is.
    per_server = "memory" in detect_cgroups(gateway_user.uid).enforced
    limit = f"[servers.hostile.sandbox.cgroup]\nmemory_bytes = {HOG_MEMORY}"
    if not per_server:
        limit = f"[servers.hostile.sandbox.limits]\ndata_bytes = {HOG_DATA}"
    config = _config(
        gateway_user, _hostile_command(gateway_user, "memory_hog.py") + "\nping_interval_s = 1", extra=limit
    )
    async with open_gateway(gateway_user, workdir, config) as gateway:
        hostile = (await gateway.units())["hostile"]
        assert ("memory" in _per_server(hostile["limits"])) == per_server, hostile["limits"]
        with anyio.fail_after(CALL_TIMEOUT_S):
            outcomes = await gateway.call(
                "hostile__hog", mib=HOG_CHILD_MIB, children=HOG_CHILDREN, hold_s=2.0
            )
        if per_server:
            peak = int(await (_memory_cgroup(hostile["pid"]) / "memory.max_usage_in_bytes").read_text())
            print(f"[{gateway_user.name}] memory hog: children {outcomes}, peak {peak >> 20} MiB")
            assert -signal.SIGKILL in outcomes, outcomes  # the OOM killer took a child
            assert set(outcomes) <= {0, -signal.SIGKILL}, outcomes
            assert peak <= HOG_MEMORY
        else:
            print(f"[{gateway_user.name}] memory hog: children {outcomes}; {hostile['limits']}")
            assert hostile["limits"].startswith("per process only (cgroup limits not enforced: ")
            assert outcomes == [REFUSED] * HOG_CHILDREN
        assert gateway.alive()
        await gateway.benign_serves()
        if per_server:
            await wait_recorded(gateway.state, "limit_hit")
    alerts = await recorded(gateway.state)
    if per_server:
        assert list(alerts) == ["limit_hit"]
        assert alerts["limit_hit"][0].startswith("memory limit reached: the kernel killed ")
    else:
        assert alerts == {}


def _memory_cgroup(pgid: int) -> anyio.Path:
    """The memory cgroup (v1) the server of process group ``pgid`` runs in."""
    for line in Path(f"/proc/{pgid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return anyio.Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    raise AssertionError(f"process {pgid} is in no memory cgroup")


#: The timed-out call's limit: short, so the test is.
SPIN_TIMEOUT_S = 1.0
#: How long the server's CPU use is measured right after the timeout.
BURN_WINDOW_S = 2.0


async def test_a_server_burning_cpu_past_a_timed_out_call_is_restarted(
    gateway_user: GatewayUser, workdir: Path
) -> None:
    config = _config(
        gateway_user,
        _hostile_command(gateway_user, "cpu_spin.py")
        + f"\ncall_timeout_s = {SPIN_TIMEOUT_S}\nidle_timeout_s = {SPIN_TIMEOUT_S}",
    )
    async with open_gateway(gateway_user, workdir, config) as gateway:
        first = await gateway.call("hostile__boot")
        pgid = (await gateway.units())["hostile"]["pid"]
        with pytest.raises(MCPError) as timed_out:
            await gateway.session.call_tool("hostile__spin", {})
        assert timed_out.value.error.code == REQUEST_TIMEOUT
        assert timed_out.value.error.message == (
            f"server 'hostile' did not answer tools/call (absolute timeout of {SPIN_TIMEOUT_S:g}s)"
        )
        before = group_cpu_seconds(pgid)
        await anyio.sleep(BURN_WINDOW_S)  # a measurement window
        burned = (group_cpu_seconds(pgid) - before) / BURN_WINDOW_S
        print(f"[{gateway_user.name}] CPU in the {BURN_WINDOW_S:g} s after the timeout: {burned:.2f} cores")
        assert burned >= RUNAWAY_CPU_SHARE  # the cancelled call's thread burns on
        await gateway.benign_serves()
        with anyio.fail_after(RUNAWAY_GRACE_S + READY_TIMEOUT_S):
            while (second := await _boot_after_restart(gateway)) in (first, None):  # noqa: ASYNC110
                await anyio.sleep(0.2)
        assert second != first
        assert _group(pgid) == []  # the burning process group is gone
    alerts = await recorded(gateway.state)
    assert list(alerts) == ["runaway_cpu"]
    assert alerts["runaway_cpu"][0].startswith("kept burning CPU after a timed-out call")


# -- 8: a flood of stderr ---------------------------------------------------------------------

FLOOD_MIB = 50


async def test_a_stderr_flood_keeps_the_log_bounded_and_private(
    gateway_user: GatewayUser, workdir: Path
) -> None:
    config = _config(gateway_user, _hostile_command(gateway_user, "stderr_flood.py"))
    async with open_gateway(gateway_user, workdir, config) as gateway:
        log = gateway.state / "logs" / "hostile.log"
        started, served = anyio.current_time(), 0
        assert await gateway.call("hostile__flood", mib=FLOOD_MIB) == "flooding"
        with anyio.fail_after(CALL_TIMEOUT_S):
            while b"flood done\n" not in await anyio.to_thread.run_sync(_tail, log):
                await gateway.benign_serves()  # served while the flood goes on
                assert await gateway.call("hostile__echo", text="x") == "x"
                served += 1
        print(
            f"[{gateway_user.name}] {FLOOD_MIB} MiB of stderr logged in {anyio.current_time() - started:.1f} s, {served} rounds of calls served meanwhile"
        )
        files = [p for p in rotated_paths(log) if p.exists()]
        assert len(files) == ROTATED_LOGS + 1  # 50 MiB went through: rotated, the oldest dropped
        for path in files:
            info = path.stat()
            assert info.st_size <= MAX_LOG_BYTES, (path, info.st_size)
            assert (info.st_mode & 0o777, info.st_uid) == (0o600, gateway_user.uid), path
        await gateway.benign_serves()
    assert await recorded(gateway.state) == {}


def _tail(path: Path, size: int = 4096) -> bytes:
    """The last ``size`` bytes of ``path``."""
    with path.open("rb") as fh:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
        return fh.read()


# -- 9: killing the gateway -------------------------------------------------------------------


async def test_a_server_cannot_kill_the_gateway(gateway_user: GatewayUser, workdir: Path) -> None:
    config = _config(gateway_user, _hostile_command(gateway_user, "kill_gateway.py"))
    async with open_gateway(gateway_user, workdir, config) as gateway:
        units = await gateway.units()
        benign = _group(units["benign"]["pid"])
        targets = [gateway.pid, *benign]
        outcome = await gateway.call("hostile__kill_all", host_pids=targets)
        # It sees only its own pid namespace: bwrap's init (1) and itself.
        assert outcome["visible"] == [1, outcome["self"]]
        assert outcome["parent"] == 1
        assert outcome["kill_host_pids"] == {str(pid): "ESRCH" for pid in targets}
        # bwrap's init ignores a SIGKILL from inside its namespace (the root shape's init is root:
        # not even signalled); kill(-1) reaches nothing else.
        expected_init = "ok" if not gateway_user.is_root else "EPERM"
        assert outcome["kill_parent"] == expected_init
        assert outcome["kill_visible"] == {"1": expected_init}
        assert outcome["kill_minus_1"] == "ESRCH"  # nobody else in reach
        assert gateway.alive()
        assert all(_alive(pid) for pid in benign)
        await gateway.benign_serves()
        assert (await gateway.units())["hostile"]["restarts"] == 0
    assert await recorded(gateway.state) == {}


# -- 10: a user namespace -------------------------------------------------------------------


async def test_a_server_cannot_create_a_user_namespace(gateway_user: GatewayUser, workdir: Path) -> None:
    config = _config(gateway_user, _hostile_command(gateway_user, "unshare_ns.py"))
    async with open_gateway(gateway_user, workdir, config) as gateway:
        assert await gateway.call("hostile__unshare") == {"unshare": "EPERM", "clone": "EPERM"}
        await gateway.benign_serves()
    assert await recorded(gateway.state) == {}


# -- 11: another server's secret ----------------------------------------------------------------


async def test_a_server_cannot_read_another_servers_secret(gateway_user: GatewayUser, workdir: Path) -> None:
    value = f"benign-secret-{secrets.token_hex(12)}"
    config = _config(
        gateway_user,
        _hostile_command(gateway_user, "steal_secret.py"),
        benign=f'env = {{ TOKEN = "${{secret:{SECRET_NAME}}}" }}',
    )

    def set_secret(state: Path) -> None:
        gateway_user.own(state)
        subprocess.run(
            gateway_user.vsm_mcp("--state-dir", str(state), "secrets", "set", SECRET_NAME),
            input=value,
            text=True,
            env=gateway_user.env(),
            capture_output=True,
            check=True,
        )

    async with open_gateway(gateway_user, workdir, config, prepare=set_secret) as gateway:
        assert await gateway.call("benign__env", name="TOKEN") == value  # the secret is live
        benign = _group((await gateway.units())["benign"]["pid"])
        environs = [await anyio.Path(f"/proc/{pid}/environ").read_text() for pid in benign]
        assert any(value in environ for environ in environs)  # there for the taking, on the host
        # The gateway's database, settings and the benign server's prefix: all hidden.
        files = [
            str(gateway.state / n) for n in ("state.db", "state.db-wal", "config.toml", "servers/benign")
        ]
        taken = await gateway.call("hostile__steal", host_pids=[*benign, gateway.pid], files=files)
        assert value not in json.dumps(taken)
        assert taken["host_environ"] == {str(pid): "ENOENT" for pid in [*benign, gateway.pid]}
        assert taken["files"] == dict.fromkeys(files, "ENOENT")
        assert list(taken["visible_environ"]) == ["1"]  # bwrap's init, its own sandbox's
        await gateway.benign_serves()
    assert await recorded(gateway.state) == {}
