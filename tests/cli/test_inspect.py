from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
from typer.testing import CliRunner

from vsm_mcp import report
from vsm_mcp.cli.app import app
from vsm_mcp.core.messages import AuditFinding
from vsm_mcp.store import SqliteStore

runner = CliRunner()


def vsm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-c", "from vsm_mcp.cli.app import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_status_json_on_a_fresh_state_dir(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--state-dir", str(tmp_path), "status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["state_dir"] == str(tmp_path)
    assert data["live"] is None
    assert data["units"] == []
    assert data["variety"]["events"] == 0
    assert data["dead_letters_pending"] == 0
    assert (tmp_path / "state.db").is_file()


def test_variety_json_reports_the_reading(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--state-dir", str(tmp_path), "variety", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["reading"]["gap"] == 0.0
    assert data["reading"]["requisite_ratio"] is None
    assert data["categories"] == []


def test_corrupt_state_db_is_a_clear_error_and_untouched(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not a database at all" * 100)
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    result = vsm("--state-dir", str(tmp_path), "status")
    assert result.returncode == 1
    assert str(db) in result.stderr
    assert "corrupt" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "state.db"
    assert vsm("--state-dir", str(tmp_path), "status", "--json").returncode == 0
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    result = vsm("--state-dir", str(tmp_path), "variety")
    assert result.returncode == 1
    assert "schema version 999" in result.stderr
    assert str(db) in result.stderr
    assert "Traceback" not in result.stderr
    assert db.read_bytes() == before


def test_invalid_setting_names_the_field(tmp_path: Path) -> None:
    result = vsm("--state-dir", str(tmp_path), "variety", env={"VSM_MCP_VARIETY__MAX_EVENTS": "many"})
    assert result.returncode == 1
    assert "variety.max_events" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_setting_in_toml_names_field_and_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[variety]\ngap_upper = 0.1\ngap_lower = 0.3\n")
    result = vsm("--state-dir", str(tmp_path), "status")
    assert result.returncode == 1
    assert "variety" in result.stderr
    assert "gap_lower must be below gap_upper" in result.stderr
    assert str(config) in result.stderr


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[variety]\nmax_evnts = 3\n")
    result = vsm("--config", str(config), "--state-dir", str(tmp_path), "status")
    assert result.returncode == 1
    assert "variety.max_evnts" in result.stderr


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[variety\n")
    result = vsm("--config", str(config), "status")
    assert result.returncode == 1
    assert f"settings file {config} is not valid TOML" in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = vsm("--config", str(tmp_path / "nope.toml"), "status")
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_doctor_reports_every_check(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--state-dir", str(tmp_path), "doctor", "--json"])
    checks = json.loads(result.output)
    assert [c["name"] for c in checks] == [
        "python",
        "node/npx",
        "uv/pip",
        "bubblewrap",
        "cgroups",
        "egress",
        "state dir",
        "secrets",
        "servers",
    ]
    assert checks[0]["verdict"] == "ok"
    assert checks[6]["verdict"] == "ok"
    assert checks[7] == {
        "name": "secrets",
        "verdict": "ok",
        "detail": "no server refers to a secret",
        "fix": "",
    }
    assert all(c["verdict"] in {"ok", "warn", "fail"} for c in checks)
    assert all(c["fix"] for c in checks if c["verdict"] != "ok")
    assert result.exit_code == (1 if any(c["verdict"] == "fail" for c in checks) else 0)


def test_doctor_fails_while_a_secret_a_server_refers_to_is_not_set(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[servers.gh]\ncommand = "server"\nenv = { TOKEN = "${secret:github}" }\n')

    def secrets_check() -> tuple[dict[str, str], int]:
        result = runner.invoke(app, ["--state-dir", str(tmp_path), "doctor", "--json"])
        return {c["name"]: c for c in json.loads(result.output)}["secrets"], result.exit_code

    check, code = secrets_check()  # no database yet: doctor does not create one to look
    assert check["verdict"] == "fail" and code == 1
    assert check["detail"] == "not set: github (used by gh); those servers will not start"
    assert check["fix"] == "vsm-mcp secrets set github"
    assert not (tmp_path / "state.db").exists()
    added = runner.invoke(
        app,
        ["--state-dir", str(tmp_path), "servers", "add", "api", "--env", "K=${secret:github}", "--", "true"],
    )
    assert added.exit_code == 0, added.output
    assert secrets_check()[0]["detail"] == "not set: github (used by api, gh); those servers will not start"
    assert (
        runner.invoke(app, ["--state-dir", str(tmp_path), "secrets", "set", "github"], input="v").exit_code
        == 0
    )
    check, _ = secrets_check()
    assert (check["verdict"], check["detail"]) == ("ok", "all 1 secrets the servers refer to are set")


def test_doctor_fails_when_state_dir_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["--state-dir", str(blocker), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert checks["state dir"]["verdict"] == "fail"
    assert "--state-dir" in checks["state dir"]["fix"]
    assert result.exit_code == 1


def test_servers_from_the_settings_file(tmp_path: Path) -> None:
    from vsm_mcp.settings import load_settings

    config = tmp_path / "c.toml"
    config.write_text(
        '[servers.time]\ncommand = "uvx"\nargs = ["mcp-server-time"]\n\n[servers.web]\nurl = "http://127.0.0.1:9/mcp"\n'
    )
    settings = load_settings(config)
    assert settings.servers["time"].name == "time"
    assert settings.servers["time"].transport == "stdio"
    assert settings.servers["time"].args == ["mcp-server-time"]
    assert settings.servers["web"].transport == "http"


def test_a_server_with_command_and_url_is_refused_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[servers.both]\ncommand = "x"\nurl = "http://127.0.0.1:9/mcp"\n')
    result = vsm("--config", str(config), "status")
    assert result.returncode == 1
    assert "servers.both" in result.stderr
    assert "exactly one of 'command'" in result.stderr


def test_plain_status_shows_the_live_fleet_failing_first_and_the_audit_findings(tmp_path: Path) -> None:
    async def seed() -> None:
        async with SqliteStore.open(tmp_path / "state.db") as store:
            await store.kv_put(
                report.LIVE_STATUS_KEY,
                {
                    "at": time.time(),
                    "fleet": [
                        {
                            "name": "alpha",
                            "state": "ready",
                            "tools": 3,
                            "calls": 7,
                            "errors": 0,
                            "sandbox": "off",
                        },
                        {
                            "name": "zulu",
                            "state": "failed",
                            "tools": 0,
                            "calls": 0,
                            "errors": 0,
                            "sandbox": "REFUSED: no bwrap",
                            "last_error": "start failed: uvx: no such file or command",
                        },
                    ],
                },
            )
            await store.record_finding(AuditFinding(time.time(), "alpha", "ping", False, "no answer", None))

    anyio.run(seed)
    result = runner.invoke(app, ["--state-dir", str(tmp_path), "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "WARNING: server zulu REFUSED: no bwrap" in out
    assert "S1 units (live)" in out and "S3* audit findings" in out
    assert out.index("zulu") < out.index("alpha")  # failing first
    assert "start failed: uvx: no such file or command" in out
    assert "no answer" in out


def test_decisions_list_and_show_read_the_store_by_number(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from vsm_mcp.cli.app import app
    from vsm_mcp.core.messages import Decision
    from vsm_mcp.store import SqliteStore

    state = tmp_path / "state"
    state.mkdir()

    async def seed() -> list[int]:
        async with SqliteStore.open(state / "state.db") as store:
            return [
                await store.record_decision(
                    Decision(1.0, "s5", "variety_gap", "ask_operator", "r", "why", {"gap": 0.7})
                ),
                await store.record_decision(Decision(2.0, "s3", "park:p", "park", "idle", "idle 60 s")),
            ]

    first, second = anyio.run(seed)
    runner = CliRunner()
    listed = runner.invoke(app, ["--state-dir", str(state), "decisions", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [d["id"] for d in json.loads(listed.output)] == [second, first]
    only = runner.invoke(app, ["--state-dir", str(state), "decisions", "list", "--system", "s5", "--json"])
    assert [d["subject"] for d in json.loads(only.output)] == ["variety_gap"]
    shown = runner.invoke(app, ["--state-dir", str(state), "decisions", "show", str(first), "--json"])
    assert json.loads(shown.output)["inputs"] == {"gap": 0.7}
    text = runner.invoke(app, ["--state-dir", str(state), "decisions", "show", str(first)])
    assert "choice: ask_operator" in text.output and '"gap": 0.7' in text.output
    missing = runner.invoke(app, ["--state-dir", str(state), "decisions", "show", "99"])
    assert missing.exit_code != 0 and "no decision 99" in str(missing.exception)


def test_self_prints_the_stored_self_model_and_says_when_there_is_none(tmp_path: Path) -> None:
    import json

    state = tmp_path / "state"
    runner = CliRunner()
    missing = runner.invoke(app, ["--state-dir", str(state), "self"])
    assert missing.exit_code != 0 and "no gateway has stored a self-model" in str(missing.exception)
    model = {
        "at": time.time() - 3,
        "name": "vsm-mcp",
        "can": [
            {
                "category": "time",
                "unit": "time",
                "state": "ready",
                "tools": ["time__get_current_time"],
                "calls": 4,
                "observed": {"successes": 3, "failures": 1},
                "confidence": 0.625,
                "confidence_from": "observed outcomes",
            }
        ],
        "cannot": {"unanswered_demand": [{"category": "weather", "asks": 7}], "refused_acquisitions": []},
        "limits": {
            "units_running": 1,
            "max_units": 2,
            "rss_bytes": 1,
            "max_rss_bytes": None,
            "over_budget": False,
            "sandbox": {"mode": "require", "network": True},
            "installs_this_hour": 1,
            "installs_left_this_hour": 9,
            "acquisitions_need_an_operator": True,
        },
        "health": {
            "systems": {"s1": "ok", "s4": "gap"},
            "failed_units": [],
            "quarantined_units": [],
            "alerts_waiting_for_an_operator": 0,
            "drifts_found": 0,
        },
        "recent": {"operator_actions": [], "decisions": []},
    }

    async def seed() -> None:
        async with SqliteStore.open(state / "state.db") as store:
            await store.kv_put(report.SELF_MODEL_KEY, model)

    anyio.run(seed)  # the failed `self` above made the state directory
    shown = runner.invoke(app, ["--state-dir", str(state), "self"])
    assert shown.exit_code == 0, shown.output
    assert (
        "time via time__get_current_time (unit time, ready): confidence 0.62, 3 of 4 calls succeeded"
        in shown.output
    )
    assert "Asked for but cannot do: weather (7 asks)." in shown.output
    assert "1 servers running of 2; sandbox require" in shown.output and "s4 gap" in shown.output
    as_json = json.loads(runner.invoke(app, ["--state-dir", str(state), "self", "--json"]).output)
    assert as_json["limits"]["installs_left_this_hour"] == 9 and as_json["age_s"] >= 3


def test_reflect_reports_the_stored_predictions_against_what_followed(tmp_path: Path) -> None:
    import json

    from vsm_mcp.core.messages import Decision
    from vsm_mcp.discovery.outcomes import OutcomeLedger, Tally

    state = tmp_path / "state"
    state.mkdir()

    async def seed() -> None:
        async with SqliteStore.open(state / "state.db") as store:
            inputs = {
                "unit": "t",
                "predicted_success": 0.8,
                "outcome_key": ["t-srv", "time"],
                "tally_at_decision": [0, 0],
            }
            await store.record_decision(
                Decision(time.time() - 60, "s5", "acquire:pypi:t@1", "acquired", "r", "ok", inputs)
            )
            ledger = OutcomeLedger()
            ledger.tallies[("t-srv", "time")] = Tally(4, 1)
            await ledger.save(store)

    anyio.run(seed)
    runner = CliRunner()
    out = runner.invoke(app, ["--state-dir", str(state), "reflect", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["brier"] == round((4 * 0.2**2 + 1 * 0.8**2) / 5, 6)
    text = runner.invoke(app, ["--state-dir", str(state), "reflect"]).output
    assert "Brier score 0.1600 over 5 calls after 1 acquisitions" in text
    assert "no suggestions: nothing in the store supports one" in text
