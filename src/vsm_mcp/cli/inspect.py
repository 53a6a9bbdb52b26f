"""`vsm-mcp status`, `vsm-mcp variety` and `vsm-mcp doctor`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vsm_mcp import report
from vsm_mcp.cli.context import state_of
from vsm_mcp.errors import VsmError
from vsm_mcp.fleet.logfile import printable
from vsm_mcp.paths import cached
from vsm_mcp.store.sqlite import SqliteStore

if TYPE_CHECKING:  # loaded by the commands that need them
    from vsm_mcp.doctor import Check
    from vsm_mcp.settings import Settings

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _report_settings(ctx: typer.Context) -> tuple[Path, float]:
    """The state directory and the demand window's age, from settings validated once per change
    (`vsm_mcp.paths.cached`: a bad settings file is still refused, naming the field)."""
    state = state_of(ctx)

    def validate() -> dict[str, Any]:
        settings = state.settings()
        return {"state_dir": str(settings.state_dir), "max_age_s": settings.variety.max_age_s or 3600.0}

    values = cached(state.config, state.state_dir, validate)
    return Path(values["state_dir"]), float(values["max_age_s"])


async def _status(state_dir: Path, max_age_s: float) -> dict[str, Any]:
    async with SqliteStore.open(state_dir / "state.db") as store:
        data = await report.status_report(store, max_age_s=max_age_s)
    data["state_dir"] = str(state_dir)
    return data


async def _variety(state_dir: Path, max_age_s: float) -> dict[str, Any]:
    async with SqliteStore.open(state_dir / "state.db") as store:
        return await report.variety_report(store, max_age_s=max_age_s)


def _reading_table(reading: dict[str, Any]) -> Table:
    table = Table(title="variety (stored demand vs capabilities)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "events",
        "categories",
        "demand_variety_bits",
        "system_variety_bits",
        "coverage",
        "unmatched_share",
        "entropy_deficit_bits",
        "requisite_ratio",
        "gap",
    ):
        value = reading[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The viable system at a glance: units, variety, alerts, decisions, audit."""
    data = anyio.run(_status, *_report_settings(ctx))
    if as_json:
        typer.echo(json.dumps(data, default=str))
        return
    console = Console()
    console.print(f"[bold]state[/] {data['state_dir']}")
    if data["live"] is None:
        console.print("[yellow]no running gateway has reported yet[/] (start one with `vsm-mcp up`)")
    else:
        console.print(f"[bold]live snapshot[/] {data['live_age_s']} s old")
        fleet = [u for u in data["live"].get("fleet", []) if isinstance(u, dict)]
        for unit in fleet:
            sandbox = str(unit.get("sandbox", ""))
            if sandbox.startswith(("UNSANDBOXED", "REFUSED")):
                console.print(
                    Text(f"WARNING: server {unit.get('name')} {sandbox}", style="bold red"),
                    soft_wrap=True,
                )
            if unit.get("quarantine"):  # its tools are withheld: the server wrote what changed
                console.print(
                    Text(
                        f"WARNING: server {unit.get('name')} is quarantined: {printable(str(unit['quarantine']))}; "
                        f"to accept: vsm-mcp servers approve {unit.get('name')}",
                        style="bold red",
                    ),
                    soft_wrap=True,
                )
        console.print(_fleet_table(fleet))
    console.print(_reading_table(data["variety"]))
    units = Table(title="S1 units (stored capabilities)")
    units.add_column("unit")
    units.add_column("tools", justify="right")
    for unit in data["units"]:
        units.add_row(unit["name"], str(unit["tools"]))
    console.print(units)
    alerts = Table(title="algedonic alerts (latest first)")
    for column in ("when", "source", "kind", "severity", "count", "detail"):
        alerts.add_column(column)
    for a in data["alerts"]:
        alerts.add_row(
            _when(a["last_at"]), a["source"], a["kind"], a["severity"], str(a["count"]), a["detail"]
        )
    console.print(alerts)
    decisions = Table(title="S5 decisions (latest first)")
    for column in ("when", "system", "subject", "choice", "rule"):
        decisions.add_column(column)
    for d in data["decisions"]:
        decisions.add_row(_when(d["at"]), d["system"], d["subject"], d["choice"], d["rule"])
    console.print(decisions)
    audit = Table(title="S3* audit findings (latest first)")
    for column in ("when", "unit", "check", "ok", "detail"):
        audit.add_column(column)
    for f in data["audit"]:
        audit.add_row(
            _when(f["at"]),
            f["unit"],
            f["check"],
            "yes" if f["ok"] else Text("NO", style="bold red"),
            Text(printable(str(f["detail"]))),
        )
    console.print(audit)
    console.print(f"dead letters pending: {data['dead_letters_pending']}")


