"""`vsm-mcp bench acquire`: measured against uvx by hand, on PyPI (the npm case runs in the CLI bench)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from vsm_mcp.cli import acquire as acquire_cli

pytestmark = [pytest.mark.slow, pytest.mark.external]


def test_bench_acquire_json_has_cold_and_warm_rows_with_measured_ratios() -> None:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        pass

    bench = typer.Typer()
    acquire_cli.register_bench(bench)
    root.add_typer(bench, name="bench")
    result = CliRunner().invoke(root, ["bench", "acquire", "--json", "--registry", "pypi"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["cases"]
    print(json.dumps(rows))
    assert [(r["case"], r["cache"]) for r in rows] == [
        ("pypi:mcp-server-time@2026.10.19", "cold"),
        ("pypi:mcp-server-time@2026.10.19", "warm"),
    ]
    for row in rows:
        assert row["vsm_s"] > 0 and row["by_hand_s"] > 0
        assert row["ratio"] == pytest.approx(row["vsm_s"] / row["by_hand_s"], abs=0.002)
        assert (row["gap_before"], row["gap_after"]) == (1.0, 0.0)
        steps = row["vsm_steps_s"]
        assert list(steps) == ["vet", "install", "verify", "integrate", "total", "first_call"]
        assert steps["total"] <= row["vsm_s"]
