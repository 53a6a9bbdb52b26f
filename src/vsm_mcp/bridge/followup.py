"""What followed a decision about a unit: its server's calls since, against what the decision predicted.

A unit's supervision decisions (restart, hold, stop, quarantine: `fleet.unit.Unit`) and S3's
(park, pre-start: `bridge.allocation`) carry ``inputs["predicted"]``: what the choice expects
(``ready_within_s`` for a restart, ``calls_served: 0`` for a stop or a quarantine,
``calls_within_hour`` for a park or a pre-start). `stamp` adds, when the decision is stored,
the server's tally in the outcome ledger (``server_tally_at_decision``, summed over its demand
categories), so the calls after it can be told from the calls before; `followup` reads it back.

``as_predicted`` is a verdict only where the evidence decides it:

* ``calls_served: 0`` (stop, quarantine): true while no call was served since; false when calls
  were served and no operator acted on the unit since (an operator's restart or approval ends
  the prediction's premise: then it is None);
* ``ready_within_s`` (restart, hold): true once a call succeeded since; false when the next
  decision about the unit stopped it (a crash loop); None while neither happened;
* ``calls_within_hour`` (park, pre-start): once the hour has passed, true when the calls served
  since are on the predicted side of one call (at least one predicted and served, or fewer than
  one predicted and none served); None before the hour is over;
* ``success`` (a routing choice, `bridge.routing`, which stamps its own tool's ledger key as
  ``outcome_key`` and ``tally_at_decision``): after `MIN_CALLS` calls, true when the observed
  share of successes is within `CONTRADICTION` of the predicted one.

Invariants: derived from stored data only (the decision, the ledger, the next decision about
the same subject, the audit log); a decision without a stamp has no follow-up (None).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from vsm_mcp.core.messages import Decision
from vsm_mcp.core.ports import Store
from vsm_mcp.discovery.outcomes import TOOL_KEY_PREFIX, OutcomeLedger

#: Calls a predicted success needs before its outcome can contradict it (here and in `reflection`).
MIN_CALLS = 10
#: How far the observed share of successes must be from the predicted one to contradict it.
CONTRADICTION = 0.3
#: The horizon over which a park's or pre-start's call forecast is checked.
FORECAST_HORIZON_S = 3600.0
#: Audit-log entries read for an operator's action on the unit after a decision.
ACTIONS_READ = 500


def server_tally(ledger: OutcomeLedger, server: str) -> tuple[int, int]:
    """Successes and failures of ``server`` over all its demand categories (each call is also
    counted under its tool's own key, ``tool:...``, which is left out here)."""
    successes = failures = 0
    for (name, category), tally in ledger.tallies.items():
        if name == server and not category.startswith(TOOL_KEY_PREFIX):
            successes += tally.successes
            failures += tally.failures
    return successes, failures


def stamp(decision: Decision, ledger: OutcomeLedger, server: str) -> Decision:
    """``decision`` with ``server``'s tally now, so the calls after it can be counted apart."""
    successes, failures = server_tally(ledger, server)
    return replace(
        decision,
        inputs={
            **decision.inputs,
            "outcome_server": server,
            "server_tally_at_decision": [successes, failures],
        },
    )


async def followup(
    decision: Decision, ledger: OutcomeLedger, store: Store, *, now: float | None = None
) -> dict[str, Any] | None:
    """What followed a stamped decision (module docstring); None for an unstamped one."""
    inputs = decision.inputs
    key = inputs.get("outcome_key")
    predicted = inputs.get("predicted")
    predicted = predicted if isinstance(predicted, dict) else {}
    if (
        isinstance(key, list)
        and len(key) == 2
        and isinstance(p := inputs.get("predicted_success"), int | float)
    ):
        before = inputs.get("tally_at_decision")
        tally = ledger.tallies.get((str(key[0]), str(key[1])))
        s_now, f_now = (tally.successes, tally.failures) if tally is not None else (0, 0)
        predicted = {"success": p}
    else:
        server, before = inputs.get("outcome_server"), inputs.get("server_tally_at_decision")
        if not isinstance(server, str):
            return None
        s_now, f_now = server_tally(ledger, server)
    if not isinstance(before, list) or len(before) != 2 or decision.id is None:
        return None
    now = time.time() if now is None else now
    successes, failures = max(s_now - int(before[0]), 0), max(f_now - int(before[1]), 0)
    calls = successes + failures
    following = await store.next_decision(decision.subject, decision.id)
    out: dict[str, Any] = {
        "predicted": predicted,
        "calls_since": calls,
        "successes": successes,
        "failures": failures,
        "observed_success": successes / calls if calls else None,
        "age_s": round(max(now - decision.at, 0.0), 3),
        "next": None
        if following is None
        else {
            "id": following.id,
            "choice": following.choice,
            "after_s": round(following.at - decision.at, 3),
        },
    }
    if predicted.get("calls_served") == 0:
        acted = calls > 0 and await _operator_acted(store, decision)
        out["as_predicted"] = True if calls == 0 else (None if acted else False)
    elif "ready_within_s" in predicted:
        stopped = following is not None and following.choice == "stop"
        out["as_predicted"] = True if successes else (False if stopped else None)
    elif isinstance(success := predicted.get("success"), int | float):
        out["as_predicted"] = None if calls < MIN_CALLS else abs(successes / calls - success) < CONTRADICTION
    elif isinstance(expected := predicted.get("calls_within_hour"), int | float):
        if now - decision.at < FORECAST_HORIZON_S:
            out["as_predicted"] = None
        else:
            out["as_predicted"] = (expected >= 1.0) == (calls >= 1)
    return out


async def _operator_acted(store: Store, decision: Decision) -> bool:
    """Whether the audit log has an operator's action on the decision's unit after it."""
    actions = await store.actions(ACTIONS_READ)
    return any(a.at >= decision.at and a.target == decision.subject and a.ok for a in actions)
