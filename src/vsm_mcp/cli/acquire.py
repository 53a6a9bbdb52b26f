"""`vsm-mcp acquire "QUERY"`: find, vet, install, verify and register a server for a need.

The request itself is demand: it is stored as one event in the query's
category (``search:<words>``, the gateway's category for an unanswered tool
search), and the variety gap of the stored demand is printed before and
after (read back from the store, where the new server's capabilities are
filed under that category). The new server is persisted in the fleet
registry (``fleet.servers``, as ``vsm-mcp servers add`` does), so a running
gateway starts it within a second and ``vsm-mcp serve`` runs it from then on.

Asking: vetting says ``ask`` unless S5 auto-approves; then ``--yes`` accepts,
an interactive terminal is asked (``typer.confirm``), and anything else is
refused with a message saying to pass ``--yes``. Refusals and failures are
one-line errors (exit 1) and leave nothing behind.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console

from vsm_mcp.acquisition.build import capability_service
from vsm_mcp.acquisition.launch import SandboxMode
from vsm_mcp.acquisition.pipeline import Acquired, Approver, FixedAnswer, StepProgress
from vsm_mcp.acquisition.service import PromptApprover
from vsm_mcp.cli.context import state_of
from vsm_mcp.core.messages import DemandAggregate
from vsm_mcp.core.variety import DEMAND_BUCKET_S
from vsm_mcp.gateway.access import LOCAL_OPERATOR
from vsm_mcp.report import reading_dict, stored_profile
from vsm_mcp.settings import Settings
from vsm_mcp.store import SqliteStore

_out = Console()
_err = Console(stderr=True)


def register(root: typer.Typer) -> None:
    """Add ``acquire`` to the root app."""
    root.command("acquire")(acquire)


def _confirm(question: str) -> bool:
    return typer.confirm(question, default=False, err=True)


def approver_for(yes: bool, interactive: bool) -> Approver:
    """``--yes`` accepts; an interactive terminal is asked; otherwise nobody can be asked."""
    if yes:
        return FixedAnswer(True, by=f"local user {LOCAL_OPERATOR.name} (--yes)")
    if interactive:

        async def ask(question: str) -> bool | None:
            return await anyio.to_thread.run_sync(_confirm, question)

        return PromptApprover(ask, who=f"local user {LOCAL_OPERATOR.name} (terminal)")
    return FixedAnswer(None)


@dataclass(frozen=True, slots=True)
class Options:
    """Everything `acquire` was told."""

    query: str
    yes: bool
    package: str | None
    server: str | None
    registries: tuple[str, ...] | None  # None: the [acquisition] settings decide
    sandbox: SandboxMode | None
    network: bool | None
    auto_approve: bool | None
    source_builds: bool | None = None


async def run_acquire(
    settings: Settings, options: Options, approver: Approver, progress: StepProgress | None = None
) -> dict[str, Any]:
    """The whole command, as data (what ``--json`` prints); ``progress`` hears each step."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    max_age = settings.variety.max_age_s or 3600.0
    async with (
        SqliteStore.open(settings.database_path) as store,
        capability_service(
            settings.acquisition,
            settings.servers.values(),
            settings.state_dir,
            store,
            approver,
            registries=options.registries,
            sandbox=options.sandbox,
            network=options.network,
            auto_approve=options.auto_approve,
            source_builds=options.source_builds,
        ) as service,
    ):
        plan = await service.plan(options.query, package=options.package, server=options.server)
        now = time.time()
        bucket = int(now) // DEMAND_BUCKET_S * DEMAND_BUCKET_S
        await store.add_demand([DemandAggregate(plan.category, bucket, 1, 0)])
        before = (await stored_profile(store, max_age_s=max_age)).reading()
        candidates = [plan.candidate, *plan.alternatives]
        existing = await service.acquirer.installed_unit(plan.candidate)
        if existing is not None:
            return {
                "query": options.query,
                "category": plan.category,
                "candidates": [service.describe(c) for c in candidates],
                "unit": existing,
                "already_installed": True,
                "gap_before": reading_dict(before),
                "gap_after": reading_dict(before),
            }
        result = await service.acquire(plan, progress=progress)
        after = (await stored_profile(store, max_age_s=max_age)).reading()
    return _result_json(options, result, [service.describe(c) for c in candidates], before, after)


def _step(step: str, seconds: float | None) -> None:
    """Each step of the pipeline as it goes, on stderr (stdout keeps the result, or ``--json``)."""
    if seconds is None:
        _err.print(f"  {step} ...", highlight=False)
    else:
        _err.print(f"  {step} done in {seconds:.2f} s", highlight=False)


