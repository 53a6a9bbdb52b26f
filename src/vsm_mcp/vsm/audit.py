"""S3* Audit: sporadic, random probes of units, each recorded as a finding.

Invariants:

* Sampling is the one random thing in the VSM: each round, each unit is
  probed with probability ``probability``, decided by the injected
  ``random.Random`` in unit-name order (``rng.random() < probability``), so a
  seeded generator gives a reproducible schedule; 0 never probes, 1 always.
* Every probe yields exactly one `AuditFinding`, stored with
  `Store.record_finding` before the round ends; its latency is measured on
  the monotonic clock around the probe. A probe that raises or exceeds
  ``probe_timeout_s`` is a failed finding, never a crash of the scheduler.
* A failed finding is also PAIN (MEDIUM, kind ``audit_failed``, source
  ``unit:<name>``, `unit_source`) on the algedonic channel.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

from vsm_mcp.core.messages import AlgedonicSignal, AuditFinding, Severity, Valence, unit_source
from vsm_mcp.core.ports import Store
from vsm_mcp.vsm.algedonic import SignalSink
from vsm_mcp.vsm.status import SystemStatus

logger = logging.getLogger(__name__)

#: How long one probe may take: a healthy MCP ping answers in milliseconds;
#: five seconds is what a client would tolerate before calling the unit dead.
PROBE_TIMEOUT_S = 5.0
#: Seconds between audit rounds by default.
AUDIT_INTERVAL_S = 30.0
AUDIT_FAILED_KIND = "audit_failed"
#: How much a failed check hurts: a tool definition that changed behind the operator's back (a rug
#: pull) is S5's to see at once; a slow or failed ping is the unit's own trouble first.
AUDIT_SEVERITY: dict[str, Severity] = {"pinned_definitions": Severity.HIGH}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe found: which check ran, whether it passed, and why."""

    check: str
    ok: bool
    detail: str = ""


Probe = Callable[[str], Awaitable[ProbeResult]]


class AuditScheduler:
    """S3*: every ``interval_s``, probes a random sample of the units."""

    name = "s3_star"

    def __init__(
        self,
        units: Callable[[], Sequence[str]],
        probe: Probe,
        store: Store,
        sink: SignalSink,
        *,
        rng: random.Random,
        probability: float = 0.2,
        interval_s: float = AUDIT_INTERVAL_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if interval_s <= 0 or probe_timeout_s <= 0:
            raise ValueError("interval_s and probe_timeout_s must be positive")
        self._units = units
        self._probe = probe
        self._store = store
        self._sink = sink
        self._rng = rng
        self.probability = probability
        self.interval_s = interval_s
        self._timeout = probe_timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        self.rounds = 0
        self.probes = 0
        self.failures = 0
        self.last: dict[str, AuditFinding] = {}

    def sample(self) -> list[str]:
        """Draw this round's units (consumes one random number per unit)."""
        p = self.probability
        return [unit for unit in sorted(self._units()) if self._rng.random() < p]

    async def audit_once(self) -> list[AuditFinding]:
        """Run one round: sample, probe each sampled unit in turn, store the findings."""
        self.rounds += 1
        findings = []
        for unit in self.sample():
            finding = await self._probe_one(unit)
            await self._store.record_finding(finding)
            self.last[unit] = finding
            self.probes += 1
            if not finding.ok:
                self.failures += 1
                self._sink.emit(
                    AlgedonicSignal(
                        unit_source(unit),
                        AUDIT_FAILED_KIND,
                        Valence.PAIN,
                        AUDIT_SEVERITY.get(finding.check, Severity.MEDIUM),
                        f"{finding.check}: {finding.detail}",
                        finding.at,
                    )
                )
            findings.append(finding)
        return findings

    async def _probe_one(self, unit: str) -> AuditFinding:
        started = self._clock()
        try:
            with anyio.fail_after(self._timeout):
                result = await self._probe(unit)
        except TimeoutError:
            result = ProbeResult("probe", False, f"no answer within {self._timeout:g}s")
        except Exception as exc:  # a probe is foreign code: its failure is a finding, not a crash
            logger.warning("audit probe of %s raised", unit, exc_info=True)
            result = ProbeResult("probe", False, f"{type(exc).__name__}: {exc}")
        latency_ms = (self._clock() - started) * 1000.0
        return AuditFinding(self._wall_clock(), unit, result.check, result.ok, result.detail, latency_ms)

    async def run(self) -> None:
        """Audit every ``interval_s`` until cancelled."""
        while True:
            await anyio.sleep(self.interval_s)
            await self.audit_once()

    def status(self) -> SystemStatus:
        """Rounds, probes and how many units failed their last audit."""
        failing = sorted(u for u, f in self.last.items() if not f.ok)
        return SystemStatus(
            "degraded" if failing else ("ok" if self.probes else "idle"),
            {
                "rounds": self.rounds,
                "probes": self.probes,
                "failures": self.failures,
                "units_failing": len(failing),
                "probability": self.probability,
                "interval_s": self.interval_s,
            },
        )
