"""`vsm-mcp servers ...` and `vsm-mcp dlq ...` through the real root app."""

from __future__ import annotations

import hashlib
import json
import sys
import time
import tracemalloc
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from vsm_mcp.cli import servers
from vsm_mcp.cli.app import app
from vsm_mcp.core.messages import DeadLetter
from vsm_mcp.core.payload import CAPPED_KEY
from vsm_mcp.errors import ConfigError, UnitError, UnknownUnitError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.store import SqliteStore

runner = CliRunner()
PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"


def _vsm(state: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, ["--state-dir", str(state), *args])
    return result.exit_code, result.output, result.exception


def test_add_list_restart_remove(tmp_path: Path) -> None:
    code, out, _ = _vsm(
        tmp_path, "servers", "add", "time", "--env", "TZ=UTC", "--", "true", "mcp-server-time", "-x"
    )
    assert code == 0, out
    assert "added time: true mcp-server-time -x (sandbox: prefer, network)" in out
    code, out, _ = _vsm(tmp_path, "servers", "list", "--json")
    assert json.loads(out) == [
        {
            "name": "time",
            "source": "runtime",
            "transport": "stdio",
            "target": "true mcp-server-time -x",
            "namespace": "time",
            "sandbox": "prefer, network",
            "running": None,
            "limits": None,  # what holds is known only where a gateway runs it
            **dict.fromkeys(("state", "tools", "calls", "errors", "last_error")),  # likewise
            "quarantine": None,
        }
    ]
    code, out, error = _vsm(tmp_path, "servers", "add", "time", "--", "true")
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
            # A call the tool itself answers with isError: a failure, not a replay.
            await store.put_dead_letter(
                DeadLetter(
                    at=time.time(), unit="p", tool="add", arguments={"a": "x", "b": 1}, error="e", attempts=1
                )
            )

    anyio.run(seed)
    listed = json.loads(_vsm(tmp_path, "dlq", "list", "--json")[1])
    assert [(d["server"], d["tool"], d["attempts"], d["replayed_at"]) for d in listed] == [
        ("p", "echo", 3, None),
        ("gone", "x", 1, None),
        ("p", "add", 1, None),
    ]
    code, out, _ = _vsm(tmp_path, "dlq", "replay")
    assert code == 1  # one letter's server no longer exists, one tool said no
    lines = out.splitlines()
    assert lines[0].startswith(
        "no gateway with an HTTP face runs on this state dir: replaying with a one-off fleet"
    )
    assert lines[1:3] == ["#1: p/echo replayed", "#2: gone/x failed again: server 'gone' no longer exists"]
    assert lines[3].startswith("#3: p/add failed again: the tool reported an error: ")
    assert lines[4] == "1 replayed, 2 still failing"
    remaining = json.loads(_vsm(tmp_path, "dlq", "list", "--json")[1])
    assert [(d["id"], d["attempts"]) for d in remaining] == [(2, 2), (3, 2)]
    assert remaining[1]["error"].startswith("the tool reported an error: ")
    replayed = json.loads(_vsm(tmp_path, "dlq", "list", "--all", "--json")[1])
    assert replayed[0]["replayed_at"] is not None


def test_add_with_its_own_sandbox_choices_stores_them_and_list_shows_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out, _ = _vsm(
        tmp_path,
        "servers",
        "add",
        "files",
        "--sandbox",
        "require",
        "--no-network",
        "--data-dir",
        str(data),
        "--",
        "npx",
        "-y",
        "@modelcontextprotocol/server-filesystem",
        str(data),
    )
    assert code == 0, out
    assert "(sandbox: require, no network)" in " ".join(out.split())  # rich wraps long lines

    async def stored() -> object:
        async with SqliteStore.open(tmp_path / "state.db") as store:
            return await store.kv_get("fleet.servers")

    spec = anyio.run(stored)
    assert isinstance(spec, dict)
    assert spec["files"]["sandbox"] == {"mode": "require", "network": False, "data_dirs": [str(data)]}
    [row] = json.loads(_vsm(tmp_path, "servers", "list", "--json")[1])
    assert (row["sandbox"], row["running"]) == ("require, no network", None)
    _, _, error = _vsm(tmp_path, "servers", "add", "x", "--sandbox", "maybe", "--", "true")
    assert isinstance(error, ConfigError)
    assert str(error) == "--sandbox must be require, prefer or off, got 'maybe'"