def _result_json(
    options: Options, result: Acquired, candidates: list[dict[str, Any]], before: Any, after: Any
) -> dict[str, Any]:
    spec = result.spec
    return {
        "query": options.query,
        "category": result.plan.category,
        "candidates": candidates,
        "package": result.plan.candidate.ref,
        "unit": result.plan.unit,
        "prefix": str(result.plan.prefix),
        "command": result.installation.command,
        "sandboxed": result.launch.sandboxed,
        "sandbox": result.launch.detail,
        "tools": [spec.public_name(str(t.get("name"))) for t in result.verification.tools],
        "pins": dict(result.verification.pins),
        "server_info": f"{result.verification.server_name} {result.verification.server_version}",
        "timings_s": {k: round(v, 3) for k, v in result.timings_s.items()},
        "already_installed": False,
        "gap_before": reading_dict(before),
        "gap_after": reading_dict(after),
    }


def _gap_line(label: str, reading: dict[str, Any]) -> str:
    return (
        f"variety gap {label}: {reading['gap']:.3f} (coverage {reading['coverage']:.3f}, "
        f"demand {reading['demand_variety_bits']:.3f} bits, system {reading['system_variety_bits']:.3f} bits, "
        f"{reading['events']} events)"
    )


def acquire(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What the server should be able to do, in words.")] = "",
    *,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accept when vetting asks a person.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    package: Annotated[
        str | None, typer.Option("--package", help="Acquire exactly REGISTRY:NAME@VERSION (no ranking).")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", help="Pick this catalog server among the matches.")
    ] = None,
    registry: Annotated[
        list[str] | None, typer.Option("--registry", help="Allowed registry types (npm, pypi; repeatable).")
    ] = None,
    sandbox: Annotated[
        str | None,
        typer.Option(
            "--sandbox", help="require | prefer (fall back to unsandboxed) | off [default: settings]"
        ),
    ] = None,
    network: Annotated[bool, typer.Option("--network", help="Let the server use the network.")] = False,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="S5 auto-approves catalog packages that pass vetting.")
    ] = False,
    source_build: Annotated[
        bool,
        typer.Option(
            "--allow-source-build",
            help="Build a source distribution if the package has no wheel (its build code runs, sandboxed).",
        ),
    ] = False,
) -> None:
    """Acquire a server for a need: rank, vet, install, verify, register."""
    if sandbox is not None and sandbox not in ("require", "prefer", "off"):
        raise typer.BadParameter("--sandbox must be require, prefer or off")
    options = Options(
        query=query,
        yes=yes,
        package=package,
        server=server,
        registries=tuple(registry) if registry else None,
        sandbox=sandbox,  # type: ignore[arg-type]
        network=True if network else None,
        auto_approve=True if auto_approve else None,
        source_builds=True if source_build else None,
    )
    settings = state_of(ctx).settings()
    approver = approver_for(yes, interactive=sys.stdin.isatty() and not as_json)
    data = anyio.run(run_acquire, settings, options, approver, None if as_json else _step)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for index, c in enumerate(data["candidates"], 1):
        _out.print(f"{index}. {c['server']}  {c['package']}  score {c['score']}  ({'; '.join(c['reasons'])})")
    _out.print(_gap_line("before", data["gap_before"]))
    if data["already_installed"]:
        _out.print(f"already installed as server {data['unit']!r}; nothing to do")
        return
    _out.print(f"acquired {data['package']} as server {data['unit']!r} ({data['sandbox']})")
    _out.print(f"tools: {', '.join(data['tools'])}")
    _out.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in data["timings_s"].items()))
    _out.print(_gap_line("after", data["gap_after"]))


def register_bench(bench: typer.Typer) -> None:
    """Add ``acquire`` to the ``bench`` group."""
    bench.command("acquire")(bench_acquire)


def bench_acquire(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    registry: Annotated[
        list[str] | None, typer.Option("--registry", help="Cases of these registries only (pypi, npm).")
    ] = None,
) -> None:
    """Gap detected -> first successful call, cold and warm cache, beside uvx/npx by hand."""
    from vsm_mcp.bench import acquire as acquire_bench

    rows = acquire_bench.run(tuple(registry or ("pypi", "npm")))
    if as_json:
        typer.echo(json.dumps({"cases": rows}, indent=2))
        return
    for row in rows:
        _out.print(
            f"{row['case']} [{row['cache']}]: vsm {row['vsm_s']:.2f}s, by hand {row['by_hand_s']:.2f}s, "
            f"ratio {row['ratio']:.2f}; gap {row['gap_before']:.3f} -> {row['gap_after']:.3f}; "
            + ", ".join(f"{k} {v:.2f}s" for k, v in row["vsm_steps_s"].items())
        )
