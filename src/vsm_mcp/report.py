"""Readings of the stored state for `vsm-mcp status` and `vsm-mcp variety`.

These work whether or not a gateway is running: they read the `Store` (the
same SQLite file a running gateway writes, in WAL mode, so reading does not
block it). The variety reading is computed from the stored demand aggregates (S4
writes them per `DEMAND_BUCKET_S` bucket) of every bucket that overlaps the
last ``max_age_s`` seconds against the stored capabilities,
with the same from-scratch definition as the live window
(`DemandProfile.reading`). A running runtime also keeps a live snapshot under
the ``status`` key, shown with its age.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from typing import Any

from vsm_mcp.core.messages import AlgedonicAlert, AuditFinding, Decision
from vsm_mcp.core.ports import Store
from vsm_mcp.core.variety import (
    DEMAND_BUCKET_S,
    UNLIMITED,
    DemandProfile,
    VarietyReading,
    make_reading,
    shannon_entropy,
)

LIVE_STATUS_KEY = "status"
#: Where a running gateway keeps its latest self-model (`bridge.self_model`) for `vsm-mcp self`.
SELF_MODEL_KEY = "self"


async def stored_profile(store: Store, *, max_age_s: float, now: float | None = None) -> DemandProfile:
    """Demand counts of the buckets overlapping the last ``max_age_s`` seconds, and the capabilities."""
    now = time.time() if now is None else now
    since = int((now - max_age_s) // DEMAND_BUCKET_S * DEMAND_BUCKET_S)
    counts: dict[str, int] = defaultdict(int)
    for aggregate in await store.demand_since(since):
        counts[aggregate.category] += aggregate.count
    capacity = {cap.category: UNLIMITED for cap in await store.capabilities()}
    return DemandProfile(counts=dict(counts), capacity=capacity)


def reading_dict(reading: VarietyReading) -> dict[str, Any]:
    """A reading as JSON-ready data, with the derived unmatched share."""
    data = dataclasses.asdict(reading)
    data["unmatched_share"] = reading.unmatched_share
    return data


async def variety_report(store: Store, *, max_age_s: float, now: float | None = None) -> dict[str, Any]:
    """The variety reading of recent stored demand, with its per-category breakdown."""
    profile = await stored_profile(store, max_age_s=max_age_s, now=now)
    reading = profile.reading()
    categories = [
        {"category": category, "count": count, "answered": profile.capacity.get(category, 0) > 0}
        for category, count in sorted(profile.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {"window_s": max_age_s, "reading": reading_dict(reading), "categories": categories}


async def variety_history(store: Store, *, hours: int, now: float | None = None) -> list[dict[str, Any]]:
    """Each stored hour of the last ``hours`` read as variety, oldest first.

    Per hour: its demand events and categories, the demand's entropy (bits), the variety of
    the categories that were answered in that hour (``log2`` of their number, bits), the share
    answered (coverage) and the gap, by the same definition as the live reading
    (`core.variety.make_reading`).
    """
    now = time.time() if now is None else now
    since = int((now - hours * DEMAND_BUCKET_S) // DEMAND_BUCKET_S * DEMAND_BUCKET_S)
    buckets: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for aggregate in await store.demand_since(since):
        buckets[aggregate.bucket_start].append((aggregate.count, aggregate.matched))
    points: list[dict[str, Any]] = []
    for start, rows in sorted(buckets.items()):
        counts = [count for count, _ in rows]
        reading = make_reading(
            events=sum(counts),
            categories=len(rows),
            entropy_bits=shannon_entropy(counts),
            matched=sum(min(matched, count) for count, matched in rows),
            answering=sum(1 for _, matched in rows if matched > 0),
        )
        points.append(
            {
                "at": start,
                "events": reading.events,
                "categories": reading.categories,
                "demand_variety_bits": round(reading.demand_variety_bits, 6),
                "answered_variety_bits": round(reading.system_variety_bits, 6),
                "coverage": round(reading.coverage, 6),
                "gap": round(reading.gap, 6),
            }
        )
    return points


def _alert(a: AlgedonicAlert) -> dict[str, Any]:
    return {
        "source": a.source,
        "kind": a.kind,
        "valence": a.valence.value,
        "severity": a.severity.name.lower(),
        "count": a.count,
        "first_at": a.first_at,
        "last_at": a.last_at,
        "detail": a.detail,
    }


def _decision(d: Decision) -> dict[str, Any]:
    return {
        "at": d.at,
        "system": d.system,
        "subject": d.subject,
        "choice": d.choice,
        "rule": d.rule,
        "rationale": d.rationale,
    }


def _finding(f: AuditFinding) -> dict[str, Any]:
    return {
        "at": f.at,
        "unit": f.unit,
        "check": f.check,
        "ok": f.ok,
        "detail": f.detail,
        "latency_ms": f.latency_ms,
    }


async def status_report(store: Store, *, max_age_s: float, limit: int = 10) -> dict[str, Any]:
    """Everything `vsm-mcp status` shows, as JSON-ready data."""
    now = time.time()
    capabilities = await store.capabilities()
    units: dict[str, int] = defaultdict(int)
    for cap in capabilities:
        units[cap.unit] += 1
    live = await store.kv_get(LIVE_STATUS_KEY)
    live_age = None
    if isinstance(live, dict) and isinstance(live.get("at"), int | float):
        live_age = round(now - float(live["at"]), 1)
    return {
        "live": live,
        "live_age_s": live_age,
        "variety": (await variety_report(store, max_age_s=max_age_s, now=now))["reading"],
        "units": [{"name": name, "tools": n} for name, n in sorted(units.items())],
        "alerts": [_alert(a) for a in await store.alerts(limit)],
        "decisions": [_decision(d) for d in await store.decisions(limit)],
        "audit": [_finding(f) for f in await store.findings(limit)],
        "dead_letters_pending": len(await store.dead_letters()),
    }
