"""Questions S5 keeps for an operator: an acquisition vetting says ``ask`` about, when nobody can answer.

The autonomous loop, and a client that cannot be asked (no elicitation, or a
token without ``approve``), meet vetting's ``ask`` with nobody to answer.
`QueuedApprover` then keeps the question in the store (`ApprovalRequest`,
kind `ACQUISITION`) with everything needed to decide and to act: the plan
(candidate, alternatives with scores, query, demand category, unit name) and
the verdict (rule, rationale, notes). ``vsm-mcp approvals`` lists them;
``approve ID`` runs that plan with the operator's answer, ``deny ID`` refuses
it (the answer and what came of it are kept on the request and as S5
decisions). Invariants:

* one pending request per candidate (``acquire:<registry>:<name>@<version>``):
  asking again while one waits returns the waiting one;
* a candidate an operator denied is refused from then on, without asking
  again (the denial names who gave it and when); ``vsm-mcp acquire --package``
  remains the way to take it anyway;
* an answer is given once: settling is compare-and-set on the stored status,
  so two operators cannot both act on one request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vsm_mcp.acquisition.pipeline import (
    SUBJECT_PREFIX,
    Acquirer,
    AcquisitionPlan,
    Answer,
    Approver,
    FixedAnswer,
    StepProgress,
)
from vsm_mcp.acquisition.vetting import Candidate, Verdict
from vsm_mcp.core.messages import ApprovalRequest, ApprovalStatus, Decision
from vsm_mcp.core.ports import Store
from vsm_mcp.errors import ConfigError, VsmError

#: The kind of request this module keeps.
ACQUISITION = "acquisition"


def candidate_record(candidate: Candidate) -> dict[str, Any]:
    """A candidate as kept in a request (everything `candidate_of` needs)."""
    return {
        "server": candidate.server,
        "registry_type": candidate.registry_type,
        "identifier": candidate.identifier,
        "version": candidate.version,
        "score": candidate.score,
        "reasons": list(candidate.reasons),
        "in_catalog": candidate.in_catalog,
    }


def candidate_of(record: Any) -> Candidate:
    """The candidate a request keeps.

    Raises:
        ConfigError: the record is not a candidate's.
    """
    try:
        return Candidate(
            server=str(record["server"]),
            registry_type=str(record["registry_type"]),
            identifier=str(record["identifier"]),
            version=str(record["version"]),
            score=float(record.get("score", 0.0)),
            reasons=tuple(str(r) for r in record.get("reasons", ())),
            in_catalog=bool(record.get("in_catalog", False)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"the stored request does not hold a candidate ({exc})") from None


def request_of(plan: AcquisitionPlan, verdict: Verdict) -> dict[str, Any]:
    """What an acquisition request keeps: the plan and the verdict."""
    return {
        "candidate": candidate_record(plan.candidate),
        "alternatives": [candidate_record(a) for a in plan.alternatives],
        "unit": plan.unit,
        "query": plan.query,
        "category": plan.category,
        "verdict": {"rule": verdict.rule, "rationale": verdict.rationale, "notes": list(verdict.notes)},
    }


def plan_of(request: ApprovalRequest, servers_dir: Path) -> AcquisitionPlan:
    """The plan an acquisition request was asked about (its unit installed under ``servers_dir``).

    Raises:
        ConfigError: not an acquisition request, or its record is malformed.
    """
    if request.kind != ACQUISITION:
        raise ConfigError(f"approval {request.id} is a {request.kind} request, not an acquisition")
    data = request.request
    unit = data.get("unit")
    if not isinstance(unit, str) or not unit or "/" in unit:
        raise ConfigError(f"approval {request.id} names no unit")
    return AcquisitionPlan(
        candidate=candidate_of(data.get("candidate")),
        unit=unit,
        prefix=servers_dir / unit,
        query=str(data.get("query", "")),
        category=str(data.get("category", "")),
        alternatives=tuple(candidate_of(a) for a in data.get("alternatives", ())),
    )


def question_of(plan: AcquisitionPlan, verdict: Verdict) -> str:
    """The one line an operator is asked."""
    return (
        f"Install {plan.candidate.ref} as server {plan.unit!r} for {plan.query or plan.category!r}? "
        f"{verdict.rationale}"
    )


class QueuedApprover:
    """An `Approver` that keeps the question for an operator when ``inner`` has nobody to ask."""

    def __init__(self, inner: Approver, store: Store, wall_clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.store = store
        self._wall_clock = wall_clock

    async def approve(self, plan: AcquisitionPlan, verdict: Verdict) -> Answer:
        subject = SUBJECT_PREFIX + plan.candidate.ref
        for earlier in await self.store.approvals(subject=subject, limit=20):
            if earlier.status is ApprovalStatus.DENIED:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(earlier.decided_at or earlier.asked_at))
                by = f"{earlier.decided_by or 'an operator'} (approval {earlier.id}, denied {when})"
                return Answer(False, by=by, shown=earlier.question)
        given = await self.inner.approve(plan, verdict)
        answer = given if isinstance(given, Answer) else Answer(given)
        if answer.approved is not None:
            return answer
        question = question_of(plan, verdict)
        approval_id, _ = await self.store.ask_approval(
            ApprovalRequest(ACQUISITION, subject, self._wall_clock(), question, request_of(plan, verdict))
        )
        waiting = f"kept for an operator as approval {approval_id}: `vsm-mcp approvals approve {approval_id}`"
        why = f"{answer.why_not}; {waiting}" if answer.why_not else waiting
        return Answer(None, by=answer.by, shown=question, why_not=why)


async def pending(store: Store, approval_id: int) -> ApprovalRequest:
    """Request ``approval_id``, which must still wait for an answer.

    Raises:
        ConfigError: there is none, or it was answered already (by whom, when, with what result).
    """
    request = await store.approval(approval_id)
    if request is None:
        raise ConfigError(f"no approval {approval_id} (see `vsm-mcp approvals list`)")
    if request.status is not ApprovalStatus.PENDING:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(request.decided_at or request.asked_at))
        tail = f": {request.outcome}" if request.outcome else ""
        raise ConfigError(
            f"approval {approval_id} is {request.status.value} (by {request.decided_by or 'nobody'}, {when}){tail}"
        )
    return request


async def approve(
    store: Store,
    acquirer: Acquirer,
    approval_id: int,
    *,
    by: str,
    progress: StepProgress | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> str:
    """Answer yes to acquisition request ``approval_id`` and act on it; returns what came of it.

    The unit name is chosen again (one may have been taken since the question); a candidate
    installed meanwhile is not installed twice. The request ends ``done`` or ``failed``.

    Raises:
        ConfigError: no such pending request, or someone answered it meanwhile.
        AcquisitionError: the acquisition failed (rolled back; the request is ``failed``).
    """
    request = await pending(store, approval_id)
    stored = plan_of(request, acquirer.servers_dir)
    if not await store.settle_approval(
        approval_id, expect=ApprovalStatus.PENDING, status=ApprovalStatus.APPROVED, at=wall_clock(), by=by
    ):
        raise ConfigError(f"approval {approval_id} was answered meanwhile (see `vsm-mcp approvals show`)")
    existing = await acquirer.installed_unit(stored.candidate)
    if existing is not None:
        outcome = f"{stored.candidate.ref} was installed meanwhile as server {existing!r}"
        await _settle(store, approval_id, ApprovalStatus.DONE, outcome, wall_clock)
        return outcome
    try:
        plan = await acquirer.plan(
            [stored.candidate, *stored.alternatives], query=stored.query, category=stored.category
        )
        acquired = await acquirer.acquire(plan, progress=progress, approver=FixedAnswer(True, by=by))
    except VsmError as exc:
        await _settle(store, approval_id, ApprovalStatus.FAILED, str(exc), wall_clock)
        raise
    outcome = (
        f"{plan.candidate.ref} runs as server {plan.unit!r} with {len(acquired.verification.tools)} tools"
    )
    await _settle(store, approval_id, ApprovalStatus.DONE, outcome, wall_clock)
    return outcome


async def deny(
    store: Store, approval_id: int, *, by: str, reason: str = "", wall_clock: Callable[[], float] = time.time
) -> ApprovalRequest:
    """Answer no to request ``approval_id``; S5 stores the refusal. Returns the request as it was.

    Raises:
        ConfigError: no such pending request, or someone answered it meanwhile.
    """
    request = await pending(store, approval_id)
    now = wall_clock()
    outcome = f"denied: {reason}" if reason else "denied"
    if not await store.settle_approval(
        approval_id,
        expect=ApprovalStatus.PENDING,
        status=ApprovalStatus.DENIED,
        at=now,
        by=by,
        outcome=outcome,
    ):
        raise ConfigError(f"approval {approval_id} was answered meanwhile (see `vsm-mcp approvals show`)")
    await store.record_decision(
        Decision(
            at=now,
            system="s5",
            subject=request.subject,
            choice="refuse",
            rule="operator",
            rationale=f"{by} denied approval {approval_id}" + (f": {reason}" if reason else ""),
            inputs={"approval": approval_id, "question": request.question, "answered_by": by},
        )
    )
    return request


async def _settle(
    store: Store, approval_id: int, status: ApprovalStatus, outcome: str, wall_clock: Callable[[], float]
) -> None:
    await store.settle_approval(
        approval_id, expect=ApprovalStatus.APPROVED, status=status, at=wall_clock(), outcome=outcome
    )
