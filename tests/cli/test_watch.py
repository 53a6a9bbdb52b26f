"""`up`'s event lines: unit state changes and new alerts, as text or JSON, never repeated."""

from __future__ import annotations

import io
import json

from vsm_mcp.cli.watch import EventLines
from vsm_mcp.core.messages import AlgedonicAlert, Severity, Valence

AT = 1_700_000_000.0


def _alert(kind: str, detail: str, last_at: float = AT) -> AlgedonicAlert:
    return AlgedonicAlert("unit:gh", kind, Valence.PAIN, Severity.HIGH, 1, last_at, last_at, detail)


def test_state_changes_and_new_alerts_become_one_line_each_and_old_ones_are_not_repeated() -> None:
    out = io.StringIO()
    lines = EventLines(as_json=True, out=out, clock=lambda: AT)
    lines.mark_seen([_alert("crash_loop", "old news", AT - 100)])
    lines.fleet([{"name": "time", "state": "starting", "tools": 0}])
    lines.fleet([{"name": "time", "state": "ready", "tools": 2}])
    lines.fleet([{"name": "time", "state": "ready", "tools": 2}])  # no change: nothing said
    lines.alerts([_alert("crash_loop", "old news", AT - 100), _alert("secret_missing", "not set\x1b[2J")])
    lines.alerts([_alert("secret_missing", "not set\x1b[2J")])  # said once
    lines.fleet([])
    said = [json.loads(line) for line in out.getvalue().splitlines()]
    assert said == [
        {"at": AT, "event": "unit", "unit": "time", "from": None, "state": "starting", "detail": ""},
        {
            "at": AT,
            "event": "unit",
            "unit": "time",
            "from": "starting",
            "state": "ready",
            "detail": "2 tools",
        },
        {
            "at": AT,
            "event": "alert",
            "source": "unit:gh",
            "kind": "secret_missing",
            "valence": "pain",
            "severity": "high",
            "count": 1,
            "detail": "not set\x1b[2J",
        },
        {"at": AT, "event": "unit", "unit": "time", "state": "removed"},
    ]


def test_text_lines_are_for_a_person_and_free_of_terminal_controls() -> None:
    out = io.StringIO()
    lines = EventLines(as_json=False, out=out, clock=lambda: AT)
    lines.fleet([{"name": "gh", "state": "failed", "last_error": "not started: secret 'github' not set"}])
    lines.alerts([_alert("secret_missing", "secret\x1b]0;owned\x07 not set")])
    first, second = out.getvalue().splitlines()
    assert first.endswith(" unit gh: new -> failed: not started: secret 'github' not set")
    assert second.endswith(" ALERT HIGH pain unit:gh secret_missing: secret not set")
    assert "\x1b" not in out.getvalue()