@pytest.mark.anyio
@pytest.mark.slow
async def test_list_shows_how_a_running_gateway_runs_each_server(tmp_path: Path) -> None:
    from vsm_mcp import report
    from vsm_mcp.runtime import Runtime
    from vsm_mcp.settings import load_settings

    config = tmp_path / "config.toml"
    config.write_text(
        f'[servers.probe]\ncommand = "{sys.executable}"\nargs = ["{PROBE}"]\n'
        "[servers.plain]\n"
        f'command = "{sys.executable}"\nargs = ["{PROBE}"]\n'
        '[servers.plain.sandbox]\nmode = "off"\n'
    )
    settings = load_settings(config, state_dir=tmp_path)

    async def units_reported(store: SqliteStore) -> bool:
        live = await store.kv_get(report.LIVE_STATUS_KEY)
        return isinstance(live, dict) and all(
            u["state"] == "ready"
            for u in live["fleet"]  # type: ignore[union-attr]
        )

    async with Runtime.open(settings, seed=1) as runtime:
        with anyio.fail_after(30):
            await runtime.fleet.wait_ready("probe")
            await runtime.fleet.wait_ready("plain")
            while True:  # each round of the sampler stores the status, then says so
                mark = runtime.notices.last_seq
                if await units_reported(runtime.store):
                    break
                await runtime.notices.wait_for("status.stored", after=mark)
        code, out, _ = await anyio.to_thread.run_sync(
            lambda: _vsm(tmp_path, "--config", str(config), "servers", "list", "--json")
        )
    assert code == 0, out
    rows = {r["name"]: (r["sandbox"], r["running"]) for r in json.loads(out)}
    assert rows == {"plain": ("off", "off"), "probe": ("prefer, network", "bwrap, egress-only network")}
    live = {
        r["name"]: (r["state"], r["tools"], r["calls"], r["errors"], r["last_error"]) for r in json.loads(out)
    }
    assert live["probe"][:4] == ("ready", len(runtime.fleet.unit("probe").catalog.tools), 0, 0)


def test_logs_read_only_the_tail_of_a_huge_log_and_print_it_clean(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(parents=True)
    noise = b"".join(b"\x1b[31mred\x1b[0m \x1b]0;owned\x07line %d\r\n" % i for i in range(20_000))
    with (logs / "p.log").open("wb") as out:
        while out.tell() < 50 * 1024 * 1024:
            out.write(noise)
        out.write("\x1b]8;;http://x\x1b\\last\x1b]8;;\x1b\\ \u202eline\x1b[2J\x9b1m\n".encode())
    tracemalloc.start()
    try:
        code, out, _ = _vsm(tmp_path, "servers", "logs", "p", "-n", "1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (code, out) == (0, "last line\n")
    assert peak < 2 * 1024 * 1024  # the log is 50 MiB; reading it whole took 517 MB


def test_logs_continue_into_rotated_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(parents=True)
    (logs / "p.log.1").write_text("older 1\nolder 2\n")
    assert _vsm(tmp_path, "servers", "logs", "p", "-n", "1")[1] == "older 2\n"  # rotated, not yet reopened
    (logs / "p.log").write_text("newer\n")
    assert _vsm(tmp_path, "servers", "logs", "p", "-n", "2")[1] == "older 2\nnewer\n"
    assert _vsm(tmp_path, "servers", "logs", "p", "-n", "0")[1] == ""


@pytest.mark.slow
def test_dead_letters_of_huge_calls_keep_a_digest_and_replay_says_why_not(tmp_path: Path) -> None:
    blob = "x" * 50_000_000

    async def dead_letter_two_huge_calls() -> None:
        async with (
            SqliteStore.open(tmp_path / "state.db") as store,
            Fleet([ServerSpec(name="broken", command="/nonexistent/server")], dead_letters=store) as fleet,
        ):
            await fleet.settled(20.0)
            for _ in range(2):
                with pytest.raises(UnitError):
                    await fleet.call_unit_tool("broken", "write", {"blob": blob})

    anyio.run(dead_letter_two_huge_calls)
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("state.db*"))
    assert on_disk < 1024 * 1024  # it was 105 MB
    listed = json.loads(_vsm(tmp_path, "dlq", "list", "--json")[1])
    text = json.dumps({"blob": blob}, separators=(",", ":"))
    digest = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "size": len(text), "preview": text[:512]}
    assert [d["arguments"] for d in listed] == [{CAPPED_KEY: digest}] * 2

    code, out, _ = _vsm(tmp_path, "dlq", "replay", "1")
    assert code == 1
    assert out.splitlines()[1:] == [
        f"#1: broken/write cannot be replayed: its arguments ({len(text)} bytes of JSON, sha256 "
        f"{digest['sha256'][:16]}...) were over the 64 KiB kept of a call, so only their digest was "
        "stored; kept",
        "0 replayed, 0 still failing, 1 not replayable",
    ]
    assert [d["id"] for d in json.loads(_vsm(tmp_path, "dlq", "list", "--json")[1])] == [1, 2]


