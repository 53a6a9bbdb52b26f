"""What `vsm-mcp up` tells its operator after the banner: units changing state and algedonic alerts.

One line each on stderr (stdout stays free), as a person reads it or, with
``--log-json``, as one JSON object a line for a log shipper:

    09:12:03 unit time: starting -> ready (2 tools)
    09:12:04 unit gh: starting -> failed: not started: server 'gh' refers to secret 'github', not set: ...
    09:12:04 ALERT high pain unit:gh secret_missing: server 'gh' refers to secret 'github', not set: ...

Read from the fleet's status and the stored alerts once a second: what the
operator would otherwise have to poll with ``vsm-mcp status``. Alerts stored
before ``up`` started are not repeated; a server-written detail is stripped of
terminal controls.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import anyio

from vsm_mcp.core.messages import AlgedonicAlert
from vsm_mcp.fleet.logfile import printable
from vsm_mcp.runtime import Runtime

#: How often the fleet and the alerts are looked at: a change shows within a second.
WATCH_INTERVAL_S = 1.0
#: Alerts read per look (more than the channel lets through in a second).
ALERTS_PER_LOOK = 50


def _alert_key(alert: AlgedonicAlert) -> tuple[str, str, float, int]:
    return (alert.source, alert.kind, alert.last_at, alert.count)


class EventLines:
    """Turns fleet states and alerts into lines; remembers what it has said."""

    def __init__(self, *, as_json: bool, out: TextIO, clock: Callable[[], float] = time.time) -> None:
        self._as_json = as_json
        self._out = out
        self._clock = clock
        self._states: dict[str, str] = {}
        self._seen: set[tuple[str, str, float, int]] = set()

    def mark_seen(self, alerts: list[AlgedonicAlert]) -> None:
        """Alerts that are old news (stored before ``up`` started)."""
        self._seen |= {_alert_key(a) for a in alerts}

    def fleet(self, status: list[dict[str, Any]]) -> None:
        """Say every unit whose state changed since the last look (and every unit that left)."""
        now = {str(u["name"]): u for u in status}
        for name, unit in now.items():
            before, state = self._states.get(name), str(unit.get("state"))
            if before == state:
                continue
            self._states[name] = state
            detail = ""
            if state == "ready":
                detail = f"{unit.get('tools', 0)} tools"
            elif state == "failed" and unit.get("last_error"):
                detail = str(unit["last_error"])
            self._emit(
                {"event": "unit", "unit": name, "from": before, "state": state, "detail": detail},
                f"unit {name}: {before or 'new'} -> {state}"
                + (f" ({detail})" if state == "ready" else "")
                + (f": {detail}" if state == "failed" and detail else ""),
            )
        for name in [n for n in self._states if n not in now]:
            del self._states[name]
            self._emit({"event": "unit", "unit": name, "state": "removed"}, f"unit {name}: removed")

    def alerts(self, alerts: list[AlgedonicAlert]) -> None:
        """Say every alert not said before, oldest first."""
        for alert in sorted(alerts, key=lambda a: a.last_at):
            key = _alert_key(alert)
            if key in self._seen:
                continue
            self._seen.add(key)
            count = f" (x{alert.count})" if alert.count > 1 else ""
            self._emit(
                {
                    "event": "alert",
                    "source": alert.source,
                    "kind": alert.kind,
                    "valence": alert.valence.value,
                    "severity": alert.severity.name.lower(),
                    "count": alert.count,
                    "detail": alert.detail,
                },
                f"ALERT {alert.severity.name} {alert.valence.value} {alert.source} {alert.kind}{count}: "
                f"{alert.detail}",
            )

    def _emit(self, data: dict[str, Any], text: str) -> None:
        at = self._clock()
        if self._as_json:
            line = json.dumps({"at": round(at, 3), **data})
        else:
            line = f"{time.strftime('%H:%M:%S', time.localtime(at))} {printable(text)}"
        print(line, file=self._out, flush=True)


async def report_events(runtime: Runtime, *, as_json: bool = False, out: TextIO | None = None) -> None:
    """Print the lines of `EventLines` until cancelled (the caller's task group owns this)."""
    lines = EventLines(as_json=as_json, out=out or sys.stderr)
    lines.mark_seen(await runtime.store.alerts(ALERTS_PER_LOOK))
    while True:
        lines.fleet(runtime.fleet.status())
        lines.alerts(await runtime.store.alerts(ALERTS_PER_LOOK))
        await anyio.sleep(WATCH_INTERVAL_S)  # a display cadence, not a wait for an event
