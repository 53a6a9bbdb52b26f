"""`vsm-mcp approvals ...`: what waits for an operator, shown whole; answers once, refusals with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
from typer.testing import CliRunner

from vsm_mcp.acquisition.approvals import ACQUISITION, request_of
from vsm_mcp.acquisition.pipeline import AcquisitionPlan
from vsm_mcp.acquisition.vetting import Candidate, Outcome, Verdict
from vsm_mcp.cli.app import app
from vsm_mcp.core.messages import ApprovalRequest
from vsm_mcp.errors import ConfigError
from vsm_mcp.store import SqliteStore

runner = CliRunner()
PLAN = AcquisitionPlan(
    Candidate(
        "time", "pypi", "mcp-server-time", "2026.1.0", score=3.5, reasons=("tool match",), in_catalog=True
    ),
    "time",
    Path("/unused"),
    "what time is it in Tokyo",
    "search:time tokyo",
    (Candidate("clock", "npm", "clock-mcp", "1.0.0", score=1.25),),
)
VERDICT = Verdict(
    Outcome.ASK, "operator", "every check passed; auto-approve is off: a person decides", ("MIT",)
)


def _vsm(state: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, ["--state-dir", str(state), *args])
    return result.exit_code, result.stdout + result.stderr, result.exception


def _ask(state: Path) -> None:
    async def ask() -> None:
        async with SqliteStore.open(state / "state.db") as store:
            await store.ask_approval(
                ApprovalRequest(
                    ACQUISITION,
                    "acquire:pypi:mcp-server-time@2026.1.0",
                    1.0,
                    "Install it?",
                    request_of(PLAN, VERDICT),
                )
            )

    anyio.run(ask)


def test_list_show_and_deny(tmp_path: Path) -> None:
    assert _vsm(tmp_path, "approvals", "list")[1].strip() == "nothing waits for an operator"
    _ask(tmp_path)
    code, table, _ = _vsm(tmp_path, "approvals", "list")
    assert code == 0
    assert "pypi:mcp-server-time@2026.1.0" in table and "approvals approve ID" in table
    [listed] = json.loads(_vsm(tmp_path, "approvals", "list", "--json")[1])
    assert (listed["id"], listed["status"], listed["request"]["unit"]) == (1, "pending", "time")

    code, shown, _ = _vsm(tmp_path, "approvals", "show", "1")
    assert code == 0
    assert "candidate: time pypi:mcp-server-time@2026.1.0 score 3.5 (tool match)" in shown
    assert "alternative: clock npm:clock-mcp@1.0.0 score 1.25" in shown
    assert "vetting: operator: every check passed" in shown and "- MIT" in shown

    code, said, _ = _vsm(tmp_path, "approvals", "deny", "1", "--reason", "we run our own clock")
    assert code == 0 and "approval 1 denied" in said
    assert _vsm(tmp_path, "approvals", "list")[1].strip() == "nothing waits for an operator"
    [denied] = json.loads(_vsm(tmp_path, "approvals", "list", "--all", "--json")[1])
    assert denied["status"] == "denied" and denied["outcome"] == "denied: we run our own clock"
    assert denied["decided_by"].endswith("(vsm-mcp approvals deny)")

    for command in ("approve", "deny"):
        code, _, error = _vsm(tmp_path, "approvals", command, "1")
        assert code != 0 and isinstance(error, ConfigError)
        assert str(error).startswith("approval 1 is denied (by local user")


def test_unknown_ids_are_refused_with_the_way_to_see_them(tmp_path: Path) -> None:
    for args in (("show", "9"), ("approve", "9"), ("deny", "9")):
        code, _, error = _vsm(tmp_path, "approvals", *args)
        assert code != 0 and isinstance(error, ConfigError)
        assert str(error) == "no approval 9 (see `vsm-mcp approvals list`)"
