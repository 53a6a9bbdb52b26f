"""Page's CUSUM on error rate and latency: exact values on worked series, detection delays and
false alarms measured on seeded generated streams (the figures the module's defaults give)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from vsm_mcp.core.drift import Cusum, DriftAlarm, DriftPolicy


def test_the_error_rate_statistic_on_a_worked_series() -> None:
    c = Cusum("error_rate", DriftPolicy(warmup=4, error_ratio=2.0, error_h=1.5))
    for flag in (0, 0, 0, 1):
        assert c.update(flag) is None
    # The baseline after the warm-up: p0 = (1 + 1) / (4 + 2) = 1/3 (and p1 = 2 p0).
    assert c.p0 == pytest.approx(1 / 3)
    # An error adds log(p1/p0) = log 2; a call seen while the sum is 0 also joins the baseline.
    assert c.update(1) is None and c.s == pytest.approx(math.log(2))
    assert c.p0 == pytest.approx(3 / 7)  # (2 + 1) / (5 + 2)
    # A success adds log((1 - 6/7) / (1 - 3/7)) = log(1/4): the sum would go below 0, so it is 0.
    assert c.update(0) is None and c.s == 0.0
    assert c.p0 == pytest.approx(3 / 7)  # not learnt: the sum was not 0 when it came
    assert c.update(1) is None and c.s == pytest.approx(math.log(2))
    assert c.p0 == pytest.approx(0.5)  # (3 + 1) / (6 + 2); p1 is capped at 0.99
    assert c.update(1) is None and c.s == pytest.approx(math.log(2) + math.log(0.99 / 0.5))
    alarm = c.update(1)
    assert isinstance(alarm, DriftAlarm)
    assert alarm.cusum == pytest.approx(math.log(2) + 2 * math.log(0.99 / 0.5))
    assert (alarm.statistic, alarm.observations, alarm.baseline, alarm.recent) == ("error_rate", 5, 0.5, 1.0)
    assert c.learning  # a fresh warm-up after the alarm


def test_the_latency_statistic_on_a_worked_series() -> None:
    c = Cusum("latency", DriftPolicy(warmup=3, latency_shift=1.0, latency_h=3.0))
    for log_latency in (0.0, 1.0, 2.0):
        assert c.update(math.exp(log_latency)) is None
    # On log latency: mu = 1, sigma = sqrt(2/3); a call adds z - 1/2.
    assert (c.mu, c.sigma) == (pytest.approx(1.0), pytest.approx(math.sqrt(2 / 3)))
    first = 2 / math.sqrt(2 / 3) - 0.5
    assert c.update(math.exp(3.0)) is None and c.s == pytest.approx(first)
    # It came while the sum was 0, so it joined the baseline: mu = 1.5, sigma = sqrt(14/4 - 2.25).
    assert (c.mu, c.sigma) == (pytest.approx(1.5), pytest.approx(math.sqrt(1.25)))
    later = 1.5 / math.sqrt(1.25) - 0.5
    assert c.update(math.exp(3.0)) is None and c.s == pytest.approx(first + later)
    alarm = c.update(math.exp(3.0))
    assert alarm is not None and alarm.cusum == pytest.approx(first + 2 * later)
    assert (alarm.baseline, alarm.recent) == (pytest.approx(math.exp(1.5)), pytest.approx(math.exp(3.0)))
    assert "latency rose" in alarm.describe()


def _first_alarm(kind: str, draw: Callable[[random.Random], float], seed: int, calls: int) -> int | None:
    rng = random.Random(seed)
    c = Cusum(kind)
    for i in range(calls):
        if c.update(draw(rng)) is not None:
            return i
    return None


def _delay(
    kind: str, before: Callable[[random.Random], float], after: Callable[[random.Random], float], seed: int
) -> int | None:
    """Calls after a step change until the alarm (None: none within 3,000, or a false one before)."""
    rng = random.Random(seed)
    c = Cusum(kind)
    for _ in range(DriftPolicy().warmup + 100):
        if c.update(before(rng)) is not None:
            return None
    for i in range(3000):
        if c.update(after(rng)) is not None:
            return i + 1
    return None


def _p(share: float) -> Callable[[random.Random], float]:
    return lambda rng: 1.0 if rng.random() < share else 0.0


def _lognormal(median_s: float, sigma: float) -> Callable[[random.Random], float]:
    return lambda rng: math.exp(rng.gauss(math.log(median_s), sigma))


def test_a_tripled_error_rate_is_found_within_500_calls_in_95_of_100_runs() -> None:
    delays = [_delay("error_rate", _p(0.02), _p(0.10), seed) for seed in range(100)]
    found = sorted(d for d in delays if d is not None)
    assert len([d for d in found if d <= 500]) >= 95, found
    assert found[len(found) // 2] <= 200  # median (measured: about 150 calls)


def test_latency_one_sigma_higher_is_found_within_60_calls_in_95_of_100_runs() -> None:
    base, shifted = _lognormal(0.05, 0.3), _lognormal(0.05 * math.exp(0.3), 0.3)
    delays = [_delay("latency", base, shifted, seed) for seed in range(100)]
    assert len([d for d in delays if d is not None and d <= 60]) >= 95, delays


@pytest.mark.parametrize(
    ("kind", "draw"),
    [
        ("error_rate", _p(0.005)),
        ("error_rate", _p(0.02)),
        ("error_rate", _p(0.2)),
        ("latency", _lognormal(0.05, 0.3)),
        ("latency", _lognormal(2.0, 1.0)),
    ],
)
def test_stationary_streams_alarm_in_at_most_5_percent_of_runs_of_2000_calls(
    kind: str, draw: Callable[[random.Random], float]
) -> None:
    runs = 100
    alarms = sum(_first_alarm(kind, draw, 1000 + seed, 2000) is not None for seed in range(runs))
    assert alarms / runs <= 0.05, f"{alarms} of {runs} runs alarmed"


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="error_ratio > 1"):
        DriftPolicy(error_ratio=1.0)
    with pytest.raises(ValueError, match="min_error_rate"):
        DriftPolicy(min_error_rate=0.0)
    with pytest.raises(ValueError, match="unknown drift statistic"):
        Cusum("throughput")
