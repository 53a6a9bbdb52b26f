"""The system's account of itself, computed: what it can do, what it cannot, its limits, its health,
its recent changes (`self_model`), and the same in a few hundred words for a client's model (`brief`).

Every field is read from a running part or the store at the moment it is asked:

* **can**: each routed tool's demand category with the unit that serves it, the calls S1
  counted, and a confidence: the outcome ledger's posterior mean of success for that
  (server, category) (the Beta prior alone when nothing was observed, marked so); and each
  of its tools with a record of its own, with the weight that record gives it in routing
  (`bridge.routing`);
* **cannot**: the categories in S4's window that nothing answers (with their counts), and the
  acquisitions S5 or the pipeline refused or rolled back, with the rule and why;
* **limits**: S3's budget against what runs, the sandbox policy, installs left this hour
  (the policy's hourly limit less the acquisitions of the last hour), and whether S5 may
  approve acquisitions by itself;
* **health**: each system's state word, units failed or quarantined, alerts waiting for an
  operator, drifts S1 found;
* **recent**: the latest operator actions (the audit log) and decisions.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from vsm_mcp.acquisition.pipeline import SUBJECT_PREFIX
from vsm_mcp.core.ports import Store
from vsm_mcp.discovery.outcomes import OutcomeLedger, tool_key
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.routing import Route
from vsm_mcp.vsm.status import SYSTEMS
from vsm_mcp.vsm.viable import ViableSystem

#: Unanswered categories, refused acquisitions, operator actions and decisions shown at most.
SHOWN = 10
#: Decisions read to find the refused acquisitions and the installs of the last hour.
DECISIONS_READ = 500


@dataclass(frozen=True, slots=True)
class Limits:
    """The policy numbers the self-model reports (from the settings)."""

    sandbox_mode: str
    sandbox_network: bool
    max_installs_per_hour: int
    auto_approve: bool


async def self_model(
    system: ViableSystem,
    fleet: Fleet,
    store: Store,
    ledger: OutcomeLedger,
    limits: Limits,
    *,
    catalog_names: dict[str, str] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The self-model now (module docstring)."""
    now = time.time() if now is None else now
    names = catalog_names or {}
    decisions = await store.decisions(DECISIONS_READ)
    return {
        "at": now,
        "name": system.name,
        "can": _can(system, fleet, ledger, names),
        "cannot": _cannot(system, decisions),
        "limits": _limits(system, limits, decisions, now),
        "health": _health(system),
        "recent": {
            "operator_actions": [
                {"at": a.at, "actor": a.actor, "action": a.action, "target": a.target, "ok": a.ok}
                for a in await store.actions(SHOWN)
            ],
            "decisions": [
                {"id": d.id, "at": d.at, "system": d.system, "subject": d.subject, "choice": d.choice}
                for d in decisions[:SHOWN]
            ],
        },
    }


def _can(
    system: ViableSystem, fleet: Fleet, ledger: OutcomeLedger, names: dict[str, str]
) -> list[dict[str, Any]]:
    by_category: dict[tuple[str, str], list[Route]] = defaultdict(list)
    for route in fleet.routes.tools.values():
        unit = fleet.units.get(route.unit)
        category = unit.spec.category if unit is not None and unit.spec.category else route.public
        by_category[(category, route.unit)].append(route)
    s1 = system.s1
    known = set(s1.units)
    out: list[dict[str, Any]] = []
    for (category, unit_name), routes in sorted(by_category.items()):
        unit = fleet.units.get(unit_name)
        server = names.get(unit_name, unit_name)
        tally = ledger.tallies.get((server, category))
        stats = s1.tool_stats(unit_name) if unit_name in known else {}
        out.append(
            {
                "category": category,
                "unit": unit_name,
                "state": unit.state.value if unit is not None else "gone",
                "tools": sorted(r.public for r in routes),
                "calls": sum(stats[r.name].calls for r in routes if r.name in stats),
                "observed": None
                if tally is None
                else {"successes": tally.successes, "failures": tally.failures},
                "confidence": round(ledger.posterior_mean(server, category), 4),
                "confidence_from": "prior only" if tally is None else "observed outcomes",
                "tool_records": _tool_records(ledger, server, routes),
            }
        )
    out.sort(key=lambda c: (-c["confidence"], c["category"]))
    return out


def _tool_records(ledger: OutcomeLedger, server: str, routes: list[Route]) -> list[dict[str, Any]]:
    """The learned record of each of ``routes`` that has one: what routing weighs it by."""
    out: list[dict[str, Any]] = []
    for route in sorted(routes, key=lambda r: r.public):
        key = (server, tool_key(route.name))
        tally = ledger.tallies.get(key)
        if tally is not None:
            out.append(
                {
                    "tool": route.public,
                    "successes": tally.successes,
                    "failures": tally.failures,
                    "reliability": round(ledger.boost(*key), 4),
                }
            )
    return out


