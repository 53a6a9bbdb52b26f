"""The root command starts without the heavy layers, and lists each command with its own help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer.main

from vsm_mcp.bench import cli_start
from vsm_mcp.cli.app import app
from vsm_mcp.cli.lazy import COMMANDS, load, plain_coercion

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


def test_status_runs_without_importing_pydantic_once_its_settings_are_validated(tmp_path: Path) -> None:
    probe = (
        "import sys\nfrom vsm_mcp.cli.app import main\n"
        f"sys.argv = ['vsm-mcp', '--state-dir', {str(tmp_path)!r}, 'status', '--json']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('pydantic' in sys.modules, file=sys.stderr)"
    )
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert first.stderr.strip().splitlines()[-1] == "True"  # the settings were validated (then cached)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["state_dir"] == str(tmp_path)
    assert done.stderr.strip().splitlines()[-1] == "False"


def _probe_app() -> typer.Typer:
    probe = typer.Typer()

    @probe.command()
    def run(
        where: Annotated[Path, typer.Option(exists=True, dir_okay=False)],
        name: Annotated[str | None, typer.Option()] = None,
        count: Annotated[int, typer.Option(min=1)] = 1,
        home: Annotated[Path | None, typer.Option()] = None,
        loud: Annotated[bool, typer.Option("--loud/--quiet")] = False,
    ) -> None:
        typer.echo(repr((where, name, count, home, loud)))

    return probe


@pytest.mark.parametrize(
    "args",
    [
        ["--where", "FILE", "--name", "n", "--count", "3", "--home", "~/x", "--loud"],
        ["--where", "FILE", "--quiet"],
        ["--where", "MISSING"],  # typer's path check: does not exist
        ["--where", "DIR"],  # typer's path check: a directory where a file is asked
        ["--where", "FILE", "--count", "zero"],  # handed to typer's adapter: not an integer
        ["--where", "FILE", "--count", "0"],  # typer's range check
    ],
)
def test_plain_coercion_gives_typers_own_values_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    (tmp_path / "file").write_text("x")
    names = {"FILE": str(tmp_path / "file"), "MISSING": str(tmp_path / "nope"), "DIR": str(tmp_path)}
    argv = [names.get(a, a) for a in args]
    typer_own = _run(typer.main.get_command(_probe_app()), argv, capsys)
    plain: Any = typer.main.get_command(_probe_app())
    plain_coercion(plain)
    ours = _run(plain, argv, capsys)
    assert ours == typer_own
    assert ours[0] == (0 if len(args) > 2 and args[2] in ("--name", "--quiet") else 2)


def _run(command: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        command.main(argv, prog_name="run")
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err
