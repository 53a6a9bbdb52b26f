"""`vsm-mcp reflect [--json]`: how well the system's expectations matched what happened.

From the store only (`bridge.reflection`): each acquisition's predicted success
against the calls since, the Brier score over them, the reliability table,
the decisions whose outcome contradicted their expectation, and suggested
policy changes, each with the numbers behind it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vsm_mcp.cli.context import state_of

_out = Console()


def reflect(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Predicted against observed outcomes (Brier score, reliability), contradictions, suggestions."""
    from vsm_mcp.bridge.reflection import reflect as compute
    from vsm_mcp.fleet.logfile import printable
    from vsm_mcp.store import SqliteStore

    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def read() -> dict[str, Any]:
        async with SqliteStore.open(settings.database_path) as store:
            return await compute(store)

    report = anyio.run(read)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    calls = report["calls_observed"]
    if report["brier"] is None:
        _out.print(
            f"no calls observed since the {len(report['acquisitions'])} recorded acquisitions: nothing to "
            "calibrate yet",
            highlight=False,
        )
    else:
        _out.print(
            f"Brier score {report['brier']:.4f} over {calls} calls after {len(report['acquisitions'])} acquisitions "
            "(0 is perfect, 0.25 a coin toss)",
            highlight=False,
        )
        table = Table("predicted", "calls", "mean prediction", "observed success")
        for b in report["reliability"]:
            if b["calls"]:
                table.add_row(
                    f"{b['low']:.1f}-{b['high']:.1f}",
                    str(b["calls"]),
                    f"{b['predicted']:.2f}",
                    f"{b['observed']:.2f}",
                )
        _out.print(table)
    for c in report["contradictions"]:
        _out.print(
            Text(
                printable(
                    f"contradicted: decision {c['decision']} ({c['server']} for {c['category']!r}) expected "
                    f"{c['predicted_success']:.0%}, observed {c['observed_success']:.0%} over "
                    f"{c['successes'] + c['failures']} calls"
                )
            )
        )
    followed = report["followed"]
    if followed["by_choice"]:
        table = Table("other decisions", "recorded", "held", "contradicted", "open")
        for choice, c in followed["by_choice"].items():
            table.add_row(choice, str(c["decisions"]), str(c["held"]), str(c["contradicted"]), str(c["open"]))
        _out.print(table)
    for c in followed["contradicted"]:
        _out.print(
            Text(
                printable(
                    f"contradicted: decision {c['decision']} ({c['choice']} {c['subject']}) predicted "
                    f"{json.dumps(c['predicted'])}; {c['calls_since']} calls since, {c['successes']} served"
                    + (f"; next: {c['next']['choice']} after {c['next']['after_s']:g}s" if c["next"] else "")
                )
            )
        )
    for s in report["suggestions"]:
        _out.print(Text(printable(f"suggestion: {s}")), soft_wrap=True)
    if not report["suggestions"]:
        _out.print("no suggestions: nothing in the store supports one", highlight=False)


def register(root: typer.Typer) -> None:
    """Add ``reflect`` to the root app."""
    root.command("reflect")(reflect)