def _cannot(system: ViableSystem, decisions: list[Any]) -> dict[str, Any]:
    profile = system.s4.window.profile()
    unmet = sorted(
        ((c, n) for c, n in profile.counts.items() if not profile.capacity.get(c)),
        key=lambda kv: (-kv[1], kv[0]),
    )
    refused = [
        {"id": d.id, "at": d.at, "subject": d.subject, "choice": d.choice, "rule": d.rule, "why": d.rationale}
        for d in decisions
        if d.subject.startswith(SUBJECT_PREFIX) and d.choice in {"refuse", "rolled_back"}
    ]
    return {
        "unanswered_demand": [{"category": c, "asks": n} for c, n in unmet[:SHOWN]],
        "refused_acquisitions": refused[:SHOWN],
    }


def _limits(system: ViableSystem, limits: Limits, decisions: list[Any], now: float) -> dict[str, Any]:
    report = system.s3.report()
    installs = sum(
        1
        for d in decisions
        if d.at >= now - 3600.0
        and d.subject.startswith(SUBJECT_PREFIX)
        and d.choice in {"acquired", "rolled_back"}
    )
    return {
        "units_running": report.running_units,
        "max_units": report.max_units,
        "rss_bytes": report.rss_bytes,
        "max_rss_bytes": report.max_rss_bytes,
        "over_budget": report.over_budget,
        "sandbox": {"mode": limits.sandbox_mode, "network": limits.sandbox_network},
        "installs_this_hour": installs,
        "installs_left_this_hour": max(limits.max_installs_per_hour - installs, 0),
        "acquisitions_need_an_operator": not limits.auto_approve,
    }


def _health(system: ViableSystem) -> dict[str, Any]:
    status = system.status()
    report = system.s3.report()
    return {
        "systems": {name: getattr(status, name).state for name in SYSTEMS},
        "failed_units": list(report.failed_units),
        "quarantined_units": list(report.quarantined_units),
        "alerts_waiting_for_an_operator": len(system.s5.attention),
        "drifts_found": system.s1.drifts,
    }


def brief(model: dict[str, Any]) -> str:
    """The self-model in a few hundred words, for a client's model (the ``vsm_self_brief`` prompt)."""
    lines = [
        f"{model['name']}: what this MCP gateway can and cannot do now, computed from its running parts."
    ]
    can = model["can"]
    if can:
        lines.append("Can do (confidence = observed success rate with a prior):")
        for c in can[:SHOWN]:
            seen = c["observed"]
            evidence = (
                f"{seen['successes']} of {seen['successes'] + seen['failures']} calls succeeded"
                if seen
                else "no calls observed yet"
            )
            lines.append(
                f"- {c['category']} via {', '.join(c['tools'][:3])} (unit {c['unit']}, {c['state']}): "
                f"confidence {c['confidence']:.2f}, {evidence}"
            )
        if len(can) > SHOWN:
            lines.append(f"- and {len(can) - SHOWN} more categories")
    else:
        lines.append("Can do: nothing yet (no server is routed).")
    cannot = model["cannot"]
    if cannot["unanswered_demand"]:
        asked = ", ".join(f"{u['category']} ({u['asks']} asks)" for u in cannot["unanswered_demand"])
        lines.append(f"Asked for but cannot do: {asked}.")
    lines.extend(
        f"Refused to acquire {r['subject'].removeprefix(SUBJECT_PREFIX)}: {r['rule']}."
        for r in cannot["refused_acquisitions"][:3]
    )
    lim = model["limits"]
    budget = f"{lim['units_running']} servers running" + (
        f" of {lim['max_units']}" if lim["max_units"] else ""
    )
    lines.append(
        f"Limits: {budget}; sandbox {lim['sandbox']['mode']}"
        f"{', network egress only' if lim['sandbox']['network'] else ', no network'}; "
        f"{lim['installs_left_this_hour']} installs left this hour; "
        + (
            "acquisitions need an operator's approval."
            if lim["acquisitions_need_an_operator"]
            else "S5 approves vetted acquisitions."
        )
    )
    health = model["health"]
    troubled = [f"{name} {state}" for name, state in health["systems"].items() if state not in {"ok", "idle"}]
    lines.append(
        "Health: "
        + (", ".join(troubled) if troubled else "every system ok or idle")
        + (f"; failed: {', '.join(health['failed_units'])}" if health["failed_units"] else "")
        + (f"; quarantined: {', '.join(health['quarantined_units'])}" if health["quarantined_units"] else "")
        + (
            f"; {health['alerts_waiting_for_an_operator']} alerts wait for an operator"
            if health["alerts_waiting_for_an_operator"]
            else ""
        )
        + "."
    )
    lines.append(
        "To find a tool: vsm_search_tools. To ask for a missing capability: vsm_acquire_capability "
        "(policy may ask a person first)."
    )
    return "\n".join(lines)
