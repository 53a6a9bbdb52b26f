"""`vsm-mcp approvals ...`: what S5 asked an operator and nobody present could answer.

The autonomous loop (and a client that cannot be asked) keeps a question
when vetting says ``ask`` (`vsm_mcp.acquisition.approvals`). ``list`` shows
the waiting ones (``--all``: answered ones too), ``show ID`` the candidate,
the alternatives with their scores and the vetting verdict; ``approve ID``
installs, verifies and registers the candidate here and now, step by step
(a running gateway starts it within a second); ``deny ID`` refuses it for
good. Every answer names the local user who gave it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console
from rich.table import Table

from vsm_mcp.cli.context import audited, state_of

if TYPE_CHECKING:
    from vsm_mcp.core.messages import ApprovalRequest
    from vsm_mcp.core.ports import Store
    from vsm_mcp.settings import Settings

app = typer.Typer(
    help="Questions S5 keeps for an operator (acquisitions vetting asks about): list, show, approve, deny.",
    no_args_is_help=True,
)
_out = Console()
_err = Console(stderr=True, highlight=False)
_T = TypeVar("_T")


def _with_store(ctx: typer.Context, action: Callable[[Store, Settings], Awaitable[_T]]) -> _T:
    from vsm_mcp.store import SqliteStore

    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> _T:
        async with SqliteStore.open(settings.database_path) as store:
            return await action(store, settings)

    return anyio.run(run)


def _operator(command: str) -> str:
    from vsm_mcp.gateway.access import LOCAL_OPERATOR

    return f"local user {LOCAL_OPERATOR.name} (vsm-mcp approvals {command})"


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at is not None else "-"


def _record(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "kind": request.kind,
        "subject": request.subject,
        "status": request.status.value,
        "asked_at": request.asked_at,
        "question": request.question,
        "request": request.request,
        "decided_at": request.decided_at,
        "decided_by": request.decided_by,
        "outcome": request.outcome,
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    every: Annotated[bool, typer.Option("--all", help="Answered ones too (newest first).")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The questions waiting for an operator (newest first)."""
    from vsm_mcp.core.messages import ApprovalStatus

    async def read(store: Store, settings: Settings) -> list[ApprovalRequest]:
        return await store.approvals(status=None if every else ApprovalStatus.PENDING, limit=200)

    requests = _with_store(ctx, read)
    if as_json:
        print(json.dumps([_record(r) for r in requests], indent=2))
        return
    if not requests:
        _out.print("nothing waits for an operator" if not every else "no approvals yet", highlight=False)
        return
    table = Table("id", "status", "asked", "as server", "for")
    table.add_column("package", no_wrap=True)
    if every:
        table.add_column("answer")
    for r in requests:
        candidate = r.request.get("candidate") or {}
        package = f"{candidate.get('registry_type')}:{candidate.get('identifier')}@{candidate.get('version')}"
        row = [
            str(r.id),
            r.status.value,
            _when(r.asked_at),
            str(r.request.get("unit", "")),
            str(r.request.get("query") or r.request.get("category") or ""),
            package,
        ]
        if every:
            row.append(f"{r.decided_by or ''} {r.outcome or ''}".strip() or "-")
        table.add_row(*row)
    _out.print(table)
    if not every:
        _out.print("approve with `vsm-mcp approvals approve ID`, refuse with `deny ID`", highlight=False)


@app.command("show")
def show(
    ctx: typer.Context,
    approval_id: Annotated[int, typer.Argument(metavar="ID", help="The question.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One question: the candidate, the alternatives and their scores, the verdict, the answer."""
    from vsm_mcp.errors import ConfigError

    async def read(store: Store, settings: Settings) -> ApprovalRequest | None:
        return await store.approval(approval_id)

    request = _with_store(ctx, read)
    if request is None:
        raise ConfigError(f"no approval {approval_id} (see `vsm-mcp approvals list`)")
    if as_json:
        print(json.dumps(_record(request), indent=2))
        return
    data = request.request
    _out.print(
        f"approval {request.id} ({request.kind}, {request.status.value}), asked {_when(request.asked_at)}"
    )
    _out.print(f"  {request.question}", highlight=False, soft_wrap=True)
    for label, c in [("candidate", data.get("candidate") or {})] + [
        ("alternative", a) for a in data.get("alternatives") or []
    ]:
        reasons = "; ".join(c.get("reasons") or [])
        _out.print(
            f"  {label}: {c.get('server')} {c.get('registry_type')}:{c.get('identifier')}@{c.get('version')}"
            f" score {c.get('score')}" + (f" ({reasons})" if reasons else ""),
            highlight=False,
            soft_wrap=True,
        )
    verdict = data.get("verdict") or {}
    _out.print(
        f"  vetting: {verdict.get('rule')}: {verdict.get('rationale')}", highlight=False, soft_wrap=True
    )
    for note in verdict.get("notes") or []:
        _out.print(f"    - {note}", highlight=False, soft_wrap=True)
    if request.decided_by or request.outcome:
        _out.print(
            f"  answer: {request.decided_by or '-'} at {_when(request.decided_at)}: {request.outcome or '-'}",
            highlight=False,
            soft_wrap=True,
        )


def _step(step: str, seconds: float | None) -> None:
    if seconds is None:
        _err.print(f"  {step} ...")
    else:
        _err.print(f"  {step} done in {seconds:.2f} s")


@app.command("approve")
def approve(
    ctx: typer.Context,
    approval_id: Annotated[int, typer.Argument(metavar="ID", help="The question to answer yes.")],
) -> None:
    """Answer yes and act on it now: install, verify and register the candidate, step by step."""
    from vsm_mcp.acquisition import approvals
    from vsm_mcp.acquisition.build import capability_service
    from vsm_mcp.acquisition.pipeline import FixedAnswer

    who = _operator("approve")

    async def act(store: Store, settings: Settings) -> str:
        await approvals.pending(store, approval_id)  # said before the catalog loads
        answer = FixedAnswer(True, by=who)
        config, servers = settings.acquisition, settings.servers.values()
        async with capability_service(config, servers, settings.state_dir, store, answer) as service:
            _err.print(f"approval {approval_id}: approved by {who}")
            outcome = await approvals.approve(store, service.acquirer, approval_id, by=who, progress=_step)
            await audited(store, "approval.approve", str(approval_id), outcome)
            return outcome

    outcome = _with_store(ctx, act)
    _out.print(f"approval {approval_id}: {outcome}", highlight=False, soft_wrap=True)


@app.command("deny")
def deny(
    ctx: typer.Context,
    approval_id: Annotated[int, typer.Argument(metavar="ID", help="The question to answer no.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the answer).")] = "",
) -> None:
    """Answer no: the candidate is refused from now on (S5 stores the refusal)."""
    from vsm_mcp.acquisition import approvals

    who = _operator("deny")

    async def act(store: Store, settings: Settings) -> ApprovalRequest:
        request = await approvals.deny(store, approval_id, by=who, reason=reason)
        await audited(store, "approval.deny", str(approval_id), reason)
        return request

    request = _with_store(ctx, act)
    _out.print(
        f"approval {approval_id} denied ({request.subject}); it will not be asked again", highlight=False
    )
