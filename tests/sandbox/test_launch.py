"""plan_launch (pure): the environment, the policy without bwrap, the shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsm_mcp.errors import SandboxError, SandboxUnavailableError
from vsm_mcp.sandbox import Host, SandboxProfile, plan_launch
from vsm_mcp.sandbox.limits import derived_uid

PREFIX = Path("/state/servers/time")


def host(
    *, uid: int = 1000, bwrap: str | None = "/usr/bin/bwrap", setpriv: str | None = "/usr/bin/setpriv"
) -> Host:
    return Host(
        uid=uid,
        bwrap=bwrap,
        bwrap_problem="" if bwrap else "bwrap not found (apt-get install bubblewrap)",
        prlimit="/usr/bin/prlimit",
        setpriv=setpriv,
        protected=(Path("/state"),),
        private_tmp=("/tmp",),
        lang="en_GB.UTF-8",
        environ={"GITHUB_TOKEN": "from-gateway", "AWS_SECRET_ACCESS_KEY": "never", "PATH": "/home/u/bin"},
    )


def test_environment_is_exactly_the_sandbox_variables_passes_and_declared() -> None:
    profile = SandboxProfile(prefix=PREFIX, env_pass=("GITHUB_TOKEN", "NOT_SET"))
    plan = plan_launch("/opt/node/bin/node", ["s.js"], {"API_KEY": "k", "LANG": "C"}, profile, host())
    assert dict(plan.env) == {
        "PATH": "/state/servers/time/bin:/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/state/servers/time/home",
        "LANG": "C",  # declared wins
        "TMPDIR": "/tmp",
        "npm_config_cache": "/state/servers/time/home/.npm",
        "XDG_CACHE_HOME": "/state/servers/time/home/.cache",
        "GITHUB_TOKEN": "from-gateway",
        "API_KEY": "k",
    }
    assert plan.cwd == str(PREFIX / "home")
    assert (plan.sandboxed, plan.run_as) == (True, None)
    assert plan.argv[-3:] == ("--", "/opt/node/bin/node", "s.js")
    assert "--nproc=256" in plan.argv


def test_without_bwrap_the_policy_refuses_by_default() -> None:
    with pytest.raises(
        SandboxUnavailableError, match=r"bwrap not found .*does not allow running unsandboxed"
    ):
        plan_launch("/usr/bin/server", [], {}, SandboxProfile(prefix=PREFIX), host(bwrap=None))


def test_without_bwrap_an_allowed_server_runs_limited_but_unsandboxed() -> None:
    profile = SandboxProfile(prefix=PREFIX, unsandboxed_allowed=True)
    plan = plan_launch("/usr/bin/server", ["-v"], {}, profile, host(bwrap=None))
    # no nproc: outside a user namespace it would count every process of the gateway's user
    assert plan.argv == (
        *("/usr/bin/prlimit", "--data=4294967296", "--cpu=3600:3602"),
        *("--fsize=1073741824", "--nofile=4096", "--", "/usr/bin/server", "-v"),
    )
    assert not plan.sandboxed
    assert plan.describe().startswith("UNSANDBOXED: /usr/bin/prlimit")


def test_a_root_gateway_runs_each_server_as_its_own_uid() -> None:
    plan = plan_launch("/usr/bin/server", [], {}, SandboxProfile(prefix=PREFIX), host(uid=0))
    uid = derived_uid(PREFIX)
    assert plan.run_as == uid
    assert f"--reuid={uid}" in plan.argv
    assert plan.argv.index("/usr/bin/setpriv") < plan.argv.index("/usr/bin/prlimit")
    pinned = plan_launch(
        "/usr/bin/server", [], {}, SandboxProfile(prefix=PREFIX, run_as_uid=4242), host(uid=0)
    )
    assert pinned.run_as == 4242


def test_a_root_gateway_without_setpriv_refuses() -> None:
    with pytest.raises(SandboxError, match="setpriv"):
        plan_launch("/usr/bin/server", [], {}, SandboxProfile(prefix=PREFIX), host(uid=0, setpriv=None))


def test_a_working_directory_outside_the_writable_paths_is_bound_read_only() -> None:
    profile = SandboxProfile(prefix=PREFIX)
    inside = plan_launch("/usr/bin/s", [], {}, profile, host(), cwd=PREFIX / "home" / "app")
    assert "/state/servers/time/home/app" not in inside.argv[: inside.argv.index("--chdir")]
    outside = plan_launch("/usr/bin/s", [], {}, profile, host(), cwd=Path("/opt/app"))
    assert outside.argv[outside.argv.index("/opt/app") - 1 : outside.argv.index("/opt/app") + 2] == (
        "--ro-bind",
        "/opt/app",
        "/opt/app",
    )
    assert outside.cwd == "/opt/app"
    assert outside.argv[outside.argv.index("--chdir") + 1] == "/opt/app"


def test_the_prefix_is_read_only_and_only_its_home_is_writable() -> None:
    plan = plan_launch("/usr/bin/s", [], {}, SandboxProfile(prefix=PREFIX), host())
    argv = plan.argv
    assert argv[
        argv.index("--ro-bind", argv.index("/proc")) : argv.index("--ro-bind", argv.index("/proc")) + 3
    ] == (
        "--ro-bind",
        str(PREFIX),
        str(PREFIX),
    )
    assert ("--bind", f"{PREFIX}/home", f"{PREFIX}/home") == argv[
        argv.index("--bind") : argv.index("--bind") + 3
    ]
    assert argv.count("--bind") == 1
    # the protected state dir holds the prefix: only an empty mount-point directory of it exists inside
    assert argv[argv.index("/state") - 3 : argv.index("/state") + 1] == ("--perms", "0755", "--dir", "/state")
    assert "--tmpfs" not in argv[argv.index("/state") - 1 : argv.index("/state")]
