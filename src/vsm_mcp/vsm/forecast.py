"""S4 looks ahead: each demand category's next hours, forecast from the stored hourly totals.

The model is Holt-Winters exponential smoothing with an additive daily season
(statsmodels' `ExponentialSmoothing`, fitted per category) once the history
holds two full seasons; with less, the forecast is the naive one (the last
hour's value), which is also the baseline the model is measured against
(`tests/vsm/test_forecast.py`). Invariants:

* a forecast is never negative, and a category with no history has none;
* hours with no stored demand count as zero demand (the store keeps only
  hours that had some);
* nothing here touches the event loop: `forecast_demand` is CPU work the
  caller runs in a thread (importing statsmodels takes seconds the first time).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from vsm_mcp.core.messages import DemandAggregate

HOUR_S = 3600
#: A day of hours: the season of human demand.
SEASON = 24
#: How much history a forecast reads.
HISTORY_HOURS = 14 * SEASON


def naive(series: Sequence[float], horizon: int) -> list[float]:
    """The last value, ``horizon`` times (nothing for an empty series)."""
    return [float(series[-1])] * horizon if series else []


def holt_winters(series: Sequence[float], horizon: int, season: int = SEASON) -> list[float]:
    """Additive-season exponential smoothing of ``series``, ``horizon`` steps ahead; the naive
    forecast while the series is shorter than two seasons or flat."""
    values = np.asarray(series, dtype=float)
    if len(values) < 2 * season or float(values.std()) == 0.0:
        return [max(0.0, v) for v in naive(series, horizon)]
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the optimiser
        model = ExponentialSmoothing(
            values, trend=None, seasonal="add", seasonal_periods=season, initialization_method="estimated"
        )
        fitted = model.fit()
    return [max(0.0, float(v)) for v in fitted.forecast(horizon)]


def hourly_series(aggregates: Iterable[DemandAggregate], start: int, end: int) -> dict[str, list[float]]:
    """Each category's demand per hour from ``start`` up to (not including) ``end`` (hour
    boundaries, epoch seconds); hours without a row are zero."""
    hours = max(0, (end - start) // HOUR_S)
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * hours)
    for row in aggregates:
        index = (row.bucket_start - start) // HOUR_S
        if 0 <= index < hours:
            series[row.category][index] += row.count
    return dict(series)


def forecast_demand(
    aggregates: Iterable[DemandAggregate], now: float, *, horizon: int = 1, season: int = SEASON
) -> dict[str, list[float]]:
    """Each category's expected demand in the ``horizon`` hours from the current one on, from the
    complete hours before it."""
    current = int(now) // HOUR_S * HOUR_S
    start = current - HISTORY_HOURS * HOUR_S
    return {
        category: holt_winters(series, horizon, season)
        for category, series in hourly_series(aggregates, start, current).items()
        if any(series)
    }
