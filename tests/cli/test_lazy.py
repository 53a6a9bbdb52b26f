"""The root command starts without the heavy layers, and lists each command with its own help."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import typer.main

from vsm_mcp.bench import cli_start
from vsm_mcp.cli.app import app
from vsm_mcp.cli.lazy import COMMANDS, load

HEAVY = [
    "mcp",
    "vsm_mcp.fleet.fleet",
    "vsm_mcp.acquisition",
    "vsm_mcp.runtime",
    "vsm_mcp.gateway",
    "pydantic",
]


def test_the_root_command_imports_no_heavy_layer() -> None:
    probe = (
        "import json, sys\nimport vsm_mcp.cli.app\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_listed_help_is_each_commands_own() -> None:
    for name, (_, _, short) in COMMANDS.items():
        command: Any = load(name)
        own = (command.help or "").strip().splitlines()[0]
        assert own == short, name


def test_every_command_of_the_root_is_listed_and_resolves() -> None:
    root: Any = typer.main.get_command(app)
    assert set(root.commands) == set(COMMANDS)
    root.load_all()
    assert all(getattr(root.commands[n], "name", None) == n for n in COMMANDS)


def test_the_start_up_bench_reports_every_target_beside_the_floors() -> None:
    result = cli_start.run(runs=1)
    assert [r["target"] for r in result["rows"]] == list(cli_start.TARGETS)
    assert all(r["median_s"] > 0 and r["vs_target"] == round(r["median_s"] / 0.3, 3) for r in result["rows"])


def test_root_options_after_the_command_are_taken_as_given_before_it() -> None:
    from vsm_mcp.cli.app import hoist_global_options as hoist

    assert hoist(["servers", "list", "--state-dir", "/s"]) == ["--state-dir", "/s", "servers", "list"]
    assert hoist(["status", "--json", "--config=/c.toml"]) == ["--config=/c.toml", "status", "--json"]
    assert hoist(["--state-dir", "/s", "status"]) == ["--state-dir", "/s", "status"]
    # A server's own command line is never touched.
    add = ["servers", "add", "x", "--", "cmd", "--state-dir", "/theirs"]
    assert hoist(add) == add
    assert hoist(["--help"]) == ["--help"] and hoist([]) == []
