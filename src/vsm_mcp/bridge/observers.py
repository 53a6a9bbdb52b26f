"""Observers of the fleet's tool calls: S1's accounting and the outcome ledger.

Each is a `vsm_mcp.fleet.fleet.CallObserver` registered on the fleet, so every
tool call that ends (express lane or full path) reaches them once, whichever
way it took. Invariants:

* `S1Reporter`: the calls that end within `REPORT_WINDOW_S` of the first reach
  S1 as one `CallsCompleted` (one wake-up of S1 counts many calls, whatever
  the load); what is pending when the fleet stops is sent then; a bus already
  closed (the systems stopped first) drops them, since nobody counts any more;
* `OutcomeRecorder`: each call is one outcome of (the catalog server the unit
  was acquired as, else the unit's own name; the unit's demand category, else
  the tool's public name) in the ledger, and one of (that server, the tool's
  own key ``tool:<name>``) for routing (`bridge.routing`); ``dirty`` says the
  ledger has news to save.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from contextlib import suppress

from vsm_mcp.bridge import followup
from vsm_mcp.core.messages import Decision
from vsm_mcp.discovery.outcomes import OutcomeLedger, tool_key
from vsm_mcp.errors import BusClosedError
from vsm_mcp.fleet.fleet import CallEnded
from vsm_mcp.fleet.unit import Unit
from vsm_mcp.vsm.events import CallCompleted, CallsCompleted
from vsm_mcp.vsm.viable import ViableSystem

#: Calls that end within this of the first are reported to S1 together.
REPORT_WINDOW_S = 0.02


class S1Reporter:
    """Reports ended calls to S1 in batches (see the module docstring)."""

    def __init__(self, system: ViableSystem) -> None:
        self.system = system
        self._finished: list[CallCompleted] = []
        self._timer: asyncio.TimerHandle | None = None

    def call_ended(self, call: CallEnded) -> None:
        if not self._finished:
            self._timer = asyncio.get_running_loop().call_later(REPORT_WINDOW_S, self._report)
        route = call.route
        self._finished.append(
            CallCompleted(route.unit, route.name, call.ok, call.elapsed_s, time.time(), call.error)
        )

    def fleet_stopped(self) -> None:
        self._report()

    def _report(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._finished:
            return
        batch, self._finished = self._finished, []
        with suppress(BusClosedError):  # the systems stopped first: nobody is counting any more
            self.system.bus.offer("s1", CallsCompleted(tuple(batch)), sender="fleet")


class OutcomeRecorder:
    """Records every ended call in the outcome ledger (see the module docstring)."""

    def __init__(self, ledger: OutcomeLedger, units: Callable[[], Mapping[str, Unit]]) -> None:
        self.ledger = ledger
        self._units = units
        #: unit name -> the catalog server it was acquired as (units added by hand keep their own name)
        self.catalog_names: dict[str, str] = {}
        #: The ledger has outcomes not yet saved.
        self.dirty = False

    def call_ended(self, call: CallEnded) -> None:
        route = call.route
        unit = self._units().get(route.unit)
        category = unit.spec.category if unit is not None and unit.spec.category else route.public
        server = self.catalog_names.get(route.unit, route.unit)
        self.ledger.record(server, category, call.ok)
        self.ledger.record(server, tool_key(route.name), call.ok)  # the tool's own record (routing)
        self.dirty = True

    def stamp(self, decision: Decision) -> Decision:
        """``decision`` about a unit, with its server's tally now (`bridge.followup.stamp`)."""
        return followup.stamp(
            decision, self.ledger, self.catalog_names.get(decision.subject, decision.subject)
        )

    def fleet_stopped(self) -> None:
        """Nothing pending: the ledger is saved by whoever holds the store."""