def _fleet_table(fleet: list[dict[str, Any]]) -> Table:
    """The running gateway's units, failing ones first."""
    order = {"failed": 0, "quarantined": 0, "backoff": 1, "starting": 2}

    def shown_state(u: dict[str, Any]) -> str:
        return "quarantined" if u.get("quarantine") else str(u.get("state", "?"))

    table = Table(title="S1 units (live)")
    for column in ("unit", "state", "tools", "calls", "errors", "sandbox", "last error"):
        table.add_column(column)
    for u in sorted(fleet, key=lambda u: (order.get(shown_state(u), 3), str(u.get("name")))):
        state = shown_state(u)
        why = f"quarantined: {u['quarantine']}" if u.get("quarantine") else str(u.get("last_error") or "")
        table.add_row(
            str(u.get("name")),
            Text(state, style="bold red" if state in ("failed", "quarantined") else ""),
            *(str(u.get(key, "-")) for key in ("tools", "calls", "errors")),
            Text(str(u.get("sandbox", "-"))),
            Text(printable(why)),
        )
    return table


def variety(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Environmental vs system variety, coverage and the gap, per demand category."""
    data = anyio.run(_variety, *_report_settings(ctx))
    if as_json:
        typer.echo(json.dumps(data))
        return
    console = Console()
    console.print(_reading_table(data["reading"]))
    table = Table(title=f"demand categories, last {data['window_s']:g} s")
    table.add_column("category")
    table.add_column("calls", justify="right")
    table.add_column("answered")
    for row in data["categories"]:
        table.add_row(row["category"], str(row["count"]), "yes" if row["answered"] else "[red]no[/]")
    console.print(table)


def doctor(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check Python, node/npx, uv/pip, bubblewrap, the state dir and the servers' secrets; say how to fix each."""
    from vsm_mcp.doctor import Verdict, check_servers, diagnose

    settings = state_of(ctx).settings()
    checks = [
        *diagnose(settings.state_dir, sandbox_mode=settings.sandbox.mode),
        _secrets_check(settings),
        check_servers(_live_status(settings)),
    ]
    failed = any(c.verdict is Verdict.FAIL for c in checks)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"name": c.name, "verdict": c.verdict.value, "detail": c.detail, "fix": c.fix}
                    for c in checks
                ]
            )
        )
    else:
        table = Table(title="vsm-mcp doctor")
        for column in ("check", "verdict", "detail", "fix"):
            table.add_column(column)
        colour = {Verdict.OK: "green", Verdict.WARN: "yellow", Verdict.FAIL: "red"}
        for c in checks:
            table.add_row(c.name, f"[{colour[c.verdict]}]{c.verdict.value}[/]", c.detail, c.fix)
        Console().print(table)
    if failed:
        raise typer.Exit(1)


def _secrets_check(settings: Settings) -> Check:
    from vsm_mcp.doctor import Check, Verdict, check_secrets
    from vsm_mcp.fleet.registry import FleetRegistry
    from vsm_mcp.fleet.secrets import secret_users

    """The secrets the servers refer to against those stored (a missing database stores none)."""

    async def gather() -> tuple[dict[str, list[str]], set[str]]:
        specs = list(settings.servers.values())
        kept: set[str] = set()
        if settings.database_path.exists():  # never create the database just to look
            async with SqliteStore.open(settings.database_path) as store:
                specs = list((await FleetRegistry(store, specs).desired()).values())
                kept = {name for name, _ in await store.secret_names()}
        return secret_users(specs), kept

    try:
        users, kept = anyio.run(gather)
    except VsmError as exc:
        return Check("secrets", Verdict.FAIL, f"cannot read the state database: {exc}", "vsm-mcp status")
    return check_secrets(users, kept)


def _live_status(settings: Settings) -> object:
    """What a running gateway last reported (None without a database: never created to look)."""
    if not settings.database_path.exists():
        return None

    async def read() -> object:
        async with SqliteStore.open(settings.database_path) as store:
            return await store.kv_get(report.LIVE_STATUS_KEY)

    try:
        return anyio.run(read)
    except VsmError:
        return None  # the secrets check reports an unreadable database


def register(root: typer.Typer) -> None:
    """Add these commands to the root app."""
    root.command("status")(status)
    root.command("variety")(variety)
    root.command("doctor")(doctor)
