"""`vsm-mcp bench sandbox` measures what it says: every key the issue asks for, ratios that are the
medians of the paired ratios it reports, and a sandboxed target that really ran in bubblewrap."""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vsm_mcp.bench import sandbox
from vsm_mcp.cli.app import app
from vsm_mcp.sandbox import Host
from vsm_mcp.sandbox.egress import EgressTool

pytestmark = [pytest.mark.slow, pytest.mark.external]

ROUNDS, CALLS, STARTS = 2, 20, 2


@pytest.fixture
def bwrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap not installed (apt-get install bubblewrap): nothing to sandbox with")


def _positive(value: Any) -> bool:
    return isinstance(value, float) and value > 0


def _paired(result: dict[str, Any], rows: str, mine: str, key: str) -> list[float]:
    """Recompute ``mine``/plain of ``key`` per row, as the bench documents its ratios."""
    return [
        round(row[f"{mine}_{key}"] / row[f"plain_{key}"], 4)
        for row in result[rows]
        if f"{mine}_{key}" in row and f"plain_{key}" in row
    ]


@pytest.mark.anyio
async def test_bench_reports_plain_sandboxed_and_egress_side_by_side(bwrap: None) -> None:
    result = await sandbox.run(rounds=ROUNDS, calls=CALLS, starts=STARTS)

    assert (result["calls"], result["round_count"], result["start_count"]) == (CALLS, ROUNDS, STARTS)
    assert result["cores"] >= 1
    assert isinstance(result["gateway_root"], bool)
    assert result["sandbox_shape"].startswith("root gateway" if result["gateway_root"] else "user gateway")
    plans = result["plans"]
    assert plans["plain"]["sandboxed"] is False and plans["plain"]["describe"] == "UNSANDBOXED"
    assert plans["sandboxed"]["sandboxed"] is True and plans["sandboxed"]["network"] == "none"
    assert plans["sandboxed"]["describe"] == (
        "sandboxed" if plans["sandboxed"]["seccomp"] else "sandboxed WITHOUT SECCOMP FILTER"
    )
    assert (result["seccomp"], result["cgroups"]) == (
        plans["sandboxed"]["seccomp"],
        plans["sandboxed"]["cgroup"],
    )
    assert (plans["sandboxed"]["run_as"] is not None) == result["gateway_root"]

    for name in ("plain", "sandboxed"):
        assert f"{name}_error" not in result, result[f"{name}_error"]
        for key, rows, count in (("calls_per_s", "rounds", ROUNDS), ("start_s", "starts", STARTS)):
            per_row = [row[f"{name}_{key}"] for row in result[rows]]
            assert len(per_row) == count and all(_positive(v) for v in per_row), (name, key)
            assert result[f"{name}_{key}"] == round(statistics.median(per_row), 4)
    for ratio, rows, key in (("calls_ratio", "rounds", "calls_per_s"), ("start_ratio", "starts", "start_s")):
        paired = _paired(result, rows, "sandboxed", key)
        assert [row[ratio] for row in result[rows]] == paired
        assert _positive(result[ratio])
        assert result[ratio] == round(statistics.median(paired), 4)
    assert result["target_met"] is (result["calls_ratio"] >= sandbox.TARGET_CALLS_RATIO)
    assert [row["order"][0] for row in result["rounds"]] == ["plain", "sandboxed"]  # the order rotates

    # Egress: a number only when it worked; otherwise the error, and no figure at all.
    if "egress_error" in result:
        assert result["egress_error"]
        for key in ("calls_per_s", "start_s", "calls_ratio", "start_ratio"):
            assert result[f"egress_{key}"] is None, key
    else:
        assert plans["egress"]["sandboxed"] is True and plans["egress"]["network"] == "egress"
        for key in ("calls_per_s", "start_s", "calls_ratio", "start_ratio"):
            assert _positive(result[f"egress_{key}"]), key
        assert result["egress_calls_ratio"] == round(
            statistics.median(_paired(result, "rounds", "egress", "calls_per_s")), 4
        )
        assert result["egress_start_ratio"] == round(
            statistics.median(_paired(result, "starts", "egress", "start_s")), 4
        )


def test_cli_prints_one_json_object(bwrap: None) -> None:
    out = CliRunner().invoke(
        app, ["bench", "sandbox", "--json", "--rounds", "1", "--calls", "10", "--starts", "1"]
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["plans"]["sandboxed"]["sandboxed"] is True
    assert _positive(result["plain_calls_per_s"]) and _positive(result["sandboxed_calls_per_s"])
    assert _positive(result["start_ratio"])


class _HostWithBrokenEgress:
    """`Host` whose slirp4netns exits at once (or, without one here, the real refusal to plan)."""

    @staticmethod
    def detect(state: Path) -> Host:
        host = Host.detect(state)
        if host.egress is None:
            return host
        return replace(host, egress=EgressTool("/bin/false", host.egress.python))


@pytest.mark.anyio
async def test_a_target_that_fails_reports_its_error_and_no_figure(
    bwrap: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "Host", _HostWithBrokenEgress)
    result = await sandbox.run(rounds=1, calls=10, starts=1)
    # Refused at plan time without slirp4netns here; else its launch dies before the handshake.
    assert result["egress_error"].startswith(("plan: SandboxError: ", "start-up trial 0: MCPError: "))
    assert "slirp4netns" in result["egress_error"]
    for key in ("calls_per_s", "start_s", "plan_s", "calls_ratio", "start_ratio"):
        assert result[f"egress_{key}"] is None, key
    assert all("egress_calls_per_s" not in row for row in result["rounds"])
    assert _positive(result["sandboxed_calls_per_s"]) and _positive(result["calls_ratio"])
