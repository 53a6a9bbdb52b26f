"""`vsm-mcp bench gateway`: the same client and echo server, direct vs through VSM-MCP vs through FastMCP.

Three targets, all spoken to over stdio by the SDK's `Client` (handshake era):

* direct: ``python -m vsm_mcp.bench.echo_server``;
* gateway: ``python -m vsm_mcp.cli.serve --stdio`` fronting that server (namespace "", so the
  tool is ``echo`` everywhere);
* fastmcp: FastMCP 4's ``create_proxy`` fronting that server, run from its own venv
  (scripts/install-test-servers.sh); skipped, and said so, when it is not installed.

For each: ``calls`` sequential calls, then ``calls`` calls from 16 concurrent workers, after
a warm-up; every latency is measured around the client's ``call_tool``. ``repeat`` passes
interleave the targets and each figure is the median over them. Memory: resident set
of a gateway process with no server vs with ``units`` echo servers, per unit and per tool.
``*_cpu_us_per_call`` is the CPU time (user + system, from /proc) of the process the client talks
to (the echo server, the gateway, the FastMCP proxy) per call. Every number comes from these
runs; nothing is estimated.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

CONCURRENCY = 16
#: Tools per echo server in the memory measurement (1 + this many), so per-tool cost shows.
MEMORY_EXTRA_TOOLS = 24
WARMUP_CALLS = 200
#: How long a target may take to start and list its tools.
START_TIMEOUT_S = 60.0

_FASTMCP_PROXY = """
import sys
from fastmcp.client.transports import StdioTransport
from fastmcp.server import create_proxy

