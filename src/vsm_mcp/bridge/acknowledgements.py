"""An operator's acknowledgement of an escalated alert, from the command line to a running S5.

S5 keeps an escalated pain alert in ``attention`` until an operator has seen it
(`vsm_mcp.vsm.policy.Policy.acknowledge`). ``vsm-mcp alerts ack ID`` records
the acknowledgement in the store (`ACKNOWLEDGED_KEY`: who, when, which alert);
the running gateway applies new ones within a sampling round
(`apply_acknowledgements`), so the alert leaves ``attention`` and S5's state
returns to ``ok`` once nothing else waits. Invariants: an acknowledgement is
kept once per alert (the first one wins); at most `MAX_KEPT` are kept, the
oldest going first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vsm_mcp.core.ports import Store
from vsm_mcp.vsm.policy import Policy

ACKNOWLEDGED_KEY = "s5.acknowledged"
MAX_KEPT = 1000


async def acknowledged(store: Store) -> dict[int, dict[str, Any]]:
    """Every kept acknowledgement by alert id."""
    raw = await store.kv_get(ACKNOWLEDGED_KEY)
    kept: dict[int, dict[str, Any]] = {}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                kept[item["id"]] = item
    return kept


async def acknowledge(store: Store, ids: Iterable[int], *, by: str, at: float) -> list[int]:
    """Record that ``by`` acknowledged alerts ``ids``; returns the ids that were not acknowledged yet."""
    kept = await acknowledged(store)
    new = [i for i in dict.fromkeys(ids) if i not in kept]
    for alert_id in new:
        kept[alert_id] = {"id": alert_id, "by": by, "at": at}
    await store.kv_put(ACKNOWLEDGED_KEY, list(kept.values())[-MAX_KEPT:])
    return new


async def alert_rows(store: Store, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` latest stored alerts as JSON-ready rows, each with its acknowledgement (or None):
    what ``vsm-mcp alerts list --json`` and the operator API show."""
    acks = await acknowledged(store)
    return [
        {
            "id": a.id,
            "source": a.source,
            "kind": a.kind,
            "valence": a.valence.value,
            "severity": a.severity.name,
            "count": a.count,
            "first_at": a.first_at,
            "last_at": a.last_at,
            "detail": a.detail,
            "acknowledged": acks.get(a.id) if a.id is not None else None,
        }
        for a in await store.alerts(limit)
    ]


async def apply_acknowledgements(store: Store, policy: Policy, applied: set[int]) -> int:
    """Clear from S5's attention the alerts acknowledged since the last call; returns how many left it."""
    cleared = 0
    for alert_id in (await acknowledged(store)).keys() - applied:
        applied.add(alert_id)
        cleared += policy.acknowledge(alert_id)
    return cleared
