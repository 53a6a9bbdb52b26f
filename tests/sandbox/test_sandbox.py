"""Sandbox: command resolution, runtimes outside the system view, prepared directories, trusted plans."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from vsm_mcp.errors import SandboxError
from vsm_mcp.sandbox import Host, Sandbox, SandboxProfile
from vsm_mcp.sandbox.bwrap import SystemLink
from vsm_mcp.sandbox.launch import SYSTEM_PATH
from vsm_mcp.sandbox.limits import derived_uid
from vsm_mcp.sandbox.system import SystemView


def _host(protected: tuple[Path, ...] = (), uid: int = 1000, path: str = "/usr/bin:/bin") -> Host:
    """A host whose system view is /usr alone: anything under a test's tmp_path is invisible inside."""
    return Host(
        uid=uid,
        bwrap="/usr/bin/bwrap",
        bwrap_problem="",
        prlimit="/usr/bin/prlimit",
        setpriv="/usr/bin/setpriv",
        system=SystemView((Path("/usr"),), (SystemLink(Path("/bin"), "usr/bin"),)),
        protected=protected,
        environ={"PATH": path},
    )


def _executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_a_venv_script_brings_its_invisible_interpreter_along(tmp_path: Path) -> None:
    home = tmp_path / "home"
    interpreter = _executable(home / ".pyenv/versions/3.11/bin/python3.11", "")
    prefix = tmp_path / "servers/time"
    (prefix / "venv/bin").mkdir(parents=True)
    (prefix / "venv/bin/python").symlink_to(interpreter)
    script = _executable(prefix / "venv/bin/mcp-server-time", f"#!{prefix}/venv/bin/python\n")
    sandbox = Sandbox(SandboxProfile(prefix=prefix), _host())
    # the venv is inside the prefix (bound read-only anyway); its interpreter is not
    assert sandbox.runtime_paths(script) == [home / ".pyenv/versions/3.11"]


def test_an_install_root_holding_a_protected_place_is_not_exposed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tool = _executable(home / ".local/bin/uvx", "")
    state = home / ".local/state/vsm"
    state.mkdir(parents=True)
    sandbox = Sandbox(SandboxProfile(prefix=state / "servers/a"), _host((state,)))
    assert sandbox.runtime_paths(tool) == [home / ".local/bin"]  # not ~/.local, which holds the state


def test_a_top_level_directory_is_never_bound_for_a_command(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxProfile(prefix=tmp_path / "servers/a"), _host())
    # /opt/bin/x would make /opt its install root: only /opt/bin is bound, not the rest of /opt
    assert sandbox._install_root(Path("/opt/bin/x")) == Path("/opt/bin")
    assert sandbox._install_root(Path("/x")) == Path("/x")


def test_a_launcher_the_server_can_write_is_refused(tmp_path: Path) -> None:
    prefix = tmp_path / "servers/a"
    profile = SandboxProfile(prefix=prefix, data_dirs=(tmp_path / "data",))
    sandbox = Sandbox(profile, _host())
    in_home = _executable(prefix / "home/bin/server", "#!/usr/bin/python3\n")
    in_data = _executable(tmp_path / "data/server", "")
    for launcher in (in_home, in_data):
        with pytest.raises(SandboxError, match="which the server can write"):
            sandbox.runtime_paths(launcher)
    # and a launcher whose interpreter chain leads there (a shebang naming a file in its home)
    chained = _executable(prefix / "bin/server", f"#!{in_home}\n")
    with pytest.raises(SandboxError, match=f"the launcher {in_home} lies in {prefix / 'home'}"):
        sandbox.runtime_paths(chained)


