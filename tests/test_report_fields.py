"""No field of `vsm-mcp status --json` (`report.status_report`) is a constant: built from
different stores, every leaf moves or disappears.

The ``live`` snapshot is the running gateway's own status document, stored as it is (its fields
are checked where it is built: tests/vsm/test_viable_fields.py, tests/gateway/test_status_fields.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.leaves import constant_fields

from vsm_mcp import report
from vsm_mcp.core.messages import (
    AlgedonicAlert,
    AuditFinding,
    Capability,
    DeadLetter,
    Decision,
    DemandAggregate,
    Severity,
    Valence,
)
from vsm_mcp.core.variety import DEMAND_BUCKET_S
from vsm_mcp.store import MemoryStore

pytestmark = pytest.mark.anyio


async def _status(k: int) -> dict[str, Any]:
    """The status of a store whose every figure depends on ``k`` (0: nothing stored)."""
    now = time.time()
    bucket = int(now // DEMAND_BUCKET_S * DEMAND_BUCKET_S)
    async with MemoryStore.open() as store:
        if k:
            await store.kv_put(report.LIVE_STATUS_KEY, {"at": now - 10 * k, "vsm": {"name": f"gw{k}"}})
            for unit in range(k):
                tools = [Capability(f"u{k}-{unit}", f"t{i}", f"cat{i}") for i in range(unit + k)]
                await store.put_capabilities(f"u{k}-{unit}", tools)
            await store.add_demand(
                [DemandAggregate(f"cat{i}", bucket, 3 * i + k, i) for i in range(k + 1)]
                + [DemandAggregate(f"missing{k}", bucket, k, 0)]
            )
            for i in range(k):
                at = now - 60 * (i + k)
                severity = Severity.HIGH if k == 1 else Severity.LOW
                valence = Valence.PAIN if k == 1 else Valence.PLEASURE
                await store.record_alert(
                    AlgedonicAlert(f"unit:u{k}", f"kind{k}", valence, severity, i + k, at - k, at, f"d{k}")
                )
                await store.record_decision(
                    Decision(at, f"s{k + 2}", f"subject{k}", f"choice{k}", f"rule{k}", f"why{k}")
                )
                await store.record_finding(
                    AuditFinding(at, f"u{k}", f"check{k}", k == 2, f"detail{k}", None if k == 1 else 3.5)
                )
                await store.put_dead_letter(DeadLetter(at, f"u{k}", "t", {}, "boom", 1))
        return await report.status_report(store, max_age_s=3600.0)


async def test_every_field_of_the_status_moves_with_the_store() -> None:
    docs = [await _status(k) for k in (0, 1, 2)]
    assert docs[1]["alerts"] and docs[1]["decisions"] and docs[1]["audit"] and docs[1]["units"]
    assert constant_fields(docs) == []
    assert constant_fields(docs[1:]) == []  # between two filled stores too


async def test_a_planted_constant_field_is_reported() -> None:
    docs = [await _status(k) for k in (1, 2)]
    for doc in docs:
        doc["variety"]["planted"] = 0.5
        for unit in doc["units"]:
            unit["kind"] = "stdio"
    assert constant_fields(docs) == ["units[].kind", "variety.planted"]
