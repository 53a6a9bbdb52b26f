"""A server tries to break out of its sandbox, for real, in both shapes; every attempt fails exactly.

Each attempt runs `tests/fixtures/escape/attempt.py` under bubblewrap with a
`LaunchPlan` from `Sandbox.wrap`, and the outcome the server saw (an errno,
a signal, an exception) is asserted, together with the host-side evidence.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vsm_mcp.sandbox import SandboxProfile
from vsm_mcp.sandbox.launch import TRUST_STORE_ENV
from vsm_mcp.sandbox.limits import derived_uid

pytestmark = pytest.mark.external

MIB = 1024**2


def test_writes_outside_the_home_fail(shape: Any, layout: Any) -> None:
    profile = layout.profile()
    # The layout lives under /tmp, which is the server's own tmpfs inside: the state dir's path
    # there is only a mount-point directory (root-owned in the root shape, the user's in its
    # namespace in the user shape), and nothing written there reaches the host.
    in_tmp = {"root": {"errno": "EACCES"}, "user": {"ok": True}}[shape.name]
    targets = {
        layout.prefix / "evil": {"errno": "EROFS"},  # its own install tree: read-only
        layout.prefix / "bin": {"errno": "EROFS"},
        layout.state / "evil": in_tmp,
        layout.other_prefix / "evil": {"errno": "ENOENT"},  # another server's prefix: not even there
        Path("/etc/evil"): {"errno": "EROFS"},
        Path("/usr/evil"): {"errno": "EROFS"},
        Path("/evil"): {"errno": "EROFS"},  # the root is an empty tmpfs, read-only
        Path.home() / "evil": {"errno": "ENOENT"},  # the gateway user's home does not exist inside
    }
    for target, expected in targets.items():
        code, report, stderr = shape.attempt(profile, "write", str(target))
        assert (code, report) == (0, expected), (target, stderr)
        assert not target.exists()


def test_writes_inside_the_home_and_private_tmp_succeed(shape: Any, layout: Any) -> None:
    profile = layout.profile()
    mine = profile.home / "data.txt"
    scratch = Path("/tmp") / f"vsm-sandbox-{uuid.uuid4().hex}"
    assert shape.attempt(profile, "write", str(mine))[:2] == (0, {"ok": True})
    assert mine.read_text() == "escaped\n"
    assert shape.attempt(profile, "write", str(scratch))[:2] == (0, {"ok": True})
    assert not scratch.exists()  # the server's /tmp is its own


def test_declared_data_dir_is_writable_and_nothing_beside_it(shape: Any, layout: Any) -> None:
    data = layout.base / "data"
    data.mkdir()
    profile = SandboxProfile(prefix=layout.prefix, data_dirs=(data,))
    assert shape.attempt(profile, "write", str(data / "kept"))[:2] == (0, {"ok": True})
    assert (data / "kept").read_text() == "escaped\n"
    # Next to it is the server's private /tmp (the layout lives in /tmp), where bwrap made the
    # path for the mount point: owned by root in the root shape, nothing lands on the host.
    beside = layout.base / "beside"
    outcome = {"root": {"errno": "EACCES"}, "user": {"ok": True}}[shape.name]
    assert shape.attempt(profile, "write", str(beside))[:2] == (0, outcome)
    assert not beside.exists()
    assert shape.attempt(profile, "write", str(Path("/var/lib/beside")))[:2] == (0, {"errno": "ENOENT"})


def test_host_places_outside_the_allow_list_are_invisible(shape: Any, layout: Any) -> None:
    # A world-readable secret in an /opt-like place, and the system directories a server never needs.
    canary = layout.base / "opt-secret"
    canary.write_text("world-readable canary\n")
    canary.chmod(0o644)
    profile = layout.profile()
    # named in the environment, not argv: a file the command line names is bound as a program file
    assert shape.attempt(profile, "read", "env:CANARY", env={"CANARY": str(canary)})[:2] == (
        0,
        {"errno": "ENOENT"},
    )
    for path in ("/opt", "/srv", "/var/lib", "/sys/kernel", "/home", "/root", "/run", "/mnt"):
        assert shape.attempt(profile, "read", path)[:2] == (0, {"errno": "ENOENT"}), path
    # what a server needs to run is there, read-only
    assert shape.attempt(profile, "read", "/etc/ld.so.cache")[:2] != (0, {"errno": "ENOENT"})
    assert shape.attempt(profile, "read", "/etc/shadow")[:2] == (0, {"errno": "ENOENT"})


def test_secrets_in_the_state_dir_and_other_prefixes_are_invisible(shape: Any, layout: Any) -> None:
    profile = layout.profile()
    assert layout.secret.read_text() == "the gateway's secret\n"  # readable on the host, mode 0644
    for path in (layout.secret, layout.other_token):
        assert shape.attempt(profile, "read", str(path))[:2] == (0, {"errno": "ENOENT"})


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on the host's 127.0.0.1 that greets every connection with b"hello"."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

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
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_network_off_cannot_reach_the_host_loopback(shape: Any, layout: Any, listener: int) -> None:
    code, report, _ = shape.attempt(layout.profile(), "connect", "127.0.0.1", str(listener))
    assert (code, report) == (0, {"errno": "ECONNREFUSED"})  # its own loopback, where nothing listens
    code, report, _ = shape.attempt(layout.profile(), "connect", "192.0.2.1", "80")
    assert (code, report) == (0, {"errno": "ENETUNREACH"})  # and no route anywhere else


def test_network_on_cannot_reach_the_host_loopback(shape: Any, layout: Any, listener: int) -> None:
    # An egress namespace of its own (`vsm_mcp.sandbox.egress`; more in test_egress.py).
    code, report, stderr = shape.attempt(layout.profile(network=True), "connect", "127.0.0.1", str(listener))
    assert (code, report) == (0, {"errno": "ECONNREFUSED"}), stderr  # its own loopback
    code, report, stderr = shape.attempt(layout.profile(network=True), "connect", "10.0.2.2", str(listener))
    assert (code, report) == (0, {"errno": "ENETUNREACH"}), stderr  # slirp4netns's alias of the host's


def test_host_processes_are_invisible(shape: Any, layout: Any) -> None:
    code, report, _ = shape.attempt(layout.profile(), "procs", str(os.getpid()))
    # pid 1 is bwrap's init in the server's pid namespace, pid 2 the server.
    assert (code, report) == (0, {"pid": 2, "pids": [1, 2], "host_pid_visible": False})


def test_fork_bomb_stops_at_nproc(shape: Any, layout: Any) -> None:
    code, report, stderr = shape.attempt(layout.profile(nproc=32), "forkbomb", "200")
    assert code == 0, stderr
    assert report is not None
    # root shape: the server's uid owns the server and its children (bwrap's init is root's);
    # user shape: the user namespace counts bwrap's init too. Either way 32 processes, no more.
    forked = {"root": 31, "user": 30}[shape.name]
    assert report == {"forked": forked, "procs": 33 if shape.name == "root" else 32, "errno": "EAGAIN"}


def test_allocation_past_the_address_space_limit_fails(shape: Any, layout: Any) -> None:
    profile = layout.profile(address_space_bytes=256 * MIB, data_bytes=None)
    assert shape.attempt(profile, "alloc", str(16 * MIB))[:2] == (0, {"ok": True, "len": 16 * MIB})
    assert shape.attempt(profile, "alloc", str(512 * MIB))[:2] == (0, {"error": "MemoryError"})


def test_allocation_past_the_data_limit_fails(shape: Any, layout: Any) -> None:
    profile = layout.profile(data_bytes=256 * MIB)
    assert shape.attempt(profile, "alloc", str(16 * MIB))[:2] == (0, {"ok": True, "len": 16 * MIB})
    assert shape.attempt(profile, "alloc", str(512 * MIB))[:2] == (0, {"error": "MemoryError"})


def test_file_past_fsize_is_cut_at_the_limit(shape: Any, layout: Any) -> None:
    profile = layout.profile(fsize_bytes=1 * MIB)
    big = profile.home / "big"
    code, report, _ = shape.attempt(profile, "bigfile", str(big), str(4 * MIB))
    assert (code, report) == (0, {"written": 1 * MIB, "errno": "EFBIG"})
    assert big.stat().st_size == 1 * MIB


@pytest.mark.slow
def test_cpu_hog_is_killed_by_sigxcpu(shape: Any, layout: Any) -> None:
    started = time.monotonic()
    code, report, _ = shape.attempt(layout.profile(cpu_seconds=1), "spin", "20")
    elapsed = time.monotonic() - started
    assert (code, report) == (128 + signal.SIGXCPU, None)  # bwrap reports a signal death as 128 + signo
    assert elapsed < 10  # one CPU second, not the 20 s the loop asked for


def test_environment_is_only_what_was_declared(
    shape: Any, layout: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VSM_TEST_GATEWAY_SECRET", "must not leak")
    monkeypatch.setenv("VSM_TEST_PASSED", "passed on purpose")
    shape = shape.redetect(layout.state)  # the host snapshot must see the patched environment
    host = shape.host
    profile = SandboxProfile(prefix=layout.prefix, env_pass=("VSM_TEST_PASSED", "VSM_TEST_ABSENT"))
    code, report, _ = shape.attempt(profile, "environ", env={"API_TOKEN": "s3cret"})
    assert code == 0
    assert report == {
        "environ": {
            "PATH": f"{layout.prefix}/bin:/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/bin",
            "HOME": f"{layout.prefix}/home",
            "LANG": host.lang,
            "TMPDIR": "/tmp",
            "npm_config_cache": f"{layout.prefix}/home/.npm",
            "XDG_CACHE_HOME": f"{layout.prefix}/home/.cache",
            **{name: os.environ[name] for name in TRUST_STORE_ENV if name in os.environ},
            "VSM_TEST_PASSED": "passed on purpose",
            "API_TOKEN": "s3cret",
            "PWD": f"{layout.prefix}/home",  # set by bwrap --chdir
        }
    }


def test_secret_values_never_appear_in_argv_or_repr(shape: Any, layout: Any) -> None:
    plan = shape.sandbox(layout.profile()).wrap(shape.python, ["-c", "pass"], {"API_TOKEN": "s3cret"})
    assert plan.env["API_TOKEN"] == "s3cret"
    assert not any("s3cret" in arg for arg in plan.argv)
    assert "s3cret" not in repr(plan)
    assert "s3cret" not in plan.describe()
    assert "API_TOKEN" in plan.describe()


def test_server_runs_unprivileged(shape: Any, layout: Any) -> None:
    code, report, _ = shape.attempt(layout.profile(), "whoami")
    uid = (
        derived_uid(layout.prefix) if shape.name == "root" else os.geteuid() if shape.owner is None else 65534
    )
    assert (code, report) == (
        0,
        {"uid": uid, "gid": uid, "groups": [], "cap_eff": "0000000000000000", "no_new_privs": "1"},
    )


def test_the_gateways_trust_stores_reach_the_server_read_only(
    shape: Any, layout: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CA bundle in a place the sandbox would not show (as a corporate bundle under /opt would be).
    bundle = layout.base / "corp-ca" / "bundle.pem"
    bundle.parent.mkdir()
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    bundle.chmod(0o644)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    shape = shape.redetect(layout.state)
    code, report, _ = shape.attempt(layout.profile(), "environ")
    assert code == 0 and report is not None
    assert report["environ"]["SSL_CERT_FILE"] == str(bundle)
    read = shape.attempt(layout.profile(), "read", "env:SSL_CERT_FILE", env={})
    assert read[:2] == (0, {"ok": True, "text": "-----BEGIN CERTIFICATE-----\n"})
    assert shape.attempt(layout.profile(), "write", str(bundle))[:2] == (0, {"errno": "EROFS"})
