"""The fleet: every S1 unit, their routing table, and what happens to failed calls.

`Fleet` is an async context manager owning one task group; each unit's
supervisor runs there in its own cancel scope, so removing a unit stops
exactly that unit (and kills its process group) and leaving the fleet stops
all of them. Invariants:

* unit names are unique; `routes` is rebuilt (pure) after every change of a
  unit's catalog or of the fleet's membership, and the listener is told once
  per rebuild that changed anything;
* a call that fails for a reason that is the unit's (not the server's own
  error answer) is written to the dead-letter sink with its arguments and the
  number of attempts, so it can be listed and replayed;
* every tool call is one `ToolCall` through `call`, ended with one `Outcome`
  that every observer hears about (`CallObserver`); whether it travels on the
  unit's express lane or its SDK session is the unit's choice, and the fleet
  counts, reports and dead-letters it the same either way;
* every stdio unit is launched through the fleet's one `Confinement` (one
  sandbox policy, the host probed once), so sandboxing is a property of the
  server applied at each start, never baked into its spec;
* a quarantined unit (its tool listing differs from its pinned definitions,
  `vsm_mcp.fleet.definitions`) is left out of the routes before they are
  built, and calls of it are refused naming the quarantine and the command
  that lifts it; `lift_approved` ends a quarantine an operator approved.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import anyio
import anyio.abc
import mcp_types as types
from mcp.shared.exceptions import MCPError

from vsm_mcp.core.messages import AlgedonicSignal, DeadLetter, Decision
from vsm_mcp.errors import ConfigError, UnitError, UnitUnavailableError, UnknownUnitError
from vsm_mcp.fleet.admission import Slot
from vsm_mcp.fleet.call import Done, Outcome, ProgressSink, ToolCall, unwrap
from vsm_mcp.fleet.confinement import Confinement, SandboxPolicy
from vsm_mcp.fleet.definitions import DefinitionBook
from vsm_mcp.fleet.express import LaneOutcome
from vsm_mcp.fleet.pins import PinBook
from vsm_mcp.fleet.quarantine import admitted, publishes, quarantined
from vsm_mcp.fleet.routing import Route, RoutingTable, namespace_clash
from vsm_mcp.fleet.secrets import SecretSource
from vsm_mcp.fleet.spec import NAMESPACE_SEPARATOR, ServerSpec
from vsm_mcp.fleet.tracing import CallTracer
from vsm_mcp.fleet.unit import ProgressFn, Unit, forwarded_params
from vsm_mcp.vsm.events import UnitState
from vsm_mcp.vsm.notices import Notices

SignalSink = Callable[[AlgedonicSignal], Awaitable[None]]
#: Where the units' supervision decisions go (the runtime stores them with what they predicted).
DecisionSink = Callable[[Decision], Awaitable[None]]
#: A unit being removed gets this long to stop (its process group is killed within it).
UNIT_STOP_TIMEOUT_S = 5.0


class DeadLetterSink(Protocol):
    """Where failed calls go (the Store implements it)."""

    async def put_dead_letter(self, letter: DeadLetter) -> int: ...


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A tool call through the fleet ended (express lane or full path): for `CallObserver`s."""

    route: Route
    ok: bool
    elapsed_s: float
    #: Why it failed ("" when it did not): the unit's failure, the server's error, or ``isError``.
    error: str


class CallObserver(Protocol):
    """Hears every tool call the fleet ends (S1's accounting, the outcome ledger): never blocks."""

    def call_ended(self, call: CallEnded) -> None: ...

    def fleet_stopped(self) -> None:
        """The fleet stopped: no call ends after this (flush what is pending)."""
        ...


class FleetListener(Protocol):
    """The upstream face (gateway): told about changes, asked to relay server requests."""

    async def fleet_changed(self) -> None:
        """The routing table changed (send list_changed upstream)."""
        ...

    async def unit_notification(self, unit: str, notification: types.ServerNotification) -> None: ...

    async def unit_request(
        self, unit: str, request: types.CreateMessageRequest | types.ElicitRequest | types.ListRootsRequest
    ) -> Any: ...


