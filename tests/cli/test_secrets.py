"""`vsm-mcp secrets ...`: set from stdin or the environment, list and remove, never printing a value."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from vsm_mcp.cli.app import app
from vsm_mcp.errors import ConfigError
from vsm_mcp.store import SqliteStore

runner = CliRunner()


def _vsm(state: Path, *args: str, stdin: str | None = None) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, ["--state-dir", str(state), *args], input=stdin)
    return result.exit_code, result.output, result.exception


def _stored(state: Path, name: str) -> str | None:
    async def read() -> str | None:
        async with SqliteStore.open(state / "state.db") as store:
            return await store.secret(name)

    return anyio.run(read)


def test_set_list_replace_and_remove_without_ever_printing_the_value(tmp_path: Path) -> None:
    code, out, _ = _vsm(tmp_path, "secrets", "set", "tok", stdin="s3cret-1\n")
    assert code == 0, out
    assert out.strip() == "secret tok set (8 characters); no server refers to it yet"
    assert _stored(tmp_path, "tok") == "s3cret-1"  # one line end taken off, as `echo ... |` adds it

    refs = ["--env", "TOKEN=Bearer ${secret:tok}", "--env", "OTHER=${secret:other}"]
    code, out, _ = _vsm(tmp_path, "servers", "add", "gh", *refs, "--", "true")
    assert code == 0, out
    assert "note: secret other not set yet; gh will not start until it is (vsm-mcp secrets set other)" in out
    code, out, _ = _vsm(tmp_path, "secrets", "list", "--json")
    rows = json.loads(out)
    assert [(r["name"], r["set_at"] is not None, r["used_by"]) for r in rows] == [
        ("other", False, ["gh"]),
        ("tok", True, ["gh"]),
    ]
    table = _vsm(tmp_path, "secrets", "list")[1]
    assert "NOT SET" in table and "s3cret" not in table

    code, out, _ = _vsm(tmp_path, "secrets", "set", "tok", stdin="s3cret-2")
    assert out.strip() == (
        "secret tok set (8 characters); used by gh from its next start (now: vsm-mcp servers restart gh)"
    )
    assert _stored(tmp_path, "tok") == "s3cret-2"

    code, out, _ = _vsm(tmp_path, "secrets", "remove", "tok")
    assert code == 0
    assert out.strip() == "secret tok removed; gh will not start until it is set again"
    assert _stored(tmp_path, "tok") is None
    _, _, error = _vsm(tmp_path, "secrets", "remove", "tok")
    assert isinstance(error, ConfigError)
    assert str(error) == "no secret named 'tok' is set"


def test_set_from_an_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TOKEN", "from-env\n")
    code, out, _ = _vsm(tmp_path, "secrets", "set", "tok", "--from-env", "MY_TOKEN")
    assert code == 0, out
    assert _stored(tmp_path, "tok") == "from-env\n"  # taken as it is
    _, _, error = _vsm(tmp_path, "secrets", "set", "tok", "--from-env", "NO_SUCH_VARIABLE")
    assert isinstance(error, ConfigError)
    assert "no variable 'NO_SUCH_VARIABLE'" in str(error)


@pytest.mark.parametrize(
    ("name", "stdin", "message"),
    [
        ("has space", "v", "secret name 'has space' must be 1-64 letters"),
        ("${secret:x}", "v", "must be 1-64 letters"),
        ("tok", "", "the value is empty; nothing stored"),
        ("tok", "\n", "the value is empty; nothing stored"),
    ],
)
def test_bad_names_and_empty_values_are_refused_and_store_nothing(
    tmp_path: Path, name: str, stdin: str, message: str
) -> None:
    _, _, error = _vsm(tmp_path, "secrets", "set", name, stdin=stdin)
    assert isinstance(error, ConfigError)
    assert message in str(error)
    assert json.loads(_vsm(tmp_path, "secrets", "list", "--json")[1]) == []


def test_the_audit_log_names_the_local_user_and_the_secret_never_its_value(tmp_path: Path) -> None:
    from vsm_mcp.gateway.access import LOCAL_OPERATOR

    assert _vsm(tmp_path, "secrets", "set", "github", stdin="s3cret-value\n")[0] == 0
    assert _vsm(tmp_path, "secrets", "remove", "github")[0] == 0
    code, out, _ = _vsm(tmp_path, "audit", "--json")
    assert code == 0, out
    log = json.loads(out)
    assert [(a["actor"], a["action"], a["target"], a["via"]) for a in log] == [
        (LOCAL_OPERATOR.label, "secret.remove", "github", "cli"),
        (LOCAL_OPERATOR.label, "secret.set", "github", "cli"),
    ]
    assert "s3cret-value" not in out
    code, table, _ = _vsm(tmp_path, "audit", "--action", "secret.set")
    assert code == 0 and "secret.set" in table and "secret.remove" not in table
