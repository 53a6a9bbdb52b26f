"""Reflection: how well the system's expectations matched what happened, from stored data only.

Each acquisition stores what it expected (`Acquirer.prediction`): the chance that
a call of the new server for its demand category succeeds, and the outcome
ledger's tally for that (server, category) at the time. What happened since is
the ledger's tally now less that one. From these pairs:

* the **Brier score** over every call since (``sum s (1 - p)^2 + f p^2`` over
  ``sum s + f``; 0 is perfect, 0.25 is a coin toss);
* a **reliability table**: the predictions in `BINS` equal bins of probability,
  each with its calls, mean prediction and observed success share;
* **contradictions**: acquisitions with at least `MIN_CALLS` calls whose observed
  share is `CONTRADICTION` or more away from the prediction;
* **followed**: every other decision that predicted something (a unit's restart,
  hold, stop or quarantine; S3's park or pre-start; S2's routing choice:
  `bridge.followup`), counted per choice as held, contradicted or still open,
  and the contradicted ones listed;
* **suggestions**, each a sentence built from the numbers that support it: remove
  an acquired server that mostly fails, raise the unit budget when S5 keeps
  deferring acquisitions for it, look at a unit whose calls keep drifting or
  whose restarts keep ending in a crash loop, answer the questions waiting for
  an operator.

Nothing here is canned: with no data there is nothing to say, and the report says so.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from vsm_mcp.acquisition.pipeline import SUBJECT_PREFIX
from vsm_mcp.bridge.followup import CONTRADICTION, MIN_CALLS, followup
from vsm_mcp.core.messages import ApprovalStatus, Decision, DemandAggregate
from vsm_mcp.core.ports import Store
from vsm_mcp.core.variety import DEMAND_BUCKET_S
from vsm_mcp.discovery.outcomes import OutcomeLedger

#: Probability bins of the reliability table.
BINS = 5
#: A server whose observed share since its acquisition is below this is suggested for removal.
FAILING_SHARE = 0.5
#: Deferrals (or drifts) in the last day from which a suggestion is made.
REPEATS = 3
#: Decisions and alerts read.
READ = 5000
#: Hours of stored demand after an acquisition read for its "after".
HORIZON_HOURS = 1


@dataclass(frozen=True, slots=True)
class Observation:
    """One prediction and what followed it: successes and failures since."""

    p: float
    successes: int
    failures: int

    @property
    def calls(self) -> int:
        return self.successes + self.failures


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """Predictions in ``[low, high)`` (the last bin includes 1): their calls, mean, observed share."""

    low: float
    high: float
    calls: int
    predicted: float | None
    observed: float | None


def brier(observations: list[Observation]) -> float | None:
    """The Brier score over every call (None without calls)."""
    calls = sum(o.calls for o in observations)
    if not calls:
        return None
    return sum(o.successes * (1.0 - o.p) ** 2 + o.failures * o.p**2 for o in observations) / calls


def reliability(observations: list[Observation], bins: int = BINS) -> list[ReliabilityBin]:
    """The reliability table, calls weighting each prediction."""
    out: list[ReliabilityBin] = []
    for i in range(bins):
        low, high = i / bins, (i + 1) / bins
        inside = [o for o in observations if low <= o.p < high or (i == bins - 1 and o.p == 1.0)]
        calls = sum(o.calls for o in inside)
        out.append(
            ReliabilityBin(
                low,
                high,
                calls,
                sum(o.p * o.calls for o in inside) / calls if calls else None,
                sum(o.successes for o in inside) / calls if calls else None,
            )
        )
    return out


def observed(
    decision: Decision, ledger: OutcomeLedger, demand: list[DemandAggregate]
) -> dict[str, Any] | None:
    """What followed an acquisition decision (None for any other): its server's calls for its
    category since, against the success it predicted, and that category's unanswered share of
    demand in the stored hour before the decision and in the hours after it (the horizon is
    `HORIZON_HOURS`)."""
    pairs = _acquisitions([decision], ledger)
    if not pairs:
        return None
    _, o = pairs[0]
    category = str(decision.inputs["outcome_key"][1])
    start = int(decision.at) // DEMAND_BUCKET_S * DEMAND_BUCKET_S
    before = [
        a for a in demand if a.category == category and start - DEMAND_BUCKET_S <= a.bucket_start <= start
    ]
    after = [
        a
        for a in demand
        if a.category == category and start < a.bucket_start <= start + HORIZON_HOURS * DEMAND_BUCKET_S
    ]

    def unanswered(rows: list[DemandAggregate]) -> float | None:
        asks = sum(a.count for a in rows)
        return round(1.0 - sum(min(a.matched, a.count) for a in rows) / asks, 6) if asks else None

    return {
        "predicted_success": o.p,
        "successes": o.successes,
        "failures": o.failures,
        "observed_success": o.successes / o.calls if o.calls else None,
        "unanswered_share_before": unanswered(before),
        "unanswered_share_after": unanswered(after),
        "horizon_hours": HORIZON_HOURS,
    }


def _acquisitions(decisions: list[Decision], ledger: OutcomeLedger) -> list[tuple[Decision, Observation]]:
    found: list[tuple[Decision, Observation]] = []
    for d in decisions:
        inputs = d.inputs
        p, key, before = (
            inputs.get("predicted_success"),
            inputs.get("outcome_key"),
            inputs.get("tally_at_decision"),
        )
        if (
            d.choice != "acquired"
            or not isinstance(p, int | float)
            or not isinstance(key, list)
            or len(key) != 2
        ):
            continue
        tally = ledger.tallies.get((str(key[0]), str(key[1])))
        s_then, f_then = before if isinstance(before, list) and len(before) == 2 else [0, 0]
        s_now, f_now = (tally.successes, tally.failures) if tally is not None else (0, 0)
        found.append((d, Observation(float(p), max(s_now - int(s_then), 0), max(f_now - int(f_then), 0))))
    return found


async def reflect(store: Store, *, now: float | None = None) -> dict[str, Any]:
    """The reflection report (module docstring), from the store only."""
    now = time.time() if now is None else now
    decisions = await store.decisions(READ)
    ledger = await OutcomeLedger.load(store)
    pairs = _acquisitions(decisions, ledger)
    observations = [o for _, o in pairs]
    score = brier(observations)
    acquisitions = [
        {
            "decision": d.id,
            "at": d.at,
            "unit": d.inputs.get("unit"),
            "server": d.inputs["outcome_key"][0],
            "category": d.inputs["outcome_key"][1],
            "predicted_success": o.p,
            "successes": o.successes,
            "failures": o.failures,
            "observed_success": o.successes / o.calls if o.calls else None,
        }
        for d, o in pairs
    ]
    contradictions = [
        a
        for a in acquisitions
        if a["observed_success"] is not None
        and a["successes"] + a["failures"] >= MIN_CALLS
        and abs(a["observed_success"] - a["predicted_success"]) >= CONTRADICTION
    ]
    followed = await _followed(store, decisions, ledger, now)
    return {
        "at": now,
        "acquisitions": acquisitions,
        "calls_observed": sum(o.calls for o in observations),
        "brier": None if score is None else round(score, 6),
        "reliability": [asdict(b) for b in reliability(observations)],
        "contradictions": contradictions,
        "followed": followed,
        "suggestions": await _suggestions(store, decisions, acquisitions, followed, now),
    }


async def _followed(
    store: Store, decisions: list[Decision], ledger: OutcomeLedger, now: float
) -> dict[str, Any]:
    """Every decision with a follow-up (`bridge.followup`), per choice: held, contradicted, open."""
    by_choice: dict[str, dict[str, int]] = {}
    contradicted: list[dict[str, Any]] = []
    for d in decisions:
        if d.choice == "acquired":
            continue  # calibrated above
        followed = await followup(d, ledger, store, now=now)
        if followed is None:
            continue
        counts = by_choice.setdefault(d.choice, {"decisions": 0, "held": 0, "contradicted": 0, "open": 0})
        counts["decisions"] += 1
        verdict = followed.get("as_predicted")
        counts["held" if verdict is True else "contradicted" if verdict is False else "open"] += 1
        if verdict is False:
            contradicted.append(
                {
                    "decision": d.id,
                    "at": d.at,
                    "system": d.system,
                    "subject": d.subject,
                    "choice": d.choice,
                    "predicted": followed["predicted"],
                    "calls_since": followed["calls_since"],
                    "successes": followed["successes"],
                    "next": followed["next"],
                }
            )
    return {"by_choice": dict(sorted(by_choice.items())), "contradicted": contradicted}


async def _suggestions(
    store: Store,
    decisions: list[Decision],
    acquisitions: list[dict[str, Any]],
    followed: dict[str, Any],
    now: float,
) -> list[str]:
    out: list[str] = []
    for a in acquisitions:
        calls = a["successes"] + a["failures"]
        if calls >= MIN_CALLS and a["observed_success"] is not None and a["observed_success"] < FAILING_SHARE:
            out.append(
                f"remove or replace {a['unit']}: {a['successes']} of {calls} calls succeeded since it was "
                f"acquired as {a['server']} for {a['category']!r} (decision {a['decision']}), against "
                f"{a['predicted_success']:.0%} expected"
            )
    day = now - 86_400.0
    proposals = [d for d in decisions if d.at >= day and d.system == "s5" and d.subject == "variety_gap"]
    deferred = [d for d in proposals if d.choice == "defer"]
    if len(deferred) >= REPEATS:
        budget = deferred[0].inputs.get("s3") or {}
        out.append(
            f"raise [budget] max_units (now {budget.get('max_units')}): S5 deferred {len(deferred)} of "
            f"{len(proposals)} acquisitions in the last day because S3 was over budget with nothing idle to park"
        )
    drifts = Counter(a.source for a in await store.alerts(READ) if a.kind == "drift" and a.last_at >= day)
    for source, count in sorted(drifts.items()):
        if count >= REPEATS:
            out.append(
                f"look at {source.removeprefix('unit:')}: S1 found its calls drifting {count} times in the last day"
            )
    failed_restarts = Counter(
        c["subject"]
        for c in followed["contradicted"]
        if c["at"] >= day and c["choice"] in ("restart", "hold")
    )
    for unit, count in sorted(failed_restarts.items()):
        if count >= REPEATS:
            out.append(
                f"look at {unit} (vsm-mcp servers logs {unit}): {count} of its restarts in the last day "
                "ended in a crash loop instead of serving again"
            )
    waiting = await store.approvals(status=ApprovalStatus.PENDING, limit=READ)
    if waiting:
        oldest = min(a.asked_at for a in waiting)
        out.append(
            f"answer the {len(waiting)} question{'s' if len(waiting) > 1 else ''} waiting for an operator "
            f"(`vsm-mcp approvals list`; the oldest has waited {(now - oldest) / 3600:.1f} h)"
        )
    refused = [
        d
        for d in decisions
        if d.at >= day and d.subject.startswith(SUBJECT_PREFIX) and d.choice == "rolled_back"
    ]
    if len(refused) >= REPEATS:
        out.append(
            f"{len(refused)} acquisitions were rolled back in the last day: see `vsm-mcp decisions list --system s5`"
        )
    return out


def summary(report: dict[str, Any]) -> str:
    """One paragraph of a report, every figure from it (the rationale of S5's periodic decision)."""
    parts = [
        f"{len(report['acquisitions'])} acquisitions, {report['calls_observed']} calls observed since",
        "no calls to calibrate on" if report["brier"] is None else f"Brier score {report['brier']:.4f}",
        f"{len(report['contradictions'])} contradicted their prediction",
    ]
    by_choice = report["followed"]["by_choice"]
    if by_choice:
        parts.append(
            "other decisions: "
            + ", ".join(
                f"{c['decisions']} {choice} ({c['held']} held, {c['contradicted']} contradicted, {c['open']} open)"
                for choice, c in by_choice.items()
            )
        )
    suggestions = report["suggestions"]
    text = "; ".join(parts)
    return text + (f"; suggestions: {' / '.join(suggestions)}" if suggestions else "; no suggestions")


async def record_reflection(store: Store, *, now: float | None = None) -> int:
    """Compute the reflection now and store it as S5's decision ``reflection`` (its report in the inputs)."""
    report = await reflect(store, now=now)
    return await store.record_decision(
        Decision(
            at=report["at"],
            system="s5",
            subject="reflection",
            choice="report",
            rule="periodic reflection",
            rationale=summary(report),
            inputs=report,
        )
    )


class DecisionRecords:
    """Stored decisions as documents, each acquisition with what followed it (`observed`), each
    stamped decision about a unit too (`bridge.followup`): the
    gateway's ``vsm://decisions`` and ``vsm://decisions/{id}``. ``ledger`` gives the live ledger."""

    def __init__(self, store: Store, ledger: Callable[[], OutcomeLedger]) -> None:
        self.store = store
        self.ledger = ledger

    async def _documents(self, decisions: list[Decision]) -> list[dict[str, Any]]:
        oldest = min((d.at for d in decisions), default=0.0)
        demand = await self.store.demand_since(
            int(oldest) // DEMAND_BUCKET_S * DEMAND_BUCKET_S - DEMAND_BUCKET_S
        )
        ledger = self.ledger()
        out = []
        for d in decisions:
            document = asdict(d)
            followed = observed(d, ledger, demand) or await followup(d, ledger, self.store)
            if followed is not None:
                document["observed"] = followed
            out.append(document)
        return out

    async def decisions(self, limit: int = 100) -> list[dict[str, Any]]:
        """The ``limit`` latest decisions, newest first."""
        return await self._documents(await self.store.decisions(limit))

    async def decision(self, decision_id: int) -> dict[str, Any] | None:
        """One decision by number, None when there is none."""
        found = await self.store.decision(decision_id)
        return None if found is None else (await self._documents([found]))[0]
