"""S3*: seeded, reproducible sampling; every probe is a stored finding; failures are pain."""

from __future__ import annotations

import random

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicSignal, Severity
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.audit import AuditScheduler, ProbeResult

pytestmark = pytest.mark.anyio

UNITS = [f"unit{i:02d}" for i in range(20)]


class SignalList:
    def __init__(self) -> None:
        self.signals: list[AlgedonicSignal] = []

    def emit(self, signal: AlgedonicSignal) -> None:
        self.signals.append(signal)


def _scheduler(store: MemoryStore, probability: float, seed: int, probed: list[str]) -> AuditScheduler:
    async def ping(unit: str) -> ProbeResult:
        probed.append(unit)
        return ProbeResult("ping", True, "pong")

    return AuditScheduler(
        lambda: UNITS, ping, store, SignalList(), rng=random.Random(seed), probability=probability
    )


@pytest.mark.parametrize(("probability", "expected"), [(0.0, 0), (1.0, 20 * 5)])
async def test_probability_zero_never_probes_and_one_always_does(probability: float, expected: int) -> None:
    async with MemoryStore.open() as store:
        probed: list[str] = []
        audit = _scheduler(store, probability, seed=7, probed=probed)
        for _ in range(5):
            await audit.audit_once()
        assert len(probed) == expected
        assert len(await store.findings(limit=1000)) == expected
        assert (audit.rounds, audit.probes) == (5, expected)


async def test_the_same_seed_draws_the_same_sample_and_it_follows_the_random_stream() -> None:
    async with MemoryStore.open() as store:
        first: list[str] = []
        second: list[str] = []
        a = _scheduler(store, 0.3, seed=42, probed=first)
        b = _scheduler(store, 0.3, seed=42, probed=second)
        for _ in range(3):
            await a.audit_once()
            await b.audit_once()
        reference = random.Random(42)
        expected = [u for _ in range(3) for u in UNITS if reference.random() < 0.3]
        assert first == second == expected
        assert 0 < len(expected) < 60


async def test_a_failing_probe_is_a_failed_finding_medium_pain_and_a_rug_pull_high() -> None:
    sink = SignalList()

    async def probe(unit: str) -> ProbeResult:
        if unit == "broken":
            raise ConnectionError("pipe closed")
        if unit == "changed":
            return ProbeResult("pinned_definitions", False, "tool 'read' description changed")
        return ProbeResult("ping", True)

    async with MemoryStore.open() as store:
        audit = AuditScheduler(
            lambda: ["ok", "changed", "broken"], probe, store, sink, rng=random.Random(1), probability=1.0
        )
        findings = await audit.audit_once()
        assert [(f.unit, f.check, f.ok, f.detail) for f in findings] == [
            ("broken", "probe", False, "ConnectionError: pipe closed"),
            ("changed", "pinned_definitions", False, "tool 'read' description changed"),
            ("ok", "ping", True, ""),
        ]
        assert all(f.latency_ms is not None and f.latency_ms >= 0 for f in findings)
        assert [(s.source, s.kind, s.severity) for s in sink.signals] == [
            ("unit:broken", "audit_failed", Severity.MEDIUM),
            ("unit:changed", "audit_failed", Severity.HIGH),  # a rug pull: S5 escalates it at once
        ]
        status = audit.status()
        assert (status.state, status.metrics["failures"], status.metrics["units_failing"]) == (
            "degraded",
            2,
            2,
        )


async def test_a_probe_that_hangs_times_out_as_a_failed_finding() -> None:
    async def hang(unit: str) -> ProbeResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with MemoryStore.open() as store:
        audit = AuditScheduler(
            lambda: ["slow"],
            hang,
            store,
            SignalList(),
            rng=random.Random(1),
            probability=1.0,
            probe_timeout_s=0.05,
        )
        with anyio.fail_after(5):
            [finding] = await audit.audit_once()
        assert (finding.ok, finding.detail) == (False, "no answer within 0.05s")
        assert finding.latency_ms is not None and finding.latency_ms >= 50.0