class Fleet:
    """The downstream servers behind the gateway."""

    def __init__(
        self,
        specs: Iterable[ServerSpec] = (),
        *,
        dead_letters: DeadLetterSink | None = None,
        signals: SignalSink | None = None,
        decisions: DecisionSink | None = None,
        reserved_names: Iterable[str] = (),
        log_dir: Path | None = None,
        sandbox: SandboxPolicy | None = None,
        secrets: SecretSource | None = None,
        pins: PinBook | None = None,
        definitions: DefinitionBook | None = None,
        rand: Callable[[], float] | None = None,
        notices: Notices | None = None,
        observers: Iterable[CallObserver] = (),
    ) -> None:
        """``pins``: where launch pins are kept (`vsm_mcp.fleet.pins`); None: launches are not pinned.
        ``definitions``: where tool definition pins are kept (`vsm_mcp.fleet.definitions`); None: not pinned.
        ``rand``: the one random source of every unit (back-off and retry jitter), uniform in [0, 1);
        None: a private `random.Random` (the runtime passes its one seedable source).
        ``notices``: where unit state changes and capability changes are published (`vsm.notices`)."""
        self.notices = notices
        #: Set by the runtime when traces are exported: each call is a span (`fleet.tracing`).
        self.tracer: CallTracer | None = None
        #: Told of every tool call that ends (`CallObserver`); the runtime registers S1 and the ledger.
        self.observers: list[CallObserver] = list(observers)
        self._rand = rand if rand is not None else random.Random().random
        self._initial = [s for s in specs if s.enabled]
        self._secrets = secrets
        self._pins = pins
        self._definitions = definitions
        self._dead_letters = dead_letters
        self._signals = signals
        self.decisions = decisions
        self._reserved = frozenset(reserved_names)
        self.log_dir = log_dir
        self.confinement = Confinement(sandbox)
        self._units: dict[str, Unit] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.routes = RoutingTable()
        self.listener: FleetListener | None = None
        self.dead_lettered = 0

    # -- lifecycle -----------------------------------------------------------
    async def __aenter__(self) -> Fleet:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        for spec in self._initial:
            await self.add(spec)
        return self

    async def settled(self, within_s: float) -> None:
        """Return once every unit the fleet started with is through its first start (ready, or
        that start failed), or after ``within_s``; at once from then on."""
        with anyio.move_on_after(within_s):
            for spec in self._initial:
                unit = self._units.get(spec.name)
                if unit is not None:
                    await unit.first_start.wait()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            for observer in self.observers:
                observer.fleet_stopped()  # calls that ended while the fleet stopped count too

    @property
    def units(self) -> Mapping[str, Unit]:
        return self._units

    def unit(self, name: str) -> Unit:
        """The unit called ``name``.

        Raises:
            UnknownUnitError: there is none.
        """
        try:
            return self._units[name]
        except KeyError:
            raise UnknownUnitError(f"no server named {name!r} in the fleet") from None

    async def add(self, spec: ServerSpec) -> Unit:
        """Start supervising ``spec``; returns at once (the unit connects in the background).

        Raises:
            ConfigError: a unit of that name exists.
        """
        if self._tg is None:
            raise RuntimeError("Fleet.add needs the fleet to be running (async with Fleet(...))")
        if spec.name in self._units:
            raise ConfigError(f"a server named {spec.name!r} is already in the fleet")
        clash = namespace_clash(spec, [unit.spec for unit in self._units.values()])
        if clash is not None:
            raise ConfigError(clash)
        log_path = None
        if self.log_dir is not None and spec.transport == "stdio":
            self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.log_dir.chmod(0o700)  # the servers' names and logs are the gateway user's alone
            log_path = self.log_dir / f"{spec.name}.log"
        unit = Unit(
            spec,
            self,
            log_path=log_path,
            confinement=self.confinement,
            secrets=self._secrets,
            pins=self._pins,
            definitions=self._definitions,
            rand=self._rand,
            on_state=self._unit_state,
        )
        self._units[spec.name] = unit
        await self._tg.start(self._supervise, unit)
        return unit

    def _unit_state(self, unit: Unit, previous: UnitState | None) -> None:
        """A unit changed state: published as ``unit.state`` (and ``unit.ready`` / ``unit.failed``)."""
        if self.notices is None:
            return
        state = unit.state
        self.notices.publish(
            "unit.state", unit.name, state=state.value, previous=previous.value if previous else None
        )
        if state is UnitState.READY:
            self.notices.publish("unit.ready", unit.name)
        elif state is UnitState.FAILED:
            self.notices.publish("unit.failed", unit.name, error=unit.stats.last_error)

    async def _supervise(self, unit: Unit, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.CancelScope() as scope:
            self._scopes[unit.name] = scope
            task_status.started()
            await unit.run()

    async def remove(self, name: str) -> None:
        """Stop ``name`` (its process group is killed) and drop its tools.

        Raises:
            UnknownUnitError: there is no such unit.
        """
        unit = self.unit(name)
        scope = self._scopes.pop(name)
        scope.cancel()
        with anyio.move_on_after(UNIT_STOP_TIMEOUT_S, shield=True):
            await unit.stopped.wait()
        del self._units[name]
        await self._rebuild()

    def restart(self, name: str) -> None:
        """Restart ``name`` now (also lifts a crash-loop FAILED state)."""
        self.unit(name).request_restart()

    async def lift_approved(self) -> None:
        """Lift the quarantine of every unit whose new definitions an operator approved since."""
        for unit in list(self._units.values()):
            await unit.lift_if_approved()

    async def wait_ready(self, name: str) -> Unit:
        """Wait until ``name`` has a live session (bound it with ``anyio.fail_after``)."""
        unit = self.unit(name)
        await unit.wait_ready()
        return unit

    # -- calls -------------------------------------------------------------
    def start(self, call: ToolCall, done: Done) -> None:
        """The one way a tool call goes through the fleet: route it, let its unit send it (on
        its express lane or its SDK session: the unit's choice), retry it there if its tool is
        safe to retry, dead-letter it if the unit failed it, tell every observer how it ended.

        ``done`` gets the `Outcome` once, from a callback or a task of the fleet's, before the
        observers hear of it. A call its caller cancels through ``call.control`` ends with no
        outcome and is not observed; the server is told. Nothing here waits: a plain call the
        lane takes costs no task. A unit with ``max_concurrency`` admits its calls through its
        door (`vsm_mcp.fleet.admission`): over the limit a call waits there, clients taking turns.

        Raises:
            KeyError: no tool is published as ``call.public``.
        """
        route = self.routes.tools[call.public]
        unit = self._units.get(route.unit)
        door = unit.door if unit is not None else None
        if door is None:
            self._dispatch(route, unit, call, done, None)
            return
        withdraw = door.admit(call.client, lambda slot: self._dispatch(route, unit, call, done, slot))
        if withdraw is not None:  # waiting at the unit's door: a cancel takes it out of the queue
            call.control.attach(withdraw)

    def _dispatch(
        self, route: Route, unit: Unit | None, call: ToolCall, done: Done, slot: Slot | None
    ) -> None:
        """Send ``call`` on its way (`start`), holding ``slot`` of its unit's door, if any, until it ends."""
        params = call.params
        wire = (
            forwarded_params({**params, "name": route.name, "arguments": params.get("arguments") or {}}) or {}
        )
        started = time.perf_counter()
        if slot is not None:
            call.control.also(slot.release)
        tracer = self.tracer
        token: object = None
        end_span: Callable[[bool, str], None] | None = None
        if tracer is not None:
            token, end_span = tracer.begin(route, wire)
            call.control.also(lambda: end_span(False, "cancelled") if end_span is not None else None)

        def finish(outcome: Outcome, ok: bool, reason: str) -> None:
            done(outcome)  # answer first, account after
            if end_span is not None:
                end_span(ok, reason)
            if slot is not None:
                slot.release()
            self._completed(route, ok, time.perf_counter() - started, reason)

        def on_lane(answer: LaneOutcome) -> None:
            if isinstance(answer, types.JSONRPCResponse):
                ok = not answer.result.get("isError", False)
                finish(answer.result, ok, "" if ok else "tool returned isError")
            elif isinstance(answer, types.JSONRPCError):
                finish(answer.error, False, f"MCPError: {answer.error.message}")
            else:  # the unit failed it there: its session takes it over as the failed first attempt
                self._through_session(route, wire, call, finish, answer)

        try:
            if unit is not None and unit.quarantine is None:
                progress, progress_token = call.progress, call.token
                if unit.lane_call(
                    wire, on_lane, progress=progress, token=progress_token, control=call.control
                ):
                    return
            self._through_session(route, wire, call, finish, None)
        finally:
            if tracer is not None:
                tracer.detach(token)

    async def call(self, call: ToolCall) -> Outcome:
        """`start` ``call`` and wait for its outcome; a caller cancelled while waiting cancels
        the call (the server is told).

        Raises:
            KeyError: no tool is published as ``call.public``.
        """
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def done(outcome: Outcome) -> None:
            if not answer.done():
                answer.set_result(outcome)

        self.start(call, done)
        try:
            return await answer
        except asyncio.CancelledError:
            call.control.cancel(call.control.reason)
            raise

    def _through_session(
        self,
        route: Route,
        wire: dict[str, Any],
        call: ToolCall,
        finish: Callable[[Outcome, bool, str], None],
        failed: UnitError | None,
    ) -> None:
        """Run the call through its unit's SDK session in a task of the fleet's."""
        tg = self._tg
        try:
            if tg is None:
                raise RuntimeError("the fleet has stopped")
            tg.start_soon(self._session_call, route, wire, call, finish, failed)
        except RuntimeError:  # the fleet is stopping: the call ends now
            error = failed or UnitUnavailableError(f"server {route.unit!r} is stopping with the gateway")
            finish(error, False, f"{type(error).__name__}: {error}")

    async def _session_call(
        self,
        route: Route,
        wire: dict[str, Any],
        call: ToolCall,
        finish: Callable[[Outcome, bool, str], None],
        failed: UnitError | None,
    ) -> None:
        with anyio.CancelScope() as scope:
            call.control.attach(scope.cancel)
            outcome: Outcome
            try:
                if failed is not None:
                    await self.unit(route.unit).lane_failed(failed)
                outcome = await self._call_unit(
                    route.unit,
                    route.name,
                    wire,
                    retry_safe=route.retry_safe,
                    progress=call.progress,
                    token=call.token,
                    failed=failed,
                )
            except MCPError as exc:
                outcome, ok, reason = exc.error, False, f"MCPError: {exc.error.message}"
            except UnitError as exc:
                outcome, ok, reason = exc, False, f"{type(exc).__name__}: {exc}"
            else:
                ok = not outcome.get("isError", False)
                reason = "" if ok else "tool returned isError"
            finish(outcome, ok, reason)

    async def call_tool(self, public: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """`call` of a plain call of ``public`` with ``arguments``; its result.

        Raises:
            KeyError: no tool of that name.
            MCPError: the server's own error answer.
            UnitError: the unit failed the call (the call is dead-lettered).
        """
        return unwrap(await self.call(ToolCall.of(public, arguments)))

    def _completed(self, route: Route, ok: bool, elapsed_s: float, error: str) -> None:
        """A tool call through the fleet ended (express lane or full path): every observer hears it."""
        if self.observers:
            ended = CallEnded(route, ok, elapsed_s, error)
            for observer in self.observers:
                observer.call_ended(ended)

    async def call_unit_tool(self, unit: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Call a tool by its downstream name (dead-letter replay); never retried.

        Raises:
            MCPError: the server's own error answer.
            UnitError: the unit failed the call (dead-lettered again).
        """
        return await self._call_unit(unit, tool, {"name": tool, "arguments": arguments}, retry_safe=False)

    async def _call_unit(
        self,
        unit_name: str,
        tool: str,
        wire: dict[str, Any],
        *,
        retry_safe: bool,
        progress: ProgressSink | None = None,
        token: types.ProgressToken | None = None,
        failed: UnitError | None = None,
    ) -> dict[str, Any]:
        unit = admitted(self.unit(unit_name))
        retries_before = unit.stats.retries
        try:
            return await unit.call_tool(
                wire, retry_safe=retry_safe, progress=progress, token=token, failed=failed
            )
        except UnitError as exc:
            attempts = 1 + unit.stats.retries - retries_before  # every attempt after the first is a retry
            await self._dead_letter(unit_name, tool, wire.get("arguments") or {}, str(exc), attempts=attempts)
            raise

    async def forward(
        self,
        unit: str,
        method: str,
        params: dict[str, Any] | None,
        *,
        on_progress: ProgressFn | None = None,
    ) -> dict[str, Any]:
        """Forward a read-only request (resources, prompts, completion, logging) to ``unit``."""
        return await admitted(self.unit(unit)).request(
            method, params, retry_safe=True, on_progress=on_progress
        )

    async def _dead_letter(
        self,
        unit_name: str,
        tool: str,
        arguments: dict[str, Any],
        error: str,
        *,
        attempts: int,
    ) -> None:
        self.dead_lettered += 1
        if self._dead_letters is None:
            return
        letter = DeadLetter(
            at=time.time(),
            unit=unit_name,
            tool=tool,
            arguments=arguments,
            error=error,
            attempts=attempts,
        )
        with anyio.CancelScope(shield=True):
            await self._dead_letters.put_dead_letter(letter)

    # -- observer of units -------------------------------------------------------
    async def unit_catalog_changed(self, unit: Unit) -> None:
        await self._rebuild()

    async def unit_notification(self, unit: Unit, notification: types.ServerNotification) -> None:
        if self.listener is not None:
            await self.listener.unit_notification(unit.name, notification)

    async def unit_request(
        self, unit: Unit, request: types.CreateMessageRequest | types.ElicitRequest | types.ListRootsRequest
    ) -> Any:
        if self.listener is None:
            return types.ErrorData(
                code=types.INVALID_REQUEST, message="no client is connected to the gateway"
            )
        return await self.listener.unit_request(unit.name, request)

    async def unit_signal(self, signal: AlgedonicSignal) -> None:
        if self._signals is not None:
            await self._signals(signal)

    async def unit_decided(self, unit: Unit, decision: Decision) -> None:
        if self.decisions is not None:
            await self.decisions(decision)

    async def _rebuild(self) -> None:
        table = RoutingTable.build(
            ((u.spec, u.catalog) for u in self._units.values() if u.quarantine is None),
            reserved=self._reserved,
        )
        changed = (
            table.tools.keys() != self.routes.tools.keys()
            or [r.definition for r in table.tools.values()]
            != [r.definition for r in self.routes.tools.values()]
            or table.prompts.keys() != self.routes.prompts.keys()
            or table.resource_list != self.routes.resource_list
            or table.template_list != self.routes.template_list
        )
        self.routes = table
        if changed and self.notices is not None:
            self.notices.publish("capability.changed", "fleet", tools=len(table.tools))
        if changed and self.listener is not None:
            await self.listener.fleet_changed()

    def why_unrouted(self, public_name: str) -> str | None:
        """Why ``public_name`` has no route when it names a tool of a unit that is not serving
        (``server 'time' is failed: not started: ...``); None when no unit's namespace matches."""
        for unit in self._units.values():
            if unit.quarantine is not None and publishes(unit, public_name):
                return quarantined(unit)
            prefix = unit.spec.prefix
            if not prefix or not public_name.startswith(prefix + NAMESPACE_SEPARATOR):
                continue
            if unit.state is UnitState.READY:
                return None  # it serves, and has no such tool
            why = unit.sandbox_refusal or unit.missing_secret or unit.stats.last_error or "starting"
            return f"server {unit.name!r} is {unit.state.value}: {why}"
        return None

    # -- status ------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """One dict per unit with its measured state (for vsm_status and the CLI)."""
        out: list[dict[str, Any]] = []
        for unit in sorted(self._units.values(), key=lambda u: u.name):
            s = unit.stats
            ok = s.calls - s.errors
            out.append(
                {
                    "name": unit.name,
                    "state": unit.state.value,
                    "transport": unit.spec.transport,
                    "target": unit.spec.describe(),
                    "pid": unit.pid,
                    "sandbox": unit.sandbox,
                    "limits": unit.limits,
                    "tools": len(unit.catalog.tools),
                    "calls": s.calls,
                    "errors": s.errors,
                    "timeouts": s.timeouts,
                    "restarts": s.restarts,
                    "held": unit.held_until is not None,
                    "holds": unit.holds,
                    "retries": s.retries,
                    "breaker": unit.breaker.state.value,
                    "mean_latency_ms": round(s.latency_total_s / ok * 1000, 3) if ok > 0 else None,
                    "last_ping_ms": round(s.last_ping_ms, 3) if s.last_ping_ms is not None else None,
                    "last_error": s.last_error,
                    "quarantine": unit.quarantine.reason if unit.quarantine is not None else None,
                    "door": _door(unit),
                }
            )
        return out


def _door(unit: Unit) -> dict[str, Any] | None:
    """The unit's S2 door (`vsm_mcp.fleet.admission`) as counted, or None without a limit."""
    door = unit.door
    if door is None:
        return None
    d = door.stats
    return {
        "limit": door.limit,
        "in_flight": d.in_flight,
        "max_in_flight": d.max_in_flight,
        "queued": d.queued,
        "max_queued": d.max_queued,
        "waited": d.waited,
        "waited_s": round(d.waited_s, 6),
    }
