"""Reading the suite's per-scenario `checks.json` files into verdicts (no Node needed)."""

from __future__ import annotations

import json
from pathlib import Path

from .suite import Verdict, format_summary, passed, read_results


def _write(results_dir: Path, scenario: str, statuses: list[str]) -> None:
    directory = results_dir / f"server-{scenario}-2026-11-26T14-41-19-746Z"
    directory.mkdir(parents=True)
    checks = [
        {"id": f"{scenario}-{i}", "status": status, "description": "d", "errorMessage": f"problem {i}"}
        for i, status in enumerate(statuses)
    ]
    (directory / "checks.json").write_text(json.dumps(checks), encoding="utf-8")


def test_verdicts_follow_the_worst_check(tmp_path: Path) -> None:
    _write(tmp_path, "ping", ["INFO", "SUCCESS"])
    _write(tmp_path, "tools-call-with-logging", ["SUCCESS", "FAILURE"])
    _write(tmp_path, "server-sse-polling", ["INFO", "WARNING", "WARNING"])
    _write(tmp_path, "server-sse-multiple-streams", ["SUCCESS", "WARNING"])
    _write(tmp_path, "only-info", ["INFO"])
    (tmp_path / "suite-output.txt").write_text("not a result directory", encoding="utf-8")

    names = [
        "ping",
        "tools-call-with-logging",
        "server-sse-polling",
        "server-sse-multiple-streams",
        "only-info",
    ]
    results = read_results(tmp_path, [*names, "resources-subscribe"])

    assert {name: r.verdict for name, r in results.items()} == {
        "ping": Verdict.PASS,
        "tools-call-with-logging": Verdict.FAIL,
        "server-sse-polling": Verdict.NO_VERDICT,
        "server-sse-multiple-streams": Verdict.NO_VERDICT,
        "only-info": Verdict.NO_VERDICT,
        "resources-subscribe": Verdict.FAIL,
    }
    assert passed(results) == {"ping"}
    assert results["tools-call-with-logging"].problems() == ["FAILURE tools-call-with-logging-1: problem 1"]
    assert results["resources-subscribe"].problems() == [
        "FAILURE resources-subscribe: the suite recorded no result (scenario crashed)"
    ]


def test_scenario_names_with_dashes_and_prefixes_are_kept_apart(tmp_path: Path) -> None:
    _write(tmp_path, "resources-subscribe", ["SUCCESS"])
    _write(tmp_path, "resources-unsubscribe", ["FAILURE"])

    results = read_results(tmp_path, ["resources-subscribe", "resources-unsubscribe"])

    assert results["resources-subscribe"].verdict is Verdict.PASS
    assert results["resources-unsubscribe"].verdict is Verdict.FAIL


def test_summary_names_each_scenario_and_totals(tmp_path: Path) -> None:
    _write(tmp_path, "ping", ["SUCCESS"])
    _write(tmp_path, "tools-call-error", ["FAILURE"])

    summary = format_summary(read_results(tmp_path, ["ping", "tools-call-error"]))

    assert summary.splitlines() == [
        "PASS       ping                             1 ok, 0 failed, 0 warnings",
        "FAIL       tools-call-error                 0 ok, 1 failed, 0 warnings",
        "           FAILURE tools-call-error-0: problem 0",
        "total: 1 passed, 1 failed, 0 without verdict, of 2 scenarios",
    ]
