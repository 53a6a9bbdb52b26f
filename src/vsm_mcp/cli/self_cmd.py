"""`vsm-mcp self [--json]`: the system's computed account of itself, as its running gateway last stored it.

A running gateway stores its self-model with the live status every couple of
seconds (`bridge.self_model`); this prints the brief a client's model gets
from the ``vsm_self_brief`` prompt, or the whole model with ``--json``.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.text import Text

from vsm_mcp.cli.context import state_of

_out = Console()


def self_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the system can and cannot do, its limits, health and recent changes (computed by it)."""
    from vsm_mcp import report
    from vsm_mcp.bridge.self_model import brief
    from vsm_mcp.errors import ConfigError
    from vsm_mcp.fleet.logfile import printable
    from vsm_mcp.store import SqliteStore

    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def read() -> Any:
        async with SqliteStore.open(settings.database_path) as store:
            return await store.kv_get(report.SELF_MODEL_KEY)

    model = anyio.run(read)
    if not isinstance(model, dict) or "at" not in model:
        raise ConfigError(
            f"no gateway has stored a self-model in {settings.state_dir} yet: start one (`vsm-mcp up`)"
        )
    if as_json:
        print(json.dumps({**model, "age_s": round(time.time() - float(model["at"]), 1)}, indent=2))
        return
    age = time.time() - float(model["at"])
    for line in brief(model).splitlines():  # each line made printable (servers named the tools)
        _out.print(Text(printable(line)), soft_wrap=True)
    _out.print(Text(f"(computed {age:.0f} s ago by the gateway on this state directory)", style="dim"))


def register(root: typer.Typer) -> None:
    """Add ``self`` to the root app."""
    root.command("self")(self_)
