"""`vsm-mcp bench gateway`: the same client and echo server, direct vs through VSM-MCP vs through FastMCP.

Three targets, all spoken to over stdio by the SDK's `Client` (handshake era):

* direct: ``python -m vsm_mcp.bench.echo_server``;
* gateway: ``python -m vsm_mcp.cli.serve --stdio`` fronting that server, as it runs by default
  (uvloop; namespace "", so the tool is ``echo`` everywhere); its calls take the express lane
  (`vsm_mcp.gateway.express`); and the same with ``--loop asyncio`` as ``gateway_asyncio``
  (an A/B of the event loop; ratios for both);
* gateway_http: the same gateway serving streamable HTTP (``serve --http``), the client
  connected to its ``/mcp`` endpoint: what the HTTP face costs (the unit's half of each
  call still takes the express lane; the client's half is the SDK's HTTP server);
* relay_floor: `vsm_mcp.bench.relay_floor` fronting that server: a relay that only parses,
  re-ids and re-serialises each message with the SDK's types (no routing, accounting,
  timeouts or supervision), so the cost of what the gateway does beyond that shows;
* fastmcp: FastMCP 4's ``create_proxy`` fronting that server, run from its own venv
  (scripts/install-test-servers.sh); skipped, and said so, when it is not installed.

The echo server is the same program in all three, unsandboxed in all three (the gateway's is
configured with ``sandbox.mode = "off"``), so only the proxy differs.

All targets run side by side for the whole measurement: each is started and warmed up
once, then ``repeat`` rounds each give every target one pass (``calls`` sequential calls,
then ``calls`` calls from 16 concurrent workers), in an order that rotates from round to
round, so a slow drift of a shared machine falls on every target alike and no target
always follows the same one. Every latency is measured around the client's ``call_tool``;
each figure is the median over the passes, and a "paired" ratio the median of the ratios of
passes in the same round. Memory: resident set
of a gateway process with no server vs with ``units`` echo servers, per unit and per tool.

CPU, per call and per phase (``concurrent_`` prefix for the concurrent one), user + system
time from /proc: ``*_client_cpu_us_per_call`` (this process, the client),
``*_proxy_cpu_us_per_call`` (the gateway or FastMCP; 0 when direct),
``*_server_cpu_us_per_call`` (the echo server), their sum ``*_total_cpu_us_per_call``, and
``*_cpu_bound_calls_per_s``, the most those CPU costs allow on ``cores`` CPUs (sequential:
one process at a time; concurrent: the busiest process fills one core, or all fill every
core). ``*_cpu_us_per_call`` is the process the client talks to over both phases. Every
number comes from these runs; nothing is estimated.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from rich.table import Table

from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.tokens import AdminTokenFile

CONCURRENCY = 16
#: CPUs this process may run on, shared by the three processes (client, proxy, server).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
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


def _gateway_env(state: Path, units: int, extra_tools: int = 0, sandbox: str | None = None) -> dict[str, str]:
    """A state dir whose config runs ``units`` echo servers; ``sandbox`` overrides their sandbox mode."""
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
        if sandbox is not None:
            lines += [f"[servers.echo{i}.sandbox]", f"mode = {json.dumps(sandbox)}"]
    (state / "config.toml").write_text("\n".join(lines) + "\n")
    return {**os.environ, "VSM_MCP_STATE_DIR": str(state)}


#: The gateways (and the floor) whose ratios to direct and to FastMCP are reported.
PROXIES = ("gateway", "gateway_http", "gateway_asyncio", "relay_floor")


@dataclass(frozen=True, slots=True)
class _Target:
    command: list[str]
    env: dict[str, str] | None = None
    #: Serves streamable HTTP on this loopback port (else stdio, spoken to by the client).
    http_port: int | None = None
    #: The bearer token its HTTP face wants (the admin token, made before the start).
    token: str = ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ready(client: Client) -> None:
    with anyio.fail_after(START_TIMEOUT_S):
        while "echo" not in {t.name for t in (await client.list_tools()).tools}:  # noqa: ASYNC110 - another process
            await anyio.sleep(0.05)
    for _ in range(WARMUP_CALLS):
        await client.call_tool("echo", {"text": "warm"})


@asynccontextmanager
async def _client(target: _Target) -> AsyncIterator[tuple[Client, int]]:
    """A warmed-up client of ``target``, and the pid of the process it talks to."""
    if target.http_port is not None:
        async with _http_client(target, target.http_port) as found:
            yield found
        return
    before = set(_children(os.getpid()))
    params = StdioServerParameters(command=target.command[0], args=target.command[1:], env=target.env)
    async with Client(params, mode="legacy") as client:
        await _ready(client)
        yield client, max(set(_children(os.getpid())) - before, default=0)


@asynccontextmanager
async def _http_client(target: _Target, port: int) -> AsyncIterator[tuple[Client, int]]:
    process = await anyio.open_process(
        target.command, env=target.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with anyio.fail_after(START_TIMEOUT_S):
            while True:
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        async with bearer_client(f"http://127.0.0.1:{port}/mcp", target.token, mode="legacy") as client:
            await _ready(client)
            yield client, process.pid
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu_s() -> float:
    """User + system CPU seconds of this process (the client), all threads."""
    times = os.times()
    return times.user + times.system


def _machine_ticks() -> tuple[int, int]:
    """(all CPU ticks, ticks the hypervisor stole) of the whole machine so far (Linux /proc/stat)."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


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


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _echo_behind(target: int) -> int:
    """The echo server behind ``target`` (``target`` itself when direct): the deepest descendant
    running `echo_server` (a sandbox launcher's command line names it too)."""
    echo = [
        pid for pid in [target, *_descendants(target)] if pid if b"vsm_mcp.bench.echo_server" in _cmdline(pid)
    ]
    return echo[-1] if echo else 0


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class _CpuMeter:
    """CPU seconds of the client, the proxy (none when direct) and the echo server over one phase."""

    def __init__(self, target: int, server: int) -> None:
        self.proxy = target if target != server else 0
        self.server = server
        self._start = self._read()
        self._ticks = _machine_ticks()

    def _read(self) -> tuple[float, float, float]:
        return (
            _self_cpu_s(),
            _cpu_s(self.proxy) if self.proxy else 0.0,
            _cpu_s(self.server) if self.server else 0.0,
        )

    def per_call(self, prefix: str, calls: int) -> dict[str, float]:
        now = self._read()
        client, proxy, server = ((b - a) / calls * 1e6 for a, b in zip(self._start, now, strict=True))
        (total_before, stolen_before), (total_now, stolen_now) = self._ticks, _machine_ticks()
        out = {
            # Of the machine's CPU time in the phase, the share the hypervisor gave to others:
            # a pass with much of it measured a machine busy elsewhere.
            f"{prefix}steal_pct": round(
                100 * (stolen_now - stolen_before) / max(total_now - total_before, 1), 1
            ),
            f"{prefix}client_cpu_us_per_call": round(client, 1),
            f"{prefix}proxy_cpu_us_per_call": round(proxy, 1),
            f"{prefix}server_cpu_us_per_call": round(server, 1),
            f"{prefix}total_cpu_us_per_call": round(client + proxy + server, 1),
        }
        # What the CPUs allow at most, a measured bound to read the throughput against: one call at
        # a time, the processes take turns; concurrently, the busiest one fills a core or all of
        # them fill every core.
        total = client + proxy + server
        if total > 0:
            bound = 1e6 / total if not prefix else min(1e6 / max(client, proxy, server), CORES * 1e6 / total)
            out[f"{prefix}cpu_bound_calls_per_s"] = round(bound, 1)
        return out


