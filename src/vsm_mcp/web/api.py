"""The operator's API under ``/api`` and the page at ``/``, served by the gateway's HTTP face.

Every read is what the running system computes or stored (`Gateway.status`,
S4's reading, the store's records); every change goes through the same code
as the command that does it (`acquisition.approvals`, `bridge.acknowledgements`,
`FleetRegistry`) and is recorded with the token's name. Access: `web.auth`.

Routes (scope needed for a change in brackets): ``GET /api/session``,
``/api/status``, ``/api/variety``, ``/api/decisions``, ``/api/alerts``,
``/api/findings``, ``/api/approvals``, ``/api/quarantines``, ``/api/audit``,
``/api/dead-letters``, ``/api/events``
(SSE), ``/metrics`` (Prometheus text); ``POST /api/alerts/{id}/ack`` [approve], ``/api/approvals/{id}/approve``
and ``/deny`` [approve], ``/api/dead-letters/{id}/replay`` [manage],
``/api/servers/{name}/approve-definitions`` [approve],
``/api/servers/{name}/restart`` [manage], ``DELETE /api/servers/{name}``
[manage]; ``POST /login`` and ``/logout``; ``/api/openapi.json``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from vsm_mcp import report
from vsm_mcp.acquisition import approvals
from vsm_mcp.bridge.acknowledgements import acknowledge, alert_rows
from vsm_mcp.core.access import Scope
from vsm_mcp.core.messages import (
    ApprovalRequest,
    ApprovalStatus,
    AuditFinding,
    DeadLetter,
    Decision,
    OperatorAction,
)
from vsm_mcp.core.payload import capped_digest
from vsm_mcp.errors import UnitError, UnknownUnitError, VsmError
from vsm_mcp.fleet import definitions
from vsm_mcp.runtime import Runtime
from vsm_mcp.web.auth import SESSION_COOKIE, SESSION_TTL_S, Caller, WebSessions, require
from vsm_mcp.web.models import (
    ActionOut,
    ApprovalFilter,
    ApproveDefinitionsIn,
    DenyIn,
    FieldChange,
    LoginIn,
    QuarantineOut,
    SessionOut,
    StatusOut,
    VarietyOut,
)

#: Hours of stored demand the variety chart shows.
HISTORY_HOURS = 48
#: An idle event stream sends a comment this often (a dead connection shows at the next one).
HEARTBEAT_S = 15.0
#: A replayed call waits this long for its server to start.
REPLAY_START_TIMEOUT_S = 30.0
STATIC = resources.files("vsm_mcp.web") / "static"
#: The content type of the Prometheus text format.
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


async def _caller(request: Request) -> Caller:
    sessions: WebSessions = request.app.state.sessions
    return await sessions.caller(request)


#: The verified caller of a route (`web.auth`).
Who = Annotated[Caller, Depends(_caller)]


def build_app(runtime: Runtime, sessions: WebSessions, *, secure_cookie: bool = False) -> FastAPI:
    """The API and the page for ``runtime`` (module docstring); ``sessions`` over its keyring."""
    app = FastAPI(
        title="VSM-MCP operator API",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.sessions = sessions
    boot = f"{int(runtime.gateway.started_at * 1000):x}"

    def reads(who: Caller, request: Request) -> None:
        require(who, request, None, f"{request.method} {request.url.path}")

    # -- session -------------------------------------------------------------
    @app.post("/login", response_model=SessionOut)
    async def login(request: Request) -> Response:
        """Log in with a token (form field or JSON ``token``): a session cookie for this browser."""
        body = await request.body()
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        try:
            if kind == "application/x-www-form-urlencoded":
                form = parse_qs(body.decode("utf-8", "replace"))
                data = LoginIn(token=(form.get("token") or [""])[0])
            else:
                data = LoginIn.model_validate_json(body or b"{}")
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False, include_input=False)}, 422)
        sid, session, principal = await sessions.open(data.token)
        out = SessionOut(
            name=principal.name, scopes=sorted(s.value for s in principal.scopes), csrf=session.csrf
        )
        response = JSONResponse(out.model_dump())
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            max_age=int(SESSION_TTL_S),
            httponly=True,
            samesite="strict",
            secure=secure_cookie,
            path="/",
        )
        return response

    @app.post("/logout", response_model=ActionOut)
    async def logout(request: Request) -> Response:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            sessions.close(sid)
        response = JSONResponse(ActionOut(ok=True, detail="logged out").model_dump())
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/api/session", response_model=SessionOut)
    async def session(who: Who, request: Request) -> SessionOut:
        reads(who, request)
        return SessionOut(
            name=who.principal.name,
            scopes=sorted(s.value for s in who.principal.scopes),
            csrf=who.session.csrf if who.session is not None else None,
        )

    # -- reads -----------------------------------------------------------------
    @app.get("/api/status", response_model=StatusOut)
    async def status(who: Who, request: Request) -> dict[str, Any]:
        """The gateway, each unit as the fleet measures it, and the recursive VSM status."""
        reads(who, request)
        doc = runtime.gateway.status()
        vsm = dict(doc.get("vsm") or runtime.system.status().to_dict())
        demand = vsm.pop("demand", {"matched": 0, "unmatched": 0})
        s1 = runtime.system.s1
        known = set(s1.units)
        for row in doc["units"]:  # S1's latency quantiles (from its histogram) beside the fleet's counts
            stats = s1.unit_stats(row["name"]) if row["name"] in known else None
            row["p50_ms"] = stats.p50_ms if stats else None
            row["p99_ms"] = stats.p99_ms if stats else None
            pin = await definitions.load(runtime.store, row["name"])
            row["pinned_tools"] = len(pin.tools) if pin is not None else None
            row["pinned_by"] = pin.by if pin is not None else None
        return {
            "at": time.time(),
            "gateway": doc["gateway"],
            "units": doc["units"],
            "vsm": vsm,
            "demand": demand,
        }

    @app.get("/api/variety", response_model=VarietyOut)
    async def variety(who: Who, request: Request) -> dict[str, Any]:
        """S4's reading now, its detector and thresholds, and the stored hours as variety."""
        reads(who, request)
        now = runtime.gateway.variety()
        settings = runtime.settings.variety
        return {
            "now": {k: v for k, v in now.items() if k not in {"detector", "unmatched_categories"}},
            "detector": str(now.get("detector", "")),
            "gap_upper": settings.gap_upper,
            "gap_lower": settings.gap_lower,
            "unmatched_categories": now.get("unmatched_categories", {}),
            "history": await report.variety_history(runtime.store, hours=HISTORY_HOURS),
        }

    @app.get("/api/decisions", response_model=list[Decision])
    async def decisions(who: Who, request: Request, limit: int = Query(50, ge=1, le=1000)) -> list[Decision]:
        reads(who, request)
        return await runtime.store.decisions(limit)

    @app.get("/api/alerts", response_model=list[dict[str, Any]])
    async def alerts(
        who: Who, request: Request, limit: int = Query(50, ge=1, le=1000)
    ) -> list[dict[str, Any]]:
        """Stored alerts, newest first, each with who acknowledged it (if anyone)."""
        reads(who, request)
        attention = set(runtime.system.s5.attention)
        return [
            {**row, "needs_attention": row["id"] in attention}
            for row in await alert_rows(runtime.store, limit)
        ]

    @app.get("/api/findings", response_model=list[AuditFinding])
    async def findings(
        who: Who, request: Request, limit: int = Query(50, ge=1, le=1000)
    ) -> list[AuditFinding]:
        reads(who, request)
        return await runtime.store.findings(limit)

    @app.get("/api/approvals", response_model=list[ApprovalRequest])
    async def approvals_list(
        who: Who, request: Request, show: ApprovalFilter = "pending", limit: int = Query(50, ge=1, le=1000)
    ) -> list[ApprovalRequest]:
        """Questions S5 keeps for an operator (``show=all``: answered ones too)."""
        reads(who, request)
        status = ApprovalStatus.PENDING if show == "pending" else None
        return await runtime.store.approvals(status=status, limit=limit)

    @app.get("/api/dead-letters", response_model=list[DeadLetter])
    async def dead_letters(who: Who, request: Request, replayed: bool = False) -> list[DeadLetter]:
        reads(who, request)
        return await runtime.store.dead_letters(include_replayed=replayed)

    @app.get("/api/audit", response_model=list[OperatorAction])
    async def audit_log(
        who: Who,
        request: Request,
        limit: int = Query(50, ge=1, le=1000),
        actor: str | None = None,
        action: str | None = None,
    ) -> list[OperatorAction]:
        """The audit log, newest first: who did what, through which face (``vsm-mcp audit``)."""
        reads(who, request)
        return await runtime.store.actions(limit, actor=actor, action=action)

    @app.get("/api/quarantines", response_model=list[QuarantineOut])
    async def quarantines(who: Who, request: Request) -> list[QuarantineOut]:
        """Servers quarantined for changed tool definitions, with each change (field by field)."""
        reads(who, request)
        out: list[QuarantineOut] = []
        for name in sorted(await runtime.registry.desired()):
            pin = await definitions.load(runtime.store, name)
            if pin is None or pin.quarantine is None:
                continue
            q = pin.quarantine
            out.append(
                QuarantineOut(
                    unit=name,
                    reason=q.reason,
                    since=q.at,
                    pinned_at=pin.at,
                    pinned_by=pin.by,
                    changes=[
                        FieldChange(tool=d.tool, field=d.field, old=d.old, new=d.new)
                        for d in definitions.field_diffs(pin.tools, q.tools)
                    ],
                    shown_digest=_digest(q.tools),
                )
            )
        return out

    # -- changes ---------------------------------------------------------------
    @app.post("/api/servers/{name}/approve-definitions", response_model=ActionOut)
    async def approve_definitions(
        name: str, body: ApproveDefinitionsIn, who: Who, request: Request
    ) -> ActionOut:
        """Pin the changed definitions that were shown and lift the quarantine (`vsm-mcp servers approve`)."""
        require(who, request, Scope.APPROVE, f"approving the tool definitions of {name!r}")
        pin = await definitions.load(runtime.store, name)
        if pin is None or pin.quarantine is None:
            raise HTTPException(409, f"{name!r} is not quarantined: nothing to approve")
        shown = pin.quarantine.tools
        if _digest(shown) != body.shown_digest:
            raise HTTPException(
                409, f"{name!r} listed other definitions since they were shown: reload and look again"
            )
        await definitions.trust(runtime.store, name, shown, by=definitions.OPERATOR, now=time.time())
        await _audit(
            runtime, who, "servers.approve_definitions", name, f"{len(shown)} tool definitions pinned"
        )
        return ActionOut(
            ok=True, detail=f"{len(shown)} tool definitions of {name!r} pinned; quarantine lifted"
        )

    @app.post("/api/alerts/{alert_id}/ack", response_model=ActionOut)
    async def ack(alert_id: int, who: Who, request: Request) -> ActionOut:
        """Acknowledge an alert: S5's attention to it clears within a sampling round."""
        require(who, request, Scope.APPROVE, f"acknowledging alert {alert_id}")
        if not any(a.id == alert_id for a in await runtime.store.alerts(1000)):
            raise HTTPException(404, f"no alert {alert_id}")
        new = await acknowledge(runtime.store, [alert_id], by=_by(who), at=time.time())
        if new:
            await _audit(runtime, who, "alert.ack", str(alert_id))
        return ActionOut(ok=True, detail="acknowledged" if new else "already acknowledged")

    @app.post("/api/approvals/{approval_id}/approve", response_model=ActionOut)
    async def approve(approval_id: int, who: Who, request: Request) -> ActionOut:
        """Approve an acquisition: install, verify and register it now (as `vsm-mcp approvals approve`)."""
        require(who, request, Scope.APPROVE, f"approving approval {approval_id}")
        service = runtime.capabilities.service
        if service is None:
            raise HTTPException(503, "acquisition is not running in this gateway yet; try again in a moment")
        try:
            outcome = await approvals.approve(runtime.store, service.acquirer, approval_id, by=_by(who))
        except VsmError as exc:
            await _audit(runtime, who, "approval.approve", str(approval_id), str(exc), ok=False)
            raise HTTPException(409, str(exc)) from exc
        await _audit(runtime, who, "approval.approve", str(approval_id), outcome)
        return ActionOut(ok=True, detail=outcome)

    @app.post("/api/approvals/{approval_id}/deny", response_model=ActionOut)
    async def deny(approval_id: int, who: Who, request: Request, body: DenyIn | None = None) -> ActionOut:
        require(who, request, Scope.APPROVE, f"denying approval {approval_id}")
        try:
            await approvals.deny(runtime.store, approval_id, by=_by(who), reason=body.reason if body else "")
        except VsmError as exc:
            raise HTTPException(409, str(exc)) from exc
        await _audit(runtime, who, "approval.deny", str(approval_id), body.reason if body else "")
        return ActionOut(ok=True, detail="denied")

    @app.post("/api/dead-letters/{letter_id}/replay", response_model=ActionOut)
    async def replay(letter_id: int, who: Who, request: Request) -> ActionOut:
        """Call a dead-lettered tool call again, as it was made."""
        require(who, request, Scope.MANAGE, f"replaying dead letter {letter_id}")
        letter = next((d for d in await runtime.store.dead_letters() if d.id == letter_id), None)
        if letter is None:
            raise HTTPException(404, f"no waiting dead letter {letter_id}")
        digest = capped_digest(letter.arguments)
        if digest is not None:
            raise HTTPException(
                409, f"its arguments were stored as a digest only ({digest.describe()}): not replayable"
            )
        why = await _replay(runtime, letter)
        await _audit(runtime, who, "dead_letter.replay", str(letter_id), why or "replayed", ok=why is None)
        if why is None:
            await runtime.store.mark_replayed(letter_id, time.time())
            return ActionOut(ok=True, detail="replayed")
        await runtime.store.note_failed_replay(letter_id, why)
        return ActionOut(ok=False, detail=f"failed again: {why}")

    @app.post("/api/servers/{name}/restart", response_model=ActionOut)
    async def restart(name: str, who: Who, request: Request) -> ActionOut:
        require(who, request, Scope.MANAGE, f"restarting server {name!r}")
        try:
            await runtime.registry.request_restart(name)
        except UnknownUnitError as exc:
            raise HTTPException(404, str(exc)) from exc
        await _audit(runtime, who, "servers.restart", name)
        return ActionOut(ok=True, detail=f"restart of {name!r} requested")

    @app.delete("/api/servers/{name}", response_model=ActionOut)
    async def remove(name: str, who: Who, request: Request) -> ActionOut:
        require(who, request, Scope.MANAGE, f"removing server {name!r}")
        try:
            await runtime.registry.remove(name)
        except UnknownUnitError as exc:
            raise HTTPException(404, str(exc)) from exc
        await _audit(runtime, who, "servers.remove", name)
        return ActionOut(ok=True, detail=f"{name!r} removed")

    # -- live --------------------------------------------------------------------
    @app.get("/api/events", response_class=StreamingResponse)
    async def events(who: Who, request: Request) -> StreamingResponse:
        """Notices as server-sent events (``id: BOOT:SEQ``); ``Last-Event-ID`` resumes after one.
        A stream resumed across a gateway restart starts with a ``reset`` event."""
        reads(who, request)
        last = request.headers.get("last-event-id", "")
        last_boot, _, last_seq = last.partition(":")
        after = int(last_seq) if last_boot == boot and last_seq.isdigit() else 0
        reset = bool(last) and last_boot != boot
        if after > runtime.notices.last_seq:
            after, reset = 0, True
        return StreamingResponse(
            _stream(runtime, boot, after, reset=reset),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(who: Who, request: Request) -> PlainTextResponse:
        """The running system in the Prometheus text format (`web.metrics`)."""
        reads(who, request)
        from vsm_mcp.web.metrics import render

        return PlainTextResponse(await render(runtime), media_type=PROMETHEUS_TEXT)

    # -- the page ------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(Path(str(STATIC / "index.html")), headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


#: The page loads only its own scripts and styles, and cannot be framed.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def _audit(
    runtime: Runtime, who: Caller, action: str, target: str, detail: str = "", *, ok: bool = True
) -> None:
    """One change made through the page or the API, to the audit log by its token."""
    via = "page" if who.session is not None else "api"
    await runtime.store.record_action(
        OperatorAction(time.time(), who.principal.label, action, target, via, detail, ok)
    )


