"""Measure SqliteStore write throughput on a real file (not collected by pytest).

Run: .venv/bin/python tests/store/bench_store.py [DIRECTORY]
Prints rows/s of batched demand upserts and commits/s of single decisions,
each commit fsynced (WAL, synchronous=FULL) on DIRECTORY's filesystem.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import anyio

from vsm_mcp.core.messages import Decision, DemandAggregate
from vsm_mcp.store import SqliteStore

BATCHES = 20
BATCH_ROWS = 10_000
DECISIONS = 500


async def main(directory: Path) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        async with SqliteStore.open(Path(scratch) / "state.db") as store:
            batch = [DemandAggregate(f"cat{i % 500}", (i // 500) * 60, 3, 1) for i in range(BATCH_ROWS)]
            start = time.perf_counter()
            for _ in range(BATCHES):
                await store.add_demand(batch)
            took = time.perf_counter() - start
            print(
                f"add_demand: {BATCHES} batches x {BATCH_ROWS} rows: "
                f"{BATCHES * BATCH_ROWS / took:,.0f} rows/s, {took / BATCHES * 1000:.1f} ms/batch"
            )
            start = time.perf_counter()
            for i in range(DECISIONS):
                await store.record_decision(Decision(float(i), "S5", "s", "c", "r", "w"))
            took = time.perf_counter() - start
            print(
                f"record_decision: {DECISIONS / took:,.0f} commits/s ({took / DECISIONS * 1000:.2f} ms each)"
            )


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "."))