async def _measure(client: Client, target: int, calls: int) -> dict[str, float]:
    out: dict[str, float] = {}
    server = _echo_behind(target)
    meter = _CpuMeter(target, server)
    all_before = _cpu_s(target)
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(calls):
        t = time.perf_counter()
        await client.call_tool("echo", {"text": f"m{i}"})
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    out |= _summary("", calls, elapsed, latencies)
    out |= meter.per_call("", calls)

    concurrent: list[float] = []
    per_worker = max(1, calls // CONCURRENCY)

    async def worker(w: int) -> None:
        for i in range(per_worker):
            t = time.perf_counter()
            await client.call_tool("echo", {"text": f"w{w}-{i}"})
            concurrent.append(time.perf_counter() - t)

    meter = _CpuMeter(target, server)
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(CONCURRENCY):
            tg.start_soon(worker, w)
    elapsed = time.perf_counter() - start
    out |= _summary("concurrent_", per_worker * CONCURRENCY, elapsed, concurrent)
    out |= meter.per_call("concurrent_", per_worker * CONCURRENCY)
    # The process the client talks to, over both phases (the echo server when direct).
    out["cpu_us_per_call"] = round(
        (_cpu_s(target) - all_before) / (calls + per_worker * CONCURRENCY) * 1e6, 1
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
    # unsandboxed like every other echo server here: the memory is the gateway's, not bwrap's
    env = _gateway_env(state, units, extra_tools, sandbox="off")
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
        token = AdminTokenFile.in_state(state).read()
        async with bearer_client(url, token, mode="legacy") as client:
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
    calls: int = 1000, units: int = 8, fastmcp_python: Path | None = None, repeat: int = 10
) -> dict[str, Any]:
    """Measure everything; returns the JSON document ``bench gateway --json`` prints."""
    result: dict[str, Any] = {
        "calls": calls,
        "repeat": repeat,
        "concurrency": CONCURRENCY,
        "cores": CORES,
        "downstream": "vsm_mcp.bench.echo_server",
        # The gateway's echo server runs unsandboxed, exactly as the direct and FastMCP ones do.
        "downstream_sandbox": "off",
    }
    with tempfile.TemporaryDirectory(prefix="vsm-bench-") as tmp:
        port = _free_port()
        targets: dict[str, _Target] = {
            "direct": _Target(_echo_command()),
            "gateway": _Target(
                [sys.executable, "-m", "vsm_mcp.cli.serve", "--stdio"],
                _gateway_env(Path(tmp) / "gw", 1, sandbox="off"),
            ),
            "gateway_http": _Target(
                [sys.executable, "-m", "vsm_mcp.cli.serve", "--http", f"127.0.0.1:{port}"],
                _gateway_env(Path(tmp) / "gwhttp", 1, sandbox="off"),
                http_port=port,
                token=AdminTokenFile.in_state(Path(tmp) / "gwhttp").rotate(),
            ),
            # The standard library's event loop, measured beside the default one (A/B).
            "gateway_asyncio": _Target(
                [sys.executable, "-m", "vsm_mcp.cli.serve", "--stdio", "--loop", "asyncio"],
                _gateway_env(Path(tmp) / "gwaio", 1, sandbox="off"),
            ),
            "relay_floor": _Target([sys.executable, "-m", "vsm_mcp.bench.relay_floor", *_echo_command()]),
        }
        result["gateway_loop"] = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
        python = fastmcp_python or default_fastmcp_python()
        if python.exists():
            script = Path(tmp) / "fastmcp_proxy.py"
            script.write_text(_FASTMCP_PROXY)
            targets["fastmcp_proxy"] = _Target([str(python), str(script), *_echo_command()])
        else:
            result["fastmcp_proxy_skipped"] = (
                f"FastMCP not installed at {python} (scripts/install-test-servers.sh)"
            )
        # Every target runs for the whole measurement; rounds rotate their order (module docstring).
        passes: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        async with AsyncExitStack() as stack:
            clients = {
                name: await stack.enter_async_context(_client(target)) for name, target in targets.items()
            }
            names = list(clients)
            for round_ in range(repeat):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    client, target = clients[name]
                    passes[name].append(await _measure(client, target, calls))
        for name, runs in passes.items():
            for key in runs[0]:
                result[f"{name}_{key}"] = round(statistics.median(r[key] for r in runs), 3)
        # Every pass's throughput, in the order run: the spread behind each median.
        result["passes"] = {
            name: {
                key: [r[key] for r in runs]
                for key in ("calls_per_s", "concurrent_calls_per_s", "steal_pct", "concurrent_steal_pct")
            }
            for name, runs in passes.items()
        }
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
    # The ceiling of "vs FastMCP": a proxy that cost nothing would be the direct connection.
    if "fastmcp_proxy_calls_per_s" in result:
        for mode in ("", "concurrent_"):
            result[f"direct_vs_fastmcp_{mode}ratio"] = round(
                result[f"direct_{mode}calls_per_s"] / result[f"fastmcp_proxy_{mode}calls_per_s"], 3
            )
    # Paired: each pass of a target against the direct (or FastMCP) pass of the same round, run
    # seconds apart, so a burst of load on a shared machine moves both sides of a ratio; the
    # median of those.
    for ours in (*PROXIES, "fastmcp_proxy"):
        for other, label in (("direct", "direct"), ("fastmcp_proxy", "fastmcp")):
            if ours == other or ours not in passes or other not in passes:
                continue
            for mode in ("", "concurrent_"):
                result[f"{ours}_vs_{label}_{mode}paired_ratio"] = round(
                    statistics.median(
                        mine[f"{mode}calls_per_s"] / theirs[f"{mode}calls_per_s"]
                        for mine, theirs in zip(passes[ours], passes[other], strict=True)
                    ),
                    3,
                )
    for gateway in PROXIES:
        if f"{gateway}_calls_per_s" not in result:
            continue
        for mode in ("", "concurrent_"):
            ours = result[f"{gateway}_{mode}calls_per_s"]
            direct = result[f"direct_{mode}calls_per_s"]
            result[f"{gateway}_vs_direct_{mode}ratio"] = round(ours / direct, 3)
            # The same ratio of what the measured CPU time per call allows (less noisy than
            # throughput, and the ceiling a CPU-bound run approaches).
            bound = f"{mode}cpu_bound_calls_per_s"
            if f"{gateway}_{bound}" in result and f"direct_{bound}" in result:
                result[f"{gateway}_vs_direct_{bound.replace('calls_per_s', 'ratio')}"] = round(
                    result[f"{gateway}_{bound}"] / result[f"direct_{bound}"], 3
                )
            if f"fastmcp_proxy_{mode}calls_per_s" in result:
                fast = result[f"fastmcp_proxy_{mode}calls_per_s"]
                result[f"{gateway}_vs_fastmcp_{mode}ratio"] = round(ours / fast, 3)
    return result


#: The issue's targets: gateway throughput against direct, and against FastMCP's proxy.
TARGET_VS_DIRECT = 0.85
TARGET_VS_FASTMCP = 3.0


def render(result: dict[str, Any]) -> list[Table]:
    """The result as tables: throughput beside the CPU each process spent per call, then the ratios."""
    names = [n for n in ("direct", *PROXIES, "fastmcp_proxy") if f"{n}_calls_per_s" in result]
    speed = Table(
        title=f"{result['calls']} calls per phase, stdio, echo server, medians of {result['repeat']}"
    )
    speed.add_column("target")
    for mode in ("sequential", f"{result['concurrency']} concurrent"):
        speed.add_column(f"{mode} calls/s", justify="right")
        speed.add_column("p50 ms", justify="right")
        speed.add_column("p99 ms", justify="right")
        speed.add_column("steal %", justify="right")
    for name in names:
        row = [name]
        for mode in ("", "concurrent_"):
            keys = ("calls_per_s", "p50_ms", "p99_ms", "steal_pct")
            row += [str(result.get(f"{name}_{mode}{key}", "-")) for key in keys]
        speed.add_row(*row)

    cpu = Table(
        title=f"CPU µs per call (user+system, /proc) on {result['cores']} cores; bound = what the CPUs allow"
    )
    cpu.add_column("target")
    for mode in ("seq", "conc"):
        for part in ("client", "proxy", "server", "total", "bound calls/s"):
            cpu.add_column(f"{mode} {part}", justify="right")
    for name in names:
        row = [name]
        for mode in ("", "concurrent_"):
            for part in ("client", "proxy", "server", "total"):
                row.append(str(result.get(f"{name}_{mode}{part}_cpu_us_per_call", "-")))
            row.append(str(result.get(f"{name}_{mode}cpu_bound_calls_per_s", "-")))
        cpu.add_row(*row)

    ratios = Table(title="gateway throughput ratios (target)")
    ratios.add_column("gateway vs")
    ratios.add_column("sequential", justify="right")
    ratios.add_column(f"{result['concurrency']} concurrent", justify="right")
    ratios.add_column("target", justify="right")
    for gateway in PROXIES:
        for other, target in (("direct", TARGET_VS_DIRECT), ("fastmcp", TARGET_VS_FASTMCP)):
            if f"{gateway}_vs_{other}_ratio" in result:
                seq = f"{result[f'{gateway}_vs_{other}_ratio']:.3f}x"
                conc = f"{result[f'{gateway}_vs_{other}_concurrent_ratio']:.3f}x"
                if f"{gateway}_vs_{other}_paired_ratio" in result:  # median of same-round ratios
                    seq += f" (paired {result[f'{gateway}_vs_{other}_paired_ratio']:.3f}x)"
                    conc += f" (paired {result[f'{gateway}_vs_{other}_concurrent_paired_ratio']:.3f}x)"
                ratios.add_row(f"{gateway} vs {other}", seq, conc, f">= {target:g}x")
    if "gateway_vs_direct_cpu_bound_ratio" in result:
        ratios.add_row(
            "gateway vs direct, CPU bound",
            f"{result['gateway_vs_direct_cpu_bound_ratio']:.3f}x",
            f"{result['gateway_vs_direct_concurrent_cpu_bound_ratio']:.3f}x",
            "",
        )
    if "direct_vs_fastmcp_ratio" in result:
        ratios.add_row(
            "direct vs fastmcp (a free proxy's ceiling)",
            f"{result['direct_vs_fastmcp_ratio']:.3f}x",
            f"{result['direct_vs_fastmcp_concurrent_ratio']:.3f}x",
            "",
        )
    ratios.add_row(
        "memory",
        f"{result['memory_per_unit_kib']} KiB/unit",
        f"{result['memory_per_tool_kib']} KiB/tool",
        f"{result['memory_units']} units, {result['memory_tools']} tools",
    )
    return [speed, cpu, ratios]
