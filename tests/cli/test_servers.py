"""`vsm-mcp servers ...` and `vsm-mcp dlq ...` through the real root app."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from vsm_mcp.cli.app import app
from vsm_mcp.core.messages import DeadLetter
from vsm_mcp.errors import ConfigError, UnknownUnitError
from vsm_mcp.store import SqliteStore

runner = CliRunner()
PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"


def _vsm(state: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, ["--state-dir", str(state), *args])
    return result.exit_code, result.output, result.exception


def test_add_list_restart_remove(tmp_path: Path) -> None:
    code, out, _ = _vsm(
        tmp_path, "servers", "add", "time", "--env", "TZ=UTC", "--", "uvx", "mcp-server-time", "-x"
    )
    assert code == 0, out
    assert "added time: uvx mcp-server-time -x" in out
    code, out, _ = _vsm(tmp_path, "servers", "list", "--json")
    assert json.loads(out) == [
        {
            "name": "time",
            "source": "runtime",
            "transport": "stdio",
            "target": "uvx mcp-server-time -x",
            "namespace": "time",
        }
    ]
    code, out, error = _vsm(tmp_path, "servers", "add", "time", "--", "other")
    assert isinstance(error, ConfigError)
    assert "already exists" in str(error)
    assert _vsm(tmp_path, "servers", "restart", "time")[1].strip() == "restart #1 of time requested"
    assert _vsm(tmp_path, "servers", "remove", "time")[0] == 0
    assert json.loads(_vsm(tmp_path, "servers", "list", "--json")[1]) == []
    code, _, error = _vsm(tmp_path, "servers", "remove", "time")
    assert isinstance(error, UnknownUnitError)


def test_add_refuses_a_spec_without_command_or_url(tmp_path: Path) -> None:
    _, _, error = _vsm(tmp_path, "servers", "add", "x")
    assert isinstance(error, ConfigError)
    assert "exactly one of 'command' (stdio) or 'url' (http)" in str(error)


def test_logs_show_the_tail_of_a_units_stderr(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir(parents=True)
    (tmp_path / "logs" / "p.log").write_text("".join(f"line {i}\n" for i in range(100)))
    _, out, _ = _vsm(tmp_path, "servers", "logs", "p", "-n", "3")
    assert out.splitlines() == ["line 97", "line 98", "line 99"]
    assert isinstance(_vsm(tmp_path, "servers", "logs", "nope")[2], UnknownUnitError)


@pytest.mark.slow
def test_dlq_list_and_replay(tmp_path: Path) -> None:
    code, out, _ = _vsm(tmp_path, "servers", "add", "p", "--", sys.executable, str(PROBE))
    assert code == 0, out

    async def seed() -> None:
        async with SqliteStore.open(tmp_path / "state.db") as store:
            await store.put_dead_letter(
                DeadLetter(
                    at=time.time(),
                    unit="p",
                    tool="echo",
                    arguments={"text": "again"},
                    error="boom",
                    attempts=3,
                )
            )
            await store.put_dead_letter(
                DeadLetter(at=time.time(), unit="gone", tool="x", arguments={}, error="boom", attempts=1)
            )

    anyio.run(seed)
    listed = json.loads(_vsm(tmp_path, "dlq", "list", "--json")[1])
    assert [(d["server"], d["tool"], d["attempts"], d["replayed_at"]) for d in listed] == [
        ("p", "echo", 3, None),
        ("gone", "x", 1, None),
    ]
    code, out, _ = _vsm(tmp_path, "dlq", "replay")
    assert code == 1  # one letter's server no longer exists
    assert "#1: p/echo replayed" in out
    assert "#2: server 'gone' no longer exists; kept" in out
    assert "1 replayed, 1 still failing" in out
    remaining = json.loads(_vsm(tmp_path, "dlq", "list", "--json")[1])
    assert [d["id"] for d in remaining] == [2]
    replayed = json.loads(_vsm(tmp_path, "dlq", "list", "--all", "--json")[1])
    assert replayed[0]["replayed_at"] is not None
