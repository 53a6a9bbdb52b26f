"""Notices: numbered, awaited without a race, followed with what was missed, published by the store."""

from __future__ import annotations

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicAlert, Decision, Severity, Valence
from vsm_mcp.store import MemoryStore
from vsm_mcp.vsm.notices import Notices, noticed

pytestmark = pytest.mark.anyio


async def test_a_waiter_gets_the_first_matching_notice_after_its_start() -> None:
    notices = Notices()
    notices.publish("unit.ready", "a")  # before the wait: not seen
    got: list[str] = []

    async def wait() -> None:
        notice = await notices.wait_for("unit.ready", "b")
        got.append(f"{notice.seq}:{notice.subject}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        notices.publish("unit.ready", "a")
        notices.publish("unit.failed", "b", error="x")
        notices.publish("unit.ready", "b")
    assert got == ["4:b"]


async def test_wait_for_after_a_seq_sees_what_happened_meanwhile() -> None:
    notices = Notices()
    mark = notices.last_seq
    notices.publish("decision.stored", "acquire:x", id=3, choice="approve")
    with anyio.fail_after(1):
        found = await notices.wait_for(
            "decision.stored", after=mark, where=lambda n: n.data["choice"] == "approve"
        )
    assert found.data["id"] == 3


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown notice kind"):
        Notices().publish("unit.explode", "a")


async def test_a_follower_gets_every_notice_in_order_and_how_many_it_missed() -> None:
    notices = Notices(retained=3)
    for i in range(5):
        notices.publish("unit.state", f"u{i}")
    kept, missed = notices.since(0)
    assert [n.subject for n in kept] == ["u2", "u3", "u4"] and missed == 2
    seen: list[tuple[str, int]] = []
    with anyio.move_on_after(0.5):
        async for notice, lost in notices.follow(after=1):
            seen.append((notice.subject, lost))
            if notice.subject == "u5":
                break
            if notice.subject == "u4":
                notices.publish("unit.state", "u5")
    assert seen == [("u2", 1), ("u3", 0), ("u4", 0), ("u5", 0)]


async def test_the_noticed_store_publishes_what_it_stored() -> None:
    notices = Notices()
    async with MemoryStore.open() as raw:
        store = noticed(raw, notices)
        decision_id = await store.record_decision(Decision(1.0, "s5", "acquire:x", "ask", "operator", "why"))
        alert_id = await store.record_alert(
            AlgedonicAlert("unit:a", "crash_loop", Valence.PAIN, Severity.HIGH, 1, 1.0, 1.0, "d")
        )
        assert [d.subject for d in await store.decisions()] == ["acquire:x"]  # the rest is the store's
    kept, _ = notices.since(0)
    assert [(n.kind, n.subject, n.data["id"]) for n in kept] == [
        ("decision.stored", "acquire:x", decision_id),
        ("alert.raised", "unit:a", alert_id),
    ]
    assert kept[1].data == {"id": alert_id, "kind": "crash_loop", "severity": "HIGH", "valence": "pain"}
