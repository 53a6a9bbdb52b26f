"""The official MCP conformance suite against our fixture server, and against the gateway fronting it.

The claim under test (PRODUCT.md, "conformance-suite clean"): a client talking
to `vsm-mcp serve` sees the same protocol as a client talking to the
downstream server directly, so the gateway passes every server scenario the
fixture server passes on its own, and no scenario gets worse through it.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.tokens import AdminTokenFile

from .conftest import BEARER_PROXY, FIXTURE_SERVER, FIXTURE_START_TIMEOUT_S, process_group, read_line
from .suite import ScenarioResult, SuiteTools, Verdict, format_summary, passed, run_suite

pytestmark = [pytest.mark.slow, pytest.mark.external]

# Measured with @modelcontextprotocol/conformance 0.1.16 (`--suite all`, 32 server scenarios).
EXPECTED_DIRECT_PASS = frozenset(
    {
        "server-initialize",
        "logging-set-level",
        "ping",
        "completion-complete",
        "tools-list",
        "tools-call-simple-text",
        "tools-call-image",
        "tools-call-audio",
        "tools-call-embedded-resource",
        "tools-call-mixed-content",
        "tools-call-with-logging",
        "tools-call-error",
        "tools-call-with-progress",
        "tools-call-sampling",
        "tools-call-elicitation",
        "json-schema-2020-12",
        "elicitation-sep1034-defaults",
        "server-sse-multiple-streams",
        "elicitation-sep1330-enums",
        "resources-list",
        "resources-read-text",
        "resources-read-binary",
        "resources-templates-read",
        "resources-subscribe",
        "resources-unsubscribe",
        "prompts-list",
        "prompts-get-simple",
        "prompts-get-with-args",
        "prompts-get-embedded-resource",
        "prompts-get-with-image",
        "dns-rebinding-protection",
    }
)
# Warnings only, no failure: the scenario's raw POST declares protocol version
# 2025-03-26, and the SDK primes/closes SSE streams only for >= 2025-11-25
# clients, so the reconnection path it wants to observe is never taken.
EXPECTED_DIRECT_NO_VERDICT = frozenset({"server-sse-polling"})


def _gateway_present() -> bool:
    """True once `vsm_mcp.gateway` is a real package (an empty directory is not)."""
    spec = importlib.util.find_spec("vsm_mcp.gateway")
    return spec is not None and spec.origin is not None


GATEWAY_PRESENT = _gateway_present()
# Spawning the fixture under the gateway and finishing both handshakes; generous
# because two cores are shared with other test runs.
GATEWAY_READY_TIMEOUT_S = 90.0
# Between readiness probes of a gateway that is still starting.
READY_POLL_S = 0.2


def test_fixture_server_passes_the_expected_scenarios(
    suite_tools: SuiteTools, direct_results: dict[str, ScenarioResult]
) -> None:
    report = format_summary(direct_results)
    print(report)
    assert direct_results.keys() >= EXPECTED_DIRECT_PASS | EXPECTED_DIRECT_NO_VERDICT, report
    assert passed(direct_results) >= EXPECTED_DIRECT_PASS, report
    no_verdict = {name for name, r in direct_results.items() if r.verdict is Verdict.NO_VERDICT}
    assert no_verdict <= EXPECTED_DIRECT_NO_VERDICT, report


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _write_settings(state_dir: Path, downstream: str) -> None:
    """One `[servers.conformance]` table: the fixture over stdio, or the running fixture's URL."""
    if downstream.startswith("http://"):
        reach = f"url = {json.dumps(downstream)}\n"
    else:
        reach = (
            f"command = {json.dumps(sys.executable)}\nargs = {json.dumps([str(FIXTURE_SERVER), '--stdio'])}\n"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "config.toml").write_text(
        f'[servers.conformance]\n{reach}namespace = ""\n', encoding="utf-8"
    )


def _serve_command(state_dir: Path, port: int) -> list[str]:
    """`vsm-mcp --state-dir DIR serve --http 127.0.0.1:PORT`, with this test's interpreter."""
    entry = "from vsm_mcp.cli.app import main; main()"
    return [
        sys.executable,
        "-c",
        entry,
        "--state-dir",
        str(state_dir),
        "serve",
        "--http",
        f"127.0.0.1:{port}",
    ]


async def _wait_until_fronting(url: str, gateway: subprocess.Popen[str], tool: str, state_dir: Path) -> None:
    """Return once the gateway at `url` lists the fixture's `tool`; fail if it exits first."""
    last_error = "no attempt yet"
    with anyio.fail_after(GATEWAY_READY_TIMEOUT_S):
        while gateway.poll() is None:
            try:
                token = AdminTokenFile.in_state(state_dir).read()  # made at the gateway's first start
                async with bearer_client(url, token, mode="legacy") as client:
                    names = {t.name for t in (await client.list_tools()).tools}
                if tool in names:
                    return
                last_error = f"tools so far: {sorted(names)}"
            except Exception as exc:  # readiness probe: any failure means "not yet"
                last_error = repr(exc)
            await anyio.sleep(READY_POLL_S)
    raise AssertionError(
        f"gateway exited with {gateway.returncode} before fronting the fixture: {last_error}"
    )


@pytest.mark.xfail(
    not GATEWAY_PRESENT,
    strict=True,
    reason="vsm_mcp.gateway does not exist yet; this turns into a real test when it lands",
)
@pytest.mark.parametrize("downstream", ["stdio", "http"])
def test_gateway_passes_every_scenario_the_fixture_passes(
    suite_tools: SuiteTools,
    direct_results: dict[str, ScenarioResult],
    fixture_http_url: str,
    downstream: str,
    tmp_path: Path,
) -> None:
    """The gateway fronts the fixture over stdio (a spawned unit) or over streamable HTTP (a URL unit)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    state_dir = tmp_path / "state"
    _write_settings(state_dir, fixture_http_url if downstream == "http" else "stdio")
    command = _serve_command(state_dir, port)
    print("gateway:", " ".join(command))
    gateway_log = tmp_path / "gateway.log"
    with (
        gateway_log.open("w") as log,
        process_group(command, stdout=log, stderr=subprocess.STDOUT) as gateway,
    ):
        try:
            anyio.run(_wait_until_fronting, url, gateway, "test_simple_text", state_dir)
        except BaseException:
            print(gateway_log.read_text(encoding="utf-8")[-5000:])
            raise
        # The suite cannot send a header: it talks to the gateway through a loopback proxy that adds
        # the admin token (and nothing else the gateway checks: its Host/Origin probes pass unchanged).
        token_file = str(state_dir / "admin.token")
        proxy = [sys.executable, str(BEARER_PROXY), "--upstream", url, "--token-file", token_file]
        with process_group(proxy, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as forwarding:
            line = read_line(forwarding, FIXTURE_START_TIMEOUT_S)
            assert line.startswith("listening http://127.0.0.1:"), line
            results = run_suite(suite_tools, line.split(" ", 1)[1], tmp_path / "through-gateway")
    report = format_summary(results)
    print(report)
    lost = sorted(passed(direct_results) - passed(results))
    worse = sorted(name for name, r in direct_results.items() if results[name].verdict < r.verdict)
    assert not lost, f"the gateway loses {lost}:\n{report}"
    assert not worse, f"scenarios worse through the gateway: {worse}:\n{report}"
