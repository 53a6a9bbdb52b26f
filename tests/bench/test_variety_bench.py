"""The benchmark's own correctness (its speed is reported by `vsm-mcp bench variety`, never asserted here)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vsm_mcp.bench.variety import SEED_TARGET_OPS_PER_S, run, workload
from vsm_mcp.cli.app import app


def test_workload_is_deterministic_and_has_churn() -> None:
    a, b = workload(1000), workload(1000)
    assert a == b
    assert sum(1 for c in a if c.startswith("one-off.")) == 10


def test_bench_variety_json_has_the_promised_keys() -> None:
    result = CliRunner().invoke(app, ["bench", "variety", "--events", "20000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in (
        "single_ops_per_s",
        "batch_ops_per_s",
        "seed_target_ops_per_s",
        "single_vs_seed_ratio",
        "batch_vs_seed_ratio",
        "bytes_per_tracked_category",
        "memory_growth_bytes",
    ):
        assert key in data
    assert data["seed_target_ops_per_s"] == SEED_TARGET_OPS_PER_S
    assert data["recomputation_matches"] is True
    assert data["single_ops_per_s"] > 0
    assert data["single_vs_seed_ratio"] == round(data["single_ops_per_s"] / SEED_TARGET_OPS_PER_S, 2)


def test_run_without_memory_pass() -> None:
    result = run(10_000, measure_memory=False)
    assert result.events == 10_000
    assert result.recomputation_matches
    assert result.memory_growth_bytes == 0
