"""Fixtures of the conformance tests: the installed suite, and the fixture server over HTTP.

Processes started here are started in their own session and stopped as a
whole process group, so nothing outlives the test that needed it.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .suite import REPO_ROOT, ScenarioResult, SuiteTools, SuiteUnavailable, install_tools, run_suite

FIXTURE_SERVER = REPO_ROOT / "tests" / "fixtures" / "conformance_server.py"
#: Adds the gateway's bearer token for the suite, which cannot send headers (see its docstring).
BEARER_PROXY = REPO_ROOT / "tests" / "conformance" / "bearer_proxy.py"
# Importing the SDK and uvicorn takes ~1 s; the machine is shared, so allow 30.
FIXTURE_START_TIMEOUT_S = 30.0
# A process asked to stop gets this long before it is killed.
STOP_GRACE_S = 5.0


@contextmanager
def process_group(command: list[str], **popen: object) -> Iterator[subprocess.Popen[str]]:
    """Run `command` in a new session; on exit stop its whole process group (TERM, then KILL)."""
    process = subprocess.Popen(command, start_new_session=True, text=True, **popen)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
            if process.poll() is not None:
                break
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The next stdout line of `process`, waiting at most `timeout` seconds.

    Raises:
        AssertionError: the process exited or stayed silent; its stderr is in the message.
    """
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if selector.select(timeout=left):
                line = process.stdout.readline()
                if line:
                    return line.strip()
                break  # EOF: the process closed stdout, i.e. it exited
    process.kill()
    _, stderr = process.communicate()
    raise AssertionError(f"{process.args!r} printed no line within {timeout} s; stderr:\n{stderr[-3000:]}")


@pytest.fixture(scope="session")
def suite_tools() -> SuiteTools:
    try:
        return install_tools()
    except SuiteUnavailable as exc:
        message = f"Node 22 / the MCP conformance suite is absent and could not be installed: {exc}"
        print(message, file=sys.stderr)
        pytest.skip(message)


@pytest.fixture(scope="session")
def fixture_http_url() -> Iterator[str]:
    """The conformance fixture server over streamable HTTP on a free loopback port."""
    command = [sys.executable, str(FIXTURE_SERVER), "--http", "127.0.0.1:0"]
    with process_group(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as server:
        line = read_line(server, FIXTURE_START_TIMEOUT_S)
        assert line.startswith("listening http://127.0.0.1:"), line
        yield line.split(" ", 1)[1]


@pytest.fixture(scope="session")
def direct_results(
    suite_tools: SuiteTools, fixture_http_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ScenarioResult]:
    """The suite's verdicts for the fixture server itself (run once per session)."""
    return run_suite(suite_tools, fixture_http_url, tmp_path_factory.mktemp("direct"))


@pytest.fixture
def fixture_server_path() -> Path:
    return FIXTURE_SERVER