def test_commands_resolve_on_the_sandbox_path_then_the_gateways(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    own = _executable(prefix / "bin/server")
    gateway_bin = tmp_path / "gw-bin"
    uvx = _executable(gateway_bin / "uvx")
    sandbox = Sandbox(SandboxProfile(prefix=prefix), _host(path=str(gateway_bin)))
    assert sandbox.resolve("server", {}, None) == own
    assert sandbox.resolve("uvx", {}, None) == uvx
    assert sandbox.resolve("bin/server", {}, None) == own  # relative to the prefix
    with pytest.raises(SandboxError, match="'nope' not found on the sandbox's PATH"):
        sandbox.resolve("nope", {}, None)
    with pytest.raises(SandboxError, match="does not exist or is not executable"):
        sandbox.resolve("./missing", {}, None)


def test_wrap_creates_the_writable_directories(tmp_path: Path) -> None:
    prefix, data = tmp_path / "p", tmp_path / "data"
    sandbox = Sandbox(SandboxProfile(prefix=prefix, data_dirs=(data,)), _host())
    plan = sandbox.wrap("sh", ["-c", "true"])
    assert (prefix / "home").is_dir() and data.is_dir()
    expected = shutil.which("sh", path=":".join(SYSTEM_PATH))
    assert plan.argv[-3:] == (expected, "-c", "true")


@pytest.mark.skipif(os.geteuid() != 0, reason="handing directories to another uid needs root")
def test_a_root_gateway_hands_only_the_writable_tree_to_the_server_uid(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    _executable(prefix / "node_modules/.bin/tool")
    (prefix / "home").mkdir()
    (prefix / "home/link").symlink_to("/etc/passwd")
    sandbox = Sandbox(SandboxProfile(prefix=prefix), _host(uid=0))
    sandbox.prepare()
    uid = derived_uid(prefix)
    home = prefix / "home"
    assert {os.lstat(p).st_uid for p in [home, *home.rglob("*")]} == {uid}
    # the install tree stays the gateway's: the server cannot rewrite its own code
    assert {os.lstat(p).st_uid for p in [prefix, *(prefix / "node_modules").rglob("*")]} == {0}
    assert os.stat("/etc/passwd").st_uid == 0  # the symlink itself changed hands, not its target


def test_detect_shows_the_system_and_nothing_of_homes_or_opt() -> None:
    host = Host.detect(state_dir=Path("/usr/x"))
    roots = set(host.system.roots)
    assert Path("/usr") in roots and Path("/etc/ld.so.cache") in roots
    for absent in ("/", "/etc", "/opt", "/srv", "/var", "/var/lib", "/sys", "/home", "/root", "/run"):
        assert Path(absent) not in roots
    assert not any(str(p).startswith("/etc/shadow") for p in roots)


def test_the_program_file_a_command_runs_is_readable_even_from_a_private_tmp(tmp_path: Path) -> None:
    # A checkout under /tmp: the sandbox gives the server an empty /tmp, so the script's directory
    # must be bound read-only, or `python /tmp/.../server.py` finds nothing.
    checkout = tmp_path / "checkout"
    script = _executable(checkout / "servers/server.py", "print('hi')\n")
    state = tmp_path / "state"
    (state / "secret.txt").parent.mkdir(parents=True)
    (state / "secret.txt").write_text("no")
    host = _host((state,))
    sandbox = Sandbox(SandboxProfile(prefix=state / "servers/a"), host)
    assert sandbox.program_paths([str(script), "--flag", "not-a-file"], None) == [checkout / "servers"]
    # never a protected place, even when the command names a file there
    assert sandbox.program_paths([str(state / "secret.txt")], None) == []


def test_an_npm_package_in_a_hidden_prefix_brings_its_whole_prefix(tmp_path: Path) -> None:
    prefix = tmp_path / "checkout/.tools/npm"
    entry = _executable(prefix / "node_modules/@scope/server/dist/index.js", "#!/bin/sh\n")
    (prefix / "node_modules/.bin").mkdir(parents=True)
    (prefix / "node_modules/.bin/server").symlink_to(entry)
    sandbox = Sandbox(SandboxProfile(prefix=tmp_path / "state/servers/a"), _host((tmp_path / "state",)))
    # the package imports its dependencies from node_modules: the whole npm prefix must be readable
    assert sandbox.runtime_paths(prefix / "node_modules/.bin/server") == [prefix]


def test_node_running_a_package_file_from_a_hidden_prefix_gets_the_prefix(tmp_path: Path) -> None:
    prefix = tmp_path / "checkout/.tools/npm"
    entry = _executable(prefix / "node_modules/@scope/server/dist/index.js", "")
    sandbox = Sandbox(SandboxProfile(prefix=tmp_path / "state/servers/a"), _host((tmp_path / "state",)))
    assert sandbox.program_paths([str(entry)], None) == [prefix]


def test_a_program_file_in_the_servers_own_prefix_is_pinned_though_the_state_dir_is_protected(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    prefix = state / "servers" / "a"
    program = _executable(prefix / "server.py", "print('hi')\n")
    secret = state / "secret.txt"
    secret.write_text("no")
    sandbox = Sandbox(SandboxProfile(prefix=prefix), _host((state,)))
    assert sandbox.program_files([str(program), str(secret)], None) == [program]


def test_uvx_beside_the_gateways_interpreter_is_found_without_being_on_path(tmp_path: Path) -> None:
    beside = Path(sys.executable).parent / "uvx"
    assert beside.exists(), "uv is a dependency: its uvx lies beside the interpreter"
    sandbox = Sandbox(SandboxProfile(prefix=tmp_path / "p"), _host(path="/nonexistent"))
    assert sandbox.resolve("uvx", {}, None) == Path(os.path.abspath(beside))