def _digest(tools: object) -> str:
    """SHA-256 of definitions as shown (canonical JSON): what an approval refers to."""
    return hashlib.sha256(json.dumps(tools, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _by(who: Caller) -> str:
    return (
        f"token {who.principal.name!r} (operator page)"
        if who.session
        else f"token {who.principal.name!r} (API)"
    )


async def _replay(runtime: Runtime, letter: DeadLetter) -> str | None:
    """Call ``letter``'s tool on its unit in this gateway; None when it answered without an error."""
    fleet = runtime.fleet
    if letter.unit not in fleet.units:
        return f"server {letter.unit!r} is not in the fleet"
    try:
        with anyio.fail_after(REPLAY_START_TIMEOUT_S):
            await fleet.wait_ready(letter.unit)
        result = await fleet.call_unit_tool(letter.unit, letter.tool, dict(letter.arguments))
    except (UnitError, TimeoutError) as exc:
        return str(exc) or f"server {letter.unit!r} did not start within {REPLAY_START_TIMEOUT_S:g} s"
    if result.get("isError"):
        texts = [c.get("text", "") for c in result.get("content", []) if isinstance(c, dict)]
        return "; ".join(t for t in texts if t) or "the tool answered with an error"
    return None


async def _stream(runtime: Runtime, boot: str, after: int, *, reset: bool) -> AsyncIterator[str]:
    yield "retry: 1000\n\n"
    if reset:
        yield f"event: reset\ndata: {json.dumps({'boot': boot})}\n\n"
    notices = runtime.notices
    seen = after
    while True:
        kept, missed = notices.since(seen)
        if missed:
            yield f"event: missed\ndata: {json.dumps({'missed': missed})}\n\n"
        for notice in kept:
            seen = notice.seq
            yield (
                f"id: {boot}:{notice.seq}\nevent: {notice.kind}\n"
                f"data: {json.dumps(notice.as_json(), default=str)}\n\n"
            )
        if kept:
            continue
        with anyio.move_on_after(HEARTBEAT_S) as waited:
            await notices.published_after(seen)
        if waited.cancelled_caught:
            yield ": heartbeat\n\n"
