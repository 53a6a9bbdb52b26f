from __future__ import annotations

import pytest

from vsm_mcp.discovery.outcomes import LEDGER_KEY, OutcomeLedger
from vsm_mcp.discovery.resilience import MemoryKeyValue
from vsm_mcp.store.memory import MemoryStore


def test_boost_follows_the_beta_posterior() -> None:
    ledger = OutcomeLedger(alpha=2.0, beta=2.0)
    assert ledger.boost("a", "x") == 0.0
    ledger.record("a", "x", success=True)
    assert ledger.posterior_mean("a", "x") == pytest.approx(3 / 5)
    assert ledger.boost("a", "x") == pytest.approx((3 / 5 - 0.5) / 0.5)
    for _ in range(3):
        ledger.record("b", "x", success=False)
    assert ledger.boost("b", "x") == pytest.approx((2 / 7 - 0.5) / 0.5)
    assert ledger.boost("a", "other") == 0.0


def test_boost_stays_within_bounds() -> None:
    ledger = OutcomeLedger()
    for _ in range(10_000):
        ledger.record("s", "c", success=True)
    assert 0.99 < ledger.boost("s", "c") <= 1.0


@pytest.mark.anyio
async def test_save_and_load_round_trip_through_the_store() -> None:
    ledger = OutcomeLedger()
    ledger.record("fetch", "web", success=True)
    ledger.record("fetch", "web", success=False)
    ledger.record("git", "code", success=True)
    store = MemoryStore()
    await ledger.save(store)
    loaded = await OutcomeLedger.load(store)
    assert loaded.tallies == ledger.tallies


@pytest.mark.anyio
async def test_malformed_records_are_skipped() -> None:
    kv = MemoryKeyValue()
    await kv.kv_put(LEDGER_KEY, [["ok", "cat", 2, 1], ["bad", "cat", -1, 0], "junk", ["x", 1, 2, 3]])
    loaded = await OutcomeLedger.load(kv)
    assert list(loaded.tallies) == [("ok", "cat")]