def test_logs_follow_prints_new_lines_clean_until_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(parents=True)
    (logs / "p.log").write_text("before\n")
    arrivals = ["new \x1b[1mline\x1b[0m\n", "and \u202eanother\n"]

    def sleep(_: float) -> None:  # each poll of --follow: one more line arrives, then Ctrl-C
        if not arrivals:
            raise KeyboardInterrupt
        with (logs / "p.log").open("a") as out:
            out.write(arrivals.pop(0))

    monkeypatch.setattr(servers.time, "sleep", sleep)
    code, out, _ = _vsm(tmp_path, "servers", "logs", "p", "-n", "1", "--follow")
    assert (code, out) == (0, "before\nnew line\nand another\n")


def test_a_server_whose_namespace_is_another_servers_is_refused_and_an_empty_one_is_explained(
    tmp_path: Path,
) -> None:
    assert _vsm(tmp_path, "servers", "add", "benign", "--", "true")[0] == 0
    code, _, error = _vsm(tmp_path, "servers", "add", "other", "--namespace", "benign", "--", "true")
    assert code == 1
    assert isinstance(error, ConfigError)
    assert str(error) == (
        "server 'other' would publish tools as benign__..., which is server 'benign''s namespace: "
        "choose another name or namespace (--namespace)"
    )
    code, out, _ = _vsm(tmp_path, "servers", "add", "bare", "--namespace", "", "--", "true")
    assert code == 0
    assert (
        "note: bare has no namespace: a tool of it keeps its bare name only while no other server"
        in " ".join(out.split())
    )


def test_a_command_that_does_not_exist_is_refused_and_nothing_is_added(tmp_path: Path) -> None:
    code, _, error = _vsm(tmp_path, "servers", "add", "bad", "--", "/nonexistent/cmd")
    assert code == 1
    assert str(error) == (
        "command '/nonexistent/cmd' not found (not an executable file): install it, or give its full path "
        "(nothing was added)"
    )
    code, _, error = _vsm(tmp_path, "servers", "add", "bad", "--", "no-such-launcher-zz")
    assert str(error) == (
        "command 'no-such-launcher-zz' not found on PATH: install it, or give its full path (nothing was added)"
    )
    assert json.loads(_vsm(tmp_path, "servers", "list", "--json")[1]) == []


def test_an_empty_dead_letter_queue_says_so(tmp_path: Path) -> None:
    code, out, _ = _vsm(tmp_path, "dlq", "list")
    assert (code, out.strip()) == (0, "no dead letters waiting (--all includes replayed ones)")
    assert json.loads(_vsm(tmp_path, "dlq", "list", "--json")[1]) == []


def test_logs_json_is_one_array_of_clean_lines(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "p.log").write_bytes(b"first\n\x1b[31msecond\x1b[0m\n")
    code, out, _ = _vsm(tmp_path, "servers", "logs", "p", "-n", "2", "--json")
    assert (code, json.loads(out)) == (0, ["first", "second"])
