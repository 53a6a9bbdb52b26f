"""A server flooding its stderr: the log stays private and within its limit, calls are served."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import anyio
import pytest

from vsm_mcp.fleet import logfile
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.logfile import MAX_LINE_BYTES, TRUNCATED, read_tail, rotated_paths
from vsm_mcp.fleet.spec import ServerSpec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FLOOD_SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "stderr_flood_server.py"
#: The attack wrote 200 MiB against a log with no limit; here 40 MiB against a 2 MiB limit
#: (the same 20:1 ratio as 200 MiB against the real 10 MiB).
FLOOD_MIB = 40
LOG_LIMIT = 2 * 1024 * 1024
#: Generous bounds for a loaded 2-core CI machine; an unbounded pump misses them by seconds.
CALL_LATENCY_MAX_S = 1.0
LOOP_LAG_MAX_S = 0.5
FLOOD_TIMEOUT_S = 120.0


@pytest.fixture
def anyio_backend(both_loops: tuple[str, dict[str, bool]]) -> tuple[str, dict[str, bool]]:
    return both_loops


async def test_a_stderr_flood_is_bounded_on_disk_and_the_gateway_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logfile, "MAX_LOG_BYTES", LOG_LIMIT)
    logs = tmp_path / "logs"
    spec = ServerSpec(name="loud", command=sys.executable, args=[str(FLOOD_SERVER)])
    latencies: list[float] = []
    lags: list[float] = []

    async def measure_loop_lag() -> None:
        while True:
            before = time.monotonic()
            await anyio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    async with Fleet([spec], log_dir=logs) as fleet, anyio.create_task_group() as tg:
        with anyio.fail_after(30):
            unit = await fleet.wait_ready("loud")
        tg.start_soon(measure_loop_lag)
        started = time.monotonic()
        await fleet.call_tool("loud__flood", {"mib": FLOOD_MIB})
        with anyio.fail_after(FLOOD_TIMEOUT_S):
            while "flood done" not in unit.stderr:
                before = time.monotonic()
                result = await fleet.call_tool("loud__echo", {"text": "still here"})
                latencies.append(time.monotonic() - before)
                assert result["content"][0]["text"] == "still here"
        flood_s = time.monotonic() - started
        tg.cancel_scope.cancel()

    print(
        f"\nflood of {FLOOD_MIB} MiB: {flood_s:.2f} s ({FLOOD_MIB / flood_s:.0f} MiB/s), "
        f"{len(latencies)} calls served meanwhile, slowest {max(latencies) * 1000:.1f} ms, "
        f"event loop lag max {max(lags) * 1000:.1f} ms"
    )
    files = rotated_paths(logs / "loud.log")
    assert sorted(p.name for p in logs.iterdir()) == [p.name for p in files]
    for file in files:
        assert file.stat().st_size <= LOG_LIMIT
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert max(len(line) for line in file.read_bytes().split(b"\n")) <= MAX_LINE_BYTES + len(TRUNCATED)
    assert read_tail(logs / "loud.log", 1).lines == [b"flood done"]
    cut = b"L" * MAX_LINE_BYTES + TRUNCATED
    assert any(cut in file.read_bytes().split(b"\n") for file in files)
    assert len(latencies) >= 1
    assert max(latencies) < CALL_LATENCY_MAX_S
    assert max(lags) < LOOP_LAG_MAX_S
