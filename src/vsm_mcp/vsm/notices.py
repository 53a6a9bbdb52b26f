"""Notices: what happened in the system, published as it happens, for anyone to await or follow.

A `Notice` says that something happened (a unit became ready, a decision was
stored), not what should be done about it: the bus (`vsm.bus`) carries the
systems' work; notices let a test, the CLI or an operator's page wait for a
happening instead of polling for its effect. Kinds (`KINDS`) and their data:

* ``unit.state`` (``unit``, ``state``, ``previous``), and besides it
  ``unit.ready`` / ``unit.failed`` (``unit``, ``error``) when a unit gets there;
* ``capability.changed`` (``tools``: how many the fleet routes now);
* ``calls.counted`` (``calls``: in this batch, ``total``): S1 counted finished calls;
* ``status.stored`` (``units``): the live status (and the outcome ledger, when it
  had news) is in the store, for ``vsm-mcp status`` and other processes;
* ``variety.read`` (``events``, ``categories``, ``demand_variety_bits``,
  ``system_variety_bits``, ``coverage``, ``gap``): S4 counted a batch of demand;
* ``proposal.made`` (``gap``, ``unmatched``): S4 proposed acquiring;
* ``decision.stored`` (``id``, ``system``, ``subject``, ``choice``, ``rule``);
* ``alert.raised`` (``id``, ``source``, ``kind``, ``severity``, ``valence``).

Invariants:

* `Notices.publish` never blocks and never fails; it is called on the event
  loop, by the code that made the thing happen, after it happened;
* notices are numbered 1, 2, 3...; the last `RETAINED` are kept, so a
  follower that falls behind (`follow`, `since`: an SSE stream resuming with
  ``Last-Event-ID``) gets what is kept and is told how many it missed;
* `Notices.wait_for` returns the first matching notice published after
  ``after`` (default: after the call), so a test can start an action and then
  await its notice without a race, under a deadline of its own.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import anyio

from vsm_mcp.core.messages import AlgedonicAlert, Decision
from vsm_mcp.core.ports import Store

#: Every kind of notice (the module docstring lists their data).
KINDS = frozenset(
    {
        "unit.state",
        "unit.ready",
        "unit.failed",
        "capability.changed",
        "calls.counted",
        "status.stored",
        "variety.read",
        "proposal.made",
        "decision.stored",
        "alert.raised",
    }
)
#: Notices kept for followers that fall behind and for `since`.
RETAINED = 1024


@dataclass(frozen=True, slots=True)
class Notice:
    """One happening: its number, when, what kind, about what, and the facts."""

    seq: int
    at: float
    kind: str
    subject: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "subject": self.subject,
            "data": dict(self.data),
        }


class Notices:
    """The notices of one system (see the module docstring)."""

    def __init__(self, retained: int = RETAINED, clock: Callable[[], float] = time.time) -> None:
        self._kept: deque[Notice] = deque(maxlen=retained)
        self._clock = clock
        self._seq = 0
        self._published = anyio.Event()

    @property
    def last_seq(self) -> int:
        """The number of the latest notice (0 before the first)."""
        return self._seq

    def publish(self, kind: str, subject: str, /, **data: Any) -> Notice:
        """Record that ``kind`` happened to ``subject``; wakes every waiter.

        Raises:
            ValueError: ``kind`` is not one of `KINDS` (a programming error).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown notice kind {kind!r}")
        self._seq += 1
        notice = Notice(self._seq, self._clock(), kind, subject, data)
        self._kept.append(notice)
        published, self._published = self._published, anyio.Event()
        published.set()
        return notice

    def since(self, seq: int) -> tuple[list[Notice], int]:
        """The kept notices after ``seq``, and how many after it are no longer kept."""
        kept = [n for n in self._kept if n.seq > seq]
        first = kept[0].seq if kept else self._seq + 1
        return kept, max(0, first - seq - 1)

    async def wait_for(
        self,
        kind: str,
        subject: str | None = None,
        *,
        after: int | None = None,
        where: Callable[[Notice], bool] | None = None,
    ) -> Notice:
        """The first notice of ``kind`` (about ``subject``, satisfying ``where``) after ``after``.

        Waits as long as it takes: callers bound it (``anyio.fail_after``).
        """
        seen = self._seq if after is None else after
        while True:
            published = self._published
            kept, _ = self.since(seen)
            for notice in kept:
                if (
                    notice.kind == kind
                    and (subject is None or notice.subject == subject)
                    and (where is None or where(notice))
                ):
                    return notice
            seen = max(seen, self._seq)
            await published.wait()

    async def published_after(self, seq: int) -> None:
        """Return once a notice numbered above ``seq`` exists (cancel-safe: nothing is consumed)."""
        while self._seq <= seq:
            await self._published.wait()

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[Notice, int]]:
        """Every notice after ``after``, as published, each with how many were missed just before it."""
        seen = after
        while True:
            published = self._published
            kept, missed = self.since(seen)
            for notice in kept:
                yield notice, missed
                missed = 0
                seen = notice.seq
            if not kept:
                await published.wait()


class NoticedStore:
    """A `Store` that publishes ``decision.stored`` and ``alert.raised`` once each record is stored.

    Everything else is the wrapped store's own (attribute access is delegated), so it is a
    `Store` wherever one is taken (`noticed` gives it that type).
    """

    def __init__(self, store: Store, notices: Notices) -> None:
        self._store = store
        self._notices = notices

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def record_decision(self, decision: Decision) -> int:
        stored = await self._store.record_decision(decision)
        self._notices.publish(
            "decision.stored",
            decision.subject,
            id=stored,
            system=decision.system,
            choice=decision.choice,
            rule=decision.rule,
        )
        return stored

    async def record_alert(self, alert: AlgedonicAlert) -> int:
        stored = await self._store.record_alert(alert)
        self._notices.publish(
            "alert.raised",
            alert.source,
            id=stored,
            kind=alert.kind,
            severity=alert.severity.name,
            valence=alert.valence.value,
        )
        return stored


def noticed(store: Store, notices: Notices) -> Store:
    """``store``, publishing its stored decisions and alerts to ``notices``."""
    return cast("Store", NoticedStore(store, notices))
