"""`vsm-mcp alerts list|ack`: stored alerts with their ids, acknowledged once, unknown ids refused."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
from typer.testing import CliRunner

from vsm_mcp.cli.app import app
from vsm_mcp.core.messages import AlgedonicAlert, Severity, Valence
from vsm_mcp.errors import ConfigError
from vsm_mcp.store import SqliteStore

runner = CliRunner()


def _vsm(state: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, ["--state-dir", str(state), *args])
    return result.exit_code, result.stdout, result.exception


def test_list_then_ack_then_list_shows_who(tmp_path: Path) -> None:
    async def seed() -> int:
        async with SqliteStore.open(tmp_path / "state.db") as store:
            return await store.record_alert(
                AlgedonicAlert(
                    "unit:fs", "crash_loop", Valence.PAIN, Severity.CRITICAL, 5, 1.0, 2.0, "5 restarts"
                )
            )

    alert_id = anyio.run(seed)
    [listed] = json.loads(_vsm(tmp_path, "alerts", "list", "--json")[1])
    assert (listed["id"], listed["severity"], listed["acknowledged"]) == (alert_id, "CRITICAL", None)
    code, said, _ = _vsm(tmp_path, "alerts", "ack", str(alert_id))
    assert code == 0 and said.strip() == f"acknowledged: {alert_id}"
    assert _vsm(tmp_path, "alerts", "ack", str(alert_id))[1].strip() == "acknowledged: none new"
    [listed] = json.loads(_vsm(tmp_path, "alerts", "list", "--json")[1])
    assert listed["acknowledged"]["by"].startswith("local user ")
    code, _, error = _vsm(tmp_path, "alerts", "ack", "99")
    assert code != 0 and isinstance(error, ConfigError) and "no alert 99" in str(error)
