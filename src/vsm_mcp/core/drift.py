"""Drift: sequential change detection on a unit's error rate and latency (Page's CUSUM; pure).

Each stream learns its baseline from its first ``warmup`` observations, then
accumulates the log-likelihood ratio of "shifted" against "as before" and
alarms when the sum passes ``h`` (Page, 1954). The sum never goes below 0, so
evidence of the old level is not banked against a later shift.

* **Error rate** (each call 1 = error, 0 = ok): Bernoulli, baseline ``p0`` (the
  warm-up's share of errors, at least ``min_error_rate``), shifted ``p1 =
  error_ratio * p0`` (capped below 1). An error adds ``log(p1/p0)``, a success
  adds ``log((1-p1)/(1-p0))`` (negative).
* **Latency**: on ``log(latency)`` (latencies are skewed; their logs are near
  normal), baseline mean ``mu`` and deviation ``sigma`` (at least
  ``min_log_sigma``); each call adds ``d * z - d**2 / 2`` with ``z = (x - mu) /
  sigma`` and ``d = latency_shift`` (in sigmas): the normal-shift CUSUM with
  allowance ``d/2``.

The baseline keeps learning from every observation made while the statistic
is 0 (in control), so its estimate improves with the stream's length and a
short warm-up does not cause false alarms later. After an alarm the stream
starts again from a fresh warm-up, so a lasting shift is reported once and the
new level becomes the baseline. Invariants:
the statistic is ``>= 0``; nothing alarms during a warm-up; `Cusum.update` is
O(1) in time and memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """The detectors' parameters (``[drift]`` in the settings)."""

    warmup: int = 200
    error_ratio: float = 3.0
    error_h: float = 10.0
    min_error_rate: float = 0.01
    latency_shift: float = 1.0
    latency_h: float = 10.0
    min_log_sigma: float = 0.05

    def __post_init__(self) -> None:
        if self.warmup < 2 or self.error_ratio <= 1.0 or self.error_h <= 0 or self.latency_h <= 0:
            raise ValueError("drift needs warmup >= 2, error_ratio > 1 and positive thresholds")
        if not 0.0 < self.min_error_rate < 1.0 or self.latency_shift <= 0 or self.min_log_sigma <= 0:
            raise ValueError("drift needs 0 < min_error_rate < 1, latency_shift > 0, min_log_sigma > 0")


@dataclass(frozen=True, slots=True)
class DriftAlarm:
    """A detected shift: which statistic, its baseline, the evidence, and after how many observations."""

    statistic: str  # "error_rate" or "latency"
    baseline: float  # p0, or the baseline median latency (exp(mu))
    recent: float  # the error share, or the median latency, of the observations since the sum left 0
    cusum: float
    threshold: float
    observations: int  # since the baseline was learnt

    def describe(self) -> str:
        if self.statistic == "error_rate":
            return (
                f"error rate rose: {self.recent:.1%} of the calls since the rise began against a "
                f"baseline of {self.baseline:.1%} (CUSUM {self.cusum:.2f} > {self.threshold:g}, "
                f"{self.observations} calls after the baseline)"
            )
        return (
            f"latency rose: about {self.recent * 1000:.0f} ms per call since the rise began against a "
            f"baseline of {self.baseline * 1000:.0f} ms (CUSUM {self.cusum:.2f} > {self.threshold:g}, "
            f"{self.observations} calls after the baseline)"
        )


class Cusum:
    """One stream's detector: ``kind`` is ``"error_rate"`` (observations 0/1) or ``"latency"`` (seconds)."""

    __slots__ = (
        "_n",
        "_run",
        "_run_sum",
        "_sum",
        "_sumsq",
        "kind",
        "mu",
        "observed",
        "p0",
        "policy",
        "s",
        "sigma",
    )

    def __init__(self, kind: str, policy: DriftPolicy | None = None) -> None:
        if kind not in {"error_rate", "latency"}:
            raise ValueError(f"unknown drift statistic {kind!r}")
        self.kind = kind
        self.policy = policy or DriftPolicy()
        self._restart()

    def _restart(self) -> None:
        self._n = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self.p0: float | None = None
        self.mu: float | None = None
        self.sigma: float | None = None
        #: The CUSUM statistic (0 during a warm-up).
        self.s = 0.0
        #: Observations since the baseline was learnt.
        self.observed = 0
        #: Observations (and their sum) since the statistic last left 0: the evidence of a shift.
        self._run = 0
        self._run_sum = 0.0

    @property
    def learning(self) -> bool:
        """Whether the stream is still learning its baseline."""
        return self.p0 is None and self.mu is None

    def update(self, value: float) -> DriftAlarm | None:
        """Add one observation (an error flag, or a latency in seconds); an alarm when it shifted."""
        policy = self.policy
        x = float(value) if self.kind == "error_rate" else math.log(max(value, 1e-6))
        if self.learning:
            self._learn(x)
            return None
        self.observed += 1
        step = self._step(x)
        if self.s == 0.0:
            self._run, self._run_sum = 0, 0.0
            self._learn(x)  # the baseline keeps learning while nothing is building up
        self.s = max(0.0, self.s + step)
        if self.s == 0.0:
            return None
        self._run += 1
        self._run_sum += x
        threshold = policy.error_h if self.kind == "error_rate" else policy.latency_h
        if self.s <= threshold:
            return None
        recent = self._run_sum / self._run
        if self.kind == "error_rate":
            assert self.p0 is not None
            alarm = DriftAlarm("error_rate", self.p0, recent, self.s, threshold, self.observed)
        else:
            assert self.mu is not None
            alarm = DriftAlarm(
                "latency", math.exp(self.mu), math.exp(recent), self.s, threshold, self.observed
            )
        self._restart()
        return alarm

    def _learn(self, x: float) -> None:
        """Fold an in-control observation into the baseline (after ``warmup`` of them, it is set)."""
        policy = self.policy
        self._n += 1
        self._sum += x
        self._sumsq += x * x
        if self._n < policy.warmup:
            return
        mean = self._sum / self._n
        if self.kind == "error_rate":
            # (errors + 1) / (calls + 2): a few errors in a short history do not make a low baseline
            # that the same rate would later seem to exceed.
            self.p0 = min(max((self._sum + 1.0) / (self._n + 2.0), policy.min_error_rate), 0.5)
        else:
            variance = max(self._sumsq / self._n - mean * mean, 0.0)
            self.mu, self.sigma = mean, max(math.sqrt(variance), policy.min_log_sigma)

    def _step(self, x: float) -> float:
        """The log-likelihood ratio of one observation (module docstring)."""
        if self.kind == "error_rate":
            assert self.p0 is not None
            p0 = self.p0
            p1 = min(self.policy.error_ratio * p0, 0.99)
            return math.log(p1 / p0) if x >= 0.5 else math.log((1.0 - p1) / (1.0 - p0))
        assert self.mu is not None and self.sigma is not None
        d = self.policy.latency_shift
        z = (x - self.mu) / self.sigma
        return d * z - d * d / 2.0