create_proxy(StdioTransport(command=sys.argv[1], args=sys.argv[2:]), name="fastmcp-proxy").run(
    "stdio", show_banner=False
)
"""


def default_fastmcp_python() -> Path:
    root = Path(__file__).resolve().parents[3]
    cache = Path(os.environ.get("VSM_MCP_TEST_SERVERS", root / ".tools" / "test-servers"))
    return cache / "fastmcp-venv" / "bin" / "python"


def _echo_command() -> list[str]:
    return [sys.executable, "-m", "vsm_mcp.bench.echo_server"]


def _gateway_env(state: Path, units: int, extra_tools: int = 0) -> dict[str, str]:
    state.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(units):
        command = [*_echo_command(), "--extra-tools", str(extra_tools)]
        lines += [
            f"[servers.echo{i}]",
            f"command = {json.dumps(command[0])}",
            f"args = {json.dumps(command[1:])}",
            'namespace = ""' if units == 1 else f'namespace = "e{i}"',
        ]
    (state / "config.toml").write_text("\n".join(lines) + "\n")
    return {**os.environ, "VSM_MCP_STATE_DIR": str(state)}


@asynccontextmanager
async def _client(command: list[str], env: dict[str, str] | None = None) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with Client(params, mode="legacy") as client:
        with anyio.fail_after(START_TIMEOUT_S):
            while "echo" not in {t.name for t in (await client.list_tools()).tools}:  # noqa: ASYNC110 - another process
                await anyio.sleep(0.05)
        yield client


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


async def _measure(client: Client, calls: int) -> dict[str, float]:
    for _ in range(WARMUP_CALLS):
        await client.call_tool("echo", {"text": "warm"})
    out: dict[str, float] = {}
    # The process the client talks to, and its CPU time per call over both passes.
    target = max(_children(os.getpid()), default=0)
    cpu_before = _cpu_s(target) if target else 0.0
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(calls):
        t = time.perf_counter()
        await client.call_tool("echo", {"text": f"m{i}"})
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    out |= _summary("", calls, elapsed, latencies)

    concurrent: list[float] = []
    per_worker = max(1, calls // CONCURRENCY)

    async def worker(w: int) -> None:
        for i in range(per_worker):
            t = time.perf_counter()
            await client.call_tool("echo", {"text": f"w{w}-{i}"})
            concurrent.append(time.perf_counter() - t)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(CONCURRENCY):
            tg.start_soon(worker, w)
    elapsed = time.perf_counter() - start
    out |= _summary("concurrent_", per_worker * CONCURRENCY, elapsed, concurrent)
    if target:
        out["cpu_us_per_call"] = round(
            (_cpu_s(target) - cpu_before) / (calls + per_worker * CONCURRENCY) * 1e6, 1
        )
    return out


def _summary(prefix: str, calls: int, elapsed: float, latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        f"{prefix}calls_per_s": round(calls / elapsed, 1),
        f"{prefix}p50_ms": round(cuts[49] * 1000, 3),
        f"{prefix}p99_ms": round(cuts[98] * 1000, 3),
    }


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _gateway_rss(units: int, extra_tools: int, state: Path) -> tuple[int, int]:
    """(gateway RSS in KiB once every unit is ready, tools listed, the gateway's own included)."""
    env = _gateway_env(state, units, extra_tools)
    process = await anyio.open_process(
        [sys.executable, "-m", "vsm_mcp.cli.serve", "--http", "127.0.0.1:0"], env=env, stdout=None
    )
    try:
        assert process.stderr is not None
        url = ""
        with anyio.fail_after(START_TIMEOUT_S):
            buffer = ""
            async for chunk in process.stderr:
                buffer += chunk.decode()
                if "MCP on " in buffer:
                    url = buffer.split("MCP on ", 1)[1].split()[0]
                    break
        async with Client(url, mode="legacy") as client:
            with anyio.fail_after(START_TIMEOUT_S):
                while True:
                    status = (await client.call_tool("vsm_status", {})).structured_content or {}
                    units_up = [u for u in status.get("units", []) if u["state"] == "ready"]
                    if len(units_up) == units:
                        break
                    await anyio.sleep(0.1)
            tools = len((await client.list_tools()).tools)
            for _ in range(3 * units):  # let every session settle
                await client.call_tool("vsm_status", {})
            return _rss_kib(process.pid), tools
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await process.wait()


async def run(
    calls: int = 2000, units: int = 8, fastmcp_python: Path | None = None, repeat: int = 3
) -> dict[str, Any]:
    """Measure everything; returns the JSON document ``bench gateway --json`` prints."""
    result: dict[str, Any] = {
        "calls": calls,
        "repeat": repeat,
        "concurrency": CONCURRENCY,
        "downstream": "vsm_mcp.bench.echo_server",
    }
    with tempfile.TemporaryDirectory(prefix="vsm-bench-") as tmp:
        targets: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "direct": (_echo_command(), None),
            "gateway": (
                [sys.executable, "-m", "vsm_mcp.cli.serve", "--stdio"],
                _gateway_env(Path(tmp) / "gw", 1),
            ),
        }
        python = fastmcp_python or default_fastmcp_python()
        if python.exists():
            script = Path(tmp) / "fastmcp_proxy.py"
            script.write_text(_FASTMCP_PROXY)
            targets["fastmcp_proxy"] = ([str(python), str(script), *_echo_command()], None)
        else:
            result["fastmcp_proxy_skipped"] = (
                f"FastMCP not installed at {python} (scripts/install-test-servers.sh)"
            )
        # Passes interleave the targets, so a burst of load on a shared machine hits all of them;
        # each figure is the median over the passes.
        passes: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for _ in range(repeat):
            for name, (command, env) in targets.items():
                async with _client(command, env) as client:
                    passes[name].append(await _measure(client, calls))
        for name, runs in passes.items():
            for key in runs[0]:
                result[f"{name}_{key}"] = round(statistics.median(r[key] for r in runs), 3)
        # Three gateways: no server; `units` servers of 1 tool; `units` servers of 1 + MEMORY_EXTRA_TOOLS.
        rss_empty, own_tools = await _gateway_rss(0, 0, Path(tmp) / "m0")
        rss_small, small_tools = await _gateway_rss(units, 0, Path(tmp) / "m1")
        rss_big, big_tools = await _gateway_rss(units, MEMORY_EXTRA_TOOLS, Path(tmp) / "m2")
        small_tools -= own_tools  # the VSM tools every gateway lists
        big_tools -= own_tools
    per_tool = (rss_big - rss_small) / max(big_tools - small_tools, 1)
    result["memory_units"] = units
    result["memory_tools"] = big_tools
    result["gateway_rss_kib_no_units"] = rss_empty
    result[f"gateway_rss_kib_{units}_units_{small_tools}_tools"] = rss_small
    result[f"gateway_rss_kib_{units}_units_{big_tools}_tools"] = rss_big
    result["memory_per_tool_kib"] = round(per_tool, 2)
    result["memory_per_unit_kib"] = round((rss_small - rss_empty) / units - per_tool * small_tools / units, 1)
    for mode in ("", "concurrent_"):
        direct = result[f"direct_{mode}calls_per_s"]
        result[f"gateway_vs_direct_{mode}ratio"] = round(result[f"gateway_{mode}calls_per_s"] / direct, 3)
        if f"fastmcp_proxy_{mode}calls_per_s" in result:
            fast = result[f"fastmcp_proxy_{mode}calls_per_s"]
            result[f"gateway_vs_fastmcp_{mode}ratio"] = round(result[f"gateway_{mode}calls_per_s"] / fast, 3)
    return result
