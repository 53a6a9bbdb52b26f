"""`vsm-mcp bench gateway` measures what it says, with every key the issue asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsm_mcp.bench import gateway

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_bench_reports_throughput_latency_ratios_and_memory(tmp_path: Path) -> None:
    result = await gateway.run(calls=200, units=2, fastmcp_python=tmp_path / "no-such-python", repeat=1)
    for target in ("direct", *gateway.PROXIES):
        for key in (
            "calls_per_s",
            "p50_ms",
            "p99_ms",
            "concurrent_calls_per_s",
            "concurrent_p50_ms",
            "cpu_us_per_call",
        ):
            assert result[f"{target}_{key}"] > 0, key
        assert result[f"{target}_p50_ms"] <= result[f"{target}_p99_ms"]
        for mode in ("", "concurrent_"):
            parts = [result[f"{target}_{mode}{p}_cpu_us_per_call"] for p in ("client", "proxy", "server")]
            assert parts[0] > 0 and parts[2] > 0, (target, mode)
            assert result[f"{target}_{mode}total_cpu_us_per_call"] == pytest.approx(sum(parts), abs=0.2)
            assert result[f"{target}_{mode}cpu_bound_calls_per_s"] > 0
    assert result["direct_proxy_cpu_us_per_call"] == 0  # nothing between client and server
    assert result["gateway_proxy_cpu_us_per_call"] > 0
    assert result["relay_floor_proxy_cpu_us_per_call"] > 0  # the floor relay is a process of its own
    assert result["gateway_http_proxy_cpu_us_per_call"] > 0  # the gateway serving streamable HTTP
    assert result["gateway_http_concurrent_server_cpu_us_per_call"] > 0  # its echo server was found
    assert result["gateway_loop"] in ("uvloop", "asyncio")
    assert result["downstream_sandbox"] == "off"
    assert result["gateway_vs_direct_ratio"] == round(
        result["gateway_calls_per_s"] / result["direct_calls_per_s"], 3
    )
    # One pass each: the paired ratio is that pass's ratio, the plain one the ratio of medians.
    assert result["gateway_vs_direct_paired_ratio"] == pytest.approx(
        result["gateway_vs_direct_ratio"], abs=0.002
    )
    assert result["relay_floor_vs_direct_concurrent_paired_ratio"] > 0
    assert result["passes"]["gateway"] == {
        key: [result[f"gateway_{key}"]]
        for key in ("calls_per_s", "concurrent_calls_per_s", "steal_pct", "concurrent_steal_pct")
    }
    assert 0 <= result["direct_steal_pct"] <= 100
    assert result["gateway_vs_direct_concurrent_cpu_bound_ratio"] == round(
        result["gateway_concurrent_cpu_bound_calls_per_s"]
        / result["direct_concurrent_cpu_bound_calls_per_s"],
        3,
    )
    assert "gateway_vs_fastmcp_paired_ratio" not in result  # no FastMCP, no ratio against it
    assert result["fastmcp_proxy_skipped"].startswith("FastMCP not installed at ")
    assert "fastmcp_proxy_calls_per_s" not in result
    assert result["memory_units"] == 2
    assert result["memory_tools"] == 2 * (1 + gateway.MEMORY_EXTRA_TOOLS)
    small, big = result["gateway_rss_kib_2_units_2_tools"], result["gateway_rss_kib_2_units_50_tools"]
    assert result["memory_per_tool_kib"] == round((big - small) / 48, 2)
