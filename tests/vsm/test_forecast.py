"""S4's forecast: on a generated daily-seasonal series it beats the naive forecast by a stated margin."""

from __future__ import annotations

import numpy as np
import pytest

from vsm_mcp.core.messages import DemandAggregate
from vsm_mcp.vsm.forecast import HOUR_S, SEASON, forecast_demand, holt_winters, hourly_series, naive

#: The model's mean absolute error over a held-out day must be at most this share of the naive one's.
MARGIN = 0.5


def _seasonal(days: int, seed: int) -> np.ndarray:
    """Calls per hour: a working-day bump (peak 40 at 14:00), noise, never below zero."""
    rng = np.random.default_rng(seed)
    hours = np.arange(days * SEASON)
    daily = 5 + 35 * np.exp(-(((hours % SEASON) - 14) ** 2) / 8)
    return np.maximum(0, daily + rng.normal(0, 2, len(hours)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_holt_winters_beats_the_naive_forecast_hour_by_hour_over_a_held_out_day(seed: int) -> None:
    series = _seasonal(days=8, seed=seed)
    history, actual = series[:-SEASON], series[-SEASON:]
    model_errors, naive_errors = [], []
    for hour in range(SEASON):  # one step ahead at each hour of the held-out day, as S4 runs
        seen = np.concatenate([history, actual[:hour]])
        model_errors.append(abs(holt_winters(seen, 1)[0] - actual[hour]))
        naive_errors.append(abs(naive(seen.tolist(), 1)[0] - actual[hour]))
    assert np.mean(model_errors) <= MARGIN * np.mean(naive_errors)


def test_short_or_flat_history_falls_back_to_the_naive_forecast_and_never_goes_negative() -> None:
    assert holt_winters([3.0, 4.0, 5.0], 2) == [5.0, 5.0]
    assert holt_winters([0.0] * 60, 1) == [0.0]
    assert naive([], 3) == []
    dip = np.tile([0.0] * 23 + [50.0], 3)  # a burst at the last hour of each day, nothing else
    assert min(holt_winters(dip, SEASON)) >= 0.0


def test_stored_hourly_rows_become_series_with_zeros_and_a_forecast_per_category() -> None:
    day = 1_700_006_400 // HOUR_S * HOUR_S
    rows = [
        DemandAggregate("weather", day + h * HOUR_S, 10 if h % SEASON == 9 else 0, 0)
        for h in range(3 * SEASON)
    ]
    rows = [r for r in rows if r.count] + [DemandAggregate("maps", day + 5 * HOUR_S, 2, 2)]
    series = hourly_series(rows, day, day + 3 * SEASON * HOUR_S)
    assert series["weather"][9] == 10 and series["weather"][10] == 0 and sum(series["weather"]) == 30
    assert series["maps"][5] == 2
    now = day + 3 * SEASON * HOUR_S + 9 * HOUR_S  # 09:xx on the fourth day: the burst is due
    ahead = forecast_demand(rows, now + 120, horizon=1)
    assert ahead["weather"][0] > 5  # the 09:00 burst of every day
    assert "nothing" not in ahead
