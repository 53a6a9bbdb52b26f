"""One System 1 unit: a downstream MCP server behind one persistent, supervised session.

Invariants:

* At most one `ClientSession` per unit exists at a time, and every call of the
  unit goes through it (never a session per call).
* `run` is the unit's supervisor: connect (spawn or HTTP), handshake, list the
  catalog, then watch for death (stdout EOF), a failed health ping (S3*), or a
  restart request; on any of them the session is torn down (the process group
  killed) and, after an exponential back-off with jitter, started again.
  A server that goes down on its own after it was serving sends ``server_lost``
  pain (MEDIUM) each time; ``crash_loop_restarts`` restarts within ``crash_loop_window_s`` mark the unit
  FAILED and send algedonic pain; it then waits for an operator restart.
* A stdio server is launched as its `Confinement` plans it, at every start.
  When its sandbox policy forbids running without bubblewrap and there is
  none, nothing is started: the unit goes FAILED at once with the reason and
  sends algedonic pain (never a silent unsandboxed run); falling back to an
  unsandboxed run (``prefer``) sends high-severity pain once per unit. A launch whose
  files differ from those pinned at install or first start
  (`vsm_mcp.fleet.pins`) is refused the same way (``launcher_changed``, HIGH).
* The catalog survives a restart: it is replaced (and observers told) only
  when a fresh listing differs, so a quick restart does not make clients'
  tool lists flap.
* Every tool listing (at each start, on ``list_changed``, at each S3* audit:
  `audit_definitions`) is compared with the server's definition pin
  (`vsm_mcp.fleet.definitions`) before anyone sees it; a change quarantines
  the unit (`quarantine`; the fleet routes none of its tools) and sends
  ``definitions_changed`` pain (HIGH) once; only an operator's approval lifts
  it (`lift_if_approved`).
* A call waits at most `READY_WAIT_S` for a (re)starting unit, is bounded by
  an idle timeout that every progress notification resets and by an absolute
  timeout, and is refused while the circuit breaker is open.
* Progress notifications a server sends before its result reach the caller
  before that result (the result waits up to `PROGRESS_RELAY_WAIT_S` for
  their relay), whatever order the event loop runs the relays in.
* A stdio session also carries an `ExpressLane`: `lane_call` sends a plain
  tool call and takes its answer on the wire itself, under the same breaker,
  timeouts and counters; it ends with the session, failing the calls still
  under way, which `call_tool` (the SDK's session) then takes over as failed
  attempts.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.lowlevel
import mcp_types as types
from mcp import ClientSession
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from pydantic import BaseModel, ConfigDict, ValidationError

from vsm_mcp.core import nesting
from vsm_mcp.core.breaker import BreakerState, CircuitBreaker
from vsm_mcp.core.intensity import RestartIntensity
from vsm_mcp.core.messages import AlgedonicSignal, Decision, Severity, Valence, unit_source
from vsm_mcp.errors import (
    CallTimeoutError,
    LauncherChangedError,
    ListingTooLargeError,
    MissingSecretError,
    SandboxError,
    SandboxUnavailableError,
    UnitError,
    UnitUnavailableError,
)
from vsm_mcp.fleet import definitions
from vsm_mcp.fleet.admission import Admission
from vsm_mcp.fleet.call import PLAIN_CALL_PARAMS, CallControl, ProgressSink
from vsm_mcp.fleet.confinement import Confined, Confinement
from vsm_mcp.fleet.connection import Connection, SessionHandlers, connect
from vsm_mcp.fleet.definitions import DefinitionBook, Quarantine
from vsm_mcp.fleet.express import ExpressLane, LaneOutcome
from vsm_mcp.fleet.pins import PinBook
from vsm_mcp.fleet.pins import check as check_pin
from vsm_mcp.fleet.process import group_cpu_seconds
from vsm_mcp.fleet.resilience import Backoff
from vsm_mcp.fleet.secrets import SecretSource
from vsm_mcp.fleet.secrets import resolve as resolve_secrets
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.wire import LineReader, LineWriter
from vsm_mcp.sandbox.cgroups import CgroupUsage
from vsm_mcp.vsm.events import UnitState

#: After a call times out, the window in which the server's CPU use is measured: long enough for a
#: server to wind its cancelled work down, short enough that a runaway burns seconds, not hours.
RUNAWAY_GRACE_S = 5.0
#: A server that used more than this share of a core through that window is still burning: restarted.
RUNAWAY_CPU_SHARE = 0.5
#: Every this many health rounds (ping_interval_s each: 30 s by default) a unit's tools are
#: listed afresh and checked against their pin, for every unit (S3* samples at random besides).
DEFINITIONS_EVERY_ROUNDS = 3
#: How long a stopping unit may take to report the limits its server hit last.
FINAL_SIGNAL_S = 1.0
#: How many of a failed server's last stderr lines (and characters of them) its error quotes.
STDERR_HINT_LINES = 3
STDERR_HINT_CHARS = 300
#: How long a call waits for a starting or restarting unit; within the 5 s a client tolerates.
READY_WAIT_S = 5.0
#: How `_run_once` says the unit was parked (stopped by S3 with its tools kept listed).
PARKED_PREFIX = "parked"
#: Why a start ended when an operator (or S3) asked for a restart.
RESTART_REQUESTED = "restart requested"
#: The pain kind of a server that went down while serving (MEDIUM; a crash loop is HIGH).
SERVER_LOST = "server_lost"
#: Pause before retrying a safe call, so a dying unit is seen dead and not called again at once.
RETRY_PAUSE_S = 0.05

#: What one listing (tools, resources, resource templates or prompts, over all its pages) of a
#: server may hold: past either bound the start fails and says so. A hostile server could
#: otherwise fill the gateway's memory, and its definition pin the database.
MAX_LISTED_ITEMS = 10_000
MAX_LISTED_BYTES = 16 * 1024 * 1024

#: Longest a result waits for the relay of progress notifications sent before it (a client that
#: does not take a notification this long gets the result anyway).
PROGRESS_RELAY_WAIT_S = 2.0

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


class _Relays:
    """The progress notifications of one call being relayed to its caller right now."""

    __slots__ = ("active", "done")

    def __init__(self) -> None:
        self.active = 0
        self.done: anyio.Event | None = None

    async def run(self, relay: ProgressFn, progress: float, total: float | None, message: str | None) -> None:
        self.active += 1
        try:
            await relay(progress, total, message)
        finally:
            self.active -= 1
            if not self.active and self.done is not None:
                self.done.set()

    async def drain(self) -> None:
        """Return once no relay is under way (at most `PROGRESS_RELAY_WAIT_S`)."""
        if self.active:
            self.done = anyio.Event()
            with anyio.move_on_after(PROGRESS_RELAY_WAIT_S):
                await self.done.wait()


class _Passthrough(BaseModel):
    """Any result, kept key for key: the gateway forwards what the server said."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True, slots=True)
class UnitCatalog:
    """What a unit offers, as its server listed it (wire dicts, passed through verbatim)."""

    tools: tuple[dict[str, Any], ...] = ()
    resources: tuple[dict[str, Any], ...] = ()
    templates: tuple[dict[str, Any], ...] = ()
    prompts: tuple[dict[str, Any], ...] = ()
    capabilities: dict[str, Any] = field(default_factory=dict)
    server_info: dict[str, Any] = field(default_factory=dict)
    #: The server is a VSM-MCP (`core.nesting`): its own tools and ``vsm://`` resources were
    #: left out above, and its status is read as the unit's own S1..S5 (`bridge.nesting`).
    viable: bool = False


@dataclass(slots=True)
class UnitStats:
    """Counters measured from real calls of one unit."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    restarts: int = 0
    retries: int = 0
    latency_total_s: float = 0.0
    last_ping_ms: float | None = None
    last_error: str = ""


class UnitObserver(Protocol):
    """Who hears from a unit: the fleet (and through it the gateway and the VSM)."""

    async def unit_catalog_changed(self, unit: Unit) -> None:
        """The unit's tools, resources or prompts changed."""
        ...

    async def unit_notification(self, unit: Unit, notification: types.ServerNotification) -> None:
        """The downstream server sent a notification (log message, resource updated, ...)."""
        ...

    async def unit_request(
        self, unit: Unit, request: types.CreateMessageRequest | types.ElicitRequest | types.ListRootsRequest
    ) -> Any:
        """The downstream server asks its client (sampling, elicitation, roots); return result or ErrorData."""
        ...

    async def unit_signal(self, signal: AlgedonicSignal) -> None:
        """Algedonic pain or pleasure from this unit."""
        ...

    async def unit_decided(self, unit: Unit, decision: Decision) -> None:
        """The unit's supervisor chose: restart after a back-off, hold a flapping server, stop a
        crash loop or a runaway, withhold changed tools (see `Unit` on supervision decisions)."""
        ...


def _raw(result: _Passthrough) -> dict[str, Any]:
    return dict(result.model_extra or {})


#: `_meta` keys of this prefix are the upstream hop's protocol envelope (2026-07-28), never forwarded.
_RESERVED_META_PREFIX = "io.modelcontextprotocol/"


def forwarded_params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The caller's params as they go downstream: unchanged but for the caller's envelope in ``_meta``."""
    meta = params.get("_meta") if params else None
    if params is not None and isinstance(meta, dict):
        kept = {
            k: v for k, v in meta.items() if not k.startswith(_RESERVED_META_PREFIX) and k != "progressToken"
        }
        params = {**params, "_meta": kept} if kept else {k: v for k, v in params.items() if k != "_meta"}
    return params


class Unit:
    """A supervised downstream MCP server; see the module docstring for its rules."""

    _state: UnitState | None

    @property
    def state(self) -> UnitState:
        """Where the unit is in its lifecycle (`UnitState`)."""
        assert self._state is not None  # set in __init__
        return self._state

    @state.setter
    def state(self, new: UnitState) -> None:
        previous = self._state
        self._state = new
        if previous is not new and self._on_state is not None:
            self._on_state(self, previous)

    def __init__(
        self,
        spec: ServerSpec,
        observer: UnitObserver | None = None,
        *,
        log_path: Path | None = None,
        confinement: Confinement | None = None,
        secrets: SecretSource | None = None,
        pins: PinBook | None = None,
        definitions: DefinitionBook | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] | None = None,
        on_state: Callable[[Unit, UnitState | None], None] | None = None,
    ) -> None:
        """``on_state`` hears every change of `state` (with the previous one), synchronously."""
        self._on_state = on_state
        self._state = None
        rand = rand if rand is not None else random.Random().random
        self._rand = rand
        self.spec = spec
        self._secrets = secrets
        self._pins = pins
        self._definitions = definitions
        #: Why the unit's tools are withheld: its listing differs from its pinned definitions.
        self.quarantine: Quarantine | None = None
        #: One listing at a time is reviewed and becomes the catalog (refresh, audit, approval).
        self._listing = anyio.Lock()
        self._observer = observer
        self.log_path = log_path
        self._confinement = confinement or Confinement()
        #: How the current (or last) process was launched; None before the first stdio launch.
        self.confined: Confined | None = None
        #: Why the sandbox policy refused the last launch (the unit is then FAILED).
        self.sandbox_refusal = ""
        #: The algedonic kind of that refusal: ``sandbox_unavailable`` or ``launcher_changed``.
        self._refusal_kind = "sandbox_unavailable"
        #: Which secrets the spec refers to but are not set (the unit is then FAILED).
        self.missing_secret = ""
        self._warned_unsandboxed = False
        self._clock = clock
        self.state = UnitState.STARTING
        self.catalog = UnitCatalog()
        self.stats = UnitStats()
        self.stderr: deque[str] = deque(maxlen=500)
        self.breaker = CircuitBreaker(spec.breaker_failures, spec.breaker_cooldown_s, clock=clock)
        #: S2's door: at most ``max_concurrency`` calls in flight, the rest queued fairly (None: no limit).
        self.door = Admission(spec.max_concurrency, clock=clock) if spec.max_concurrency else None
        self._backoff = Backoff(spec.backoff_initial_s, spec.backoff_max_s, rand=rand)
        self._crash_loop = RestartIntensity(spec.crash_loop_restarts, spec.crash_loop_window_s, clock=clock)
        self._flaps = RestartIntensity(spec.flap_restarts, spec.flap_window_s, clock=clock)
        #: S3's parking: a request to stop with the tools kept listed, and the call that wakes it.
        self._park = anyio.Event()
        self._wake = anyio.Event()
        #: An on-demand unit without a pin parks as soon as its first start has listed its tools.
        self._park_when_listed = False
        #: The current start reached READY (a stop after it that nobody asked for is pain).
        self._served = False
        #: Times the unit was parked; when its last call began or ended (clock), calls under way now.
        self.parks = 0
        self.last_call_at: float | None = None
        self._active = 0
        #: Set while the unit is held after flapping (S2's damping): it starts again at ``held_until``.
        self.held_until: float | None = None
        #: Times the unit was held for flapping.
        self.holds = 0
        #: This (or the last) start's connection, from the handshake on (`fleet.connection`).
        self._conn: Connection | None = None
        #: The connection taking calls: this start's once its tools are reviewed, until it goes.
        self._live: Connection | None = None
        self._ready = anyio.Event()
        self._restart = anyio.Event()
        self._probe_now = anyio.Event()
        #: Set when a call timed out: the runaway watch measures the server's CPU after it.
        self._timed_out = anyio.Event()
        self._refresh = anyio.Event()
        self.ready_since: float | None = None
        self.stopped = anyio.Event()
        #: Set when the current session goes away; a new event per session.
        self.session_lost = anyio.Event()
        #: Set once the first start is over: the unit got ready, or that start failed.
        self.first_start = anyio.Event()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        """The server's process id while a stdio session is up."""
        live = self._live
        return live.child.pid if live is not None and live.child is not None else None

    @property
    def sandbox(self) -> str:
        """How the server runs: ``bwrap, no network``, ``off``, ``UNSANDBOXED (...)``, ``REFUSED: ...``."""
        if self.spec.transport != "stdio":
            return "-"
        if self.sandbox_refusal:
            return f"REFUSED: {self.sandbox_refusal}"
        if self.confined is None:
            return f"not started ({self._confinement.intent(self.spec)})"
        return self.confined.summary

    @property
    def limits(self) -> str:
        """Which resource limits hold for the server (per server by cgroup, per process by rlimit)."""
        if self.spec.transport != "stdio":
            return "-"
        if self.confined is None:
            return "not started"
        return self.confined.limits

    @property
    def garbage_lines(self) -> int:
        """Non-JSON-RPC stdout lines seen from the current process."""
        conn = self._conn
        return conn.child.garbage_lines if conn is not None and conn.child is not None else 0

    # -- supervision -------------------------------------------------------
    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the unit running until cancelled; the caller's task group owns this task."""
        task_status.started()
        try:
            if self.spec.start == "on_demand":
                await self._until_first_call()
            while True:
                if self.state is UnitState.FAILED:
                    await self._restart.wait()
                    self._restart = anyio.Event()
                    self._crash_loop.clear()
                    self._flaps.clear()
                    self._backoff.reset()
                    self.breaker.record_success()
                self.state = UnitState.STARTING
                try:
                    reason = await self._run_once()
                finally:
                    self.first_start.set()
                if reason.startswith(PARKED_PREFIX):
                    # Stopped by S3 with its tools kept listed: no restart, no back-off; a call wakes
                    # it (one that came while it was stopping already has).
                    self.stats.last_error = ""
                    await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                if self.sandbox_refusal or self.missing_secret:
                    self.stats.last_error = reason
                    self.state = UnitState.FAILED
                    kind = self._refusal_kind if self.sandbox_refusal else "secret_missing"
                    await self._emit(kind, Severity.HIGH, reason)
                    continue
                self.stats.restarts += 1
                self.stats.last_error = reason
                served, self._served = self._served, False
                if served and reason != RESTART_REQUESTED:  # it went down on its own while serving
                    await self._emit(SERVER_LOST, Severity.MEDIUM, f"stopped while serving: {reason}")
                if self._crash_loop.record():
                    self.state = UnitState.FAILED
                    detail = (
                        f"{self._crash_loop.recent} restarts within {self.spec.crash_loop_window_s:g}s; "
                        f"last: {reason}"
                    )
                    await self._emit("crash_loop", Severity.HIGH, detail)
                    await self._decide(
                        "stop",
                        f"crash loop: {self.spec.crash_loop_restarts} restarts within "
                        f"{self.spec.crash_loop_window_s:g}s",
                        f"{detail}. Not restarted until an operator asks (vsm-mcp servers restart "
                        f"{self.name}).",
                        {"restarts_in_window": self._crash_loop.recent, "reason": reason},
                        predicted={"calls_served": 0},
                    )
                    continue
                delay = self._backoff.next_delay()
                if self._flaps.record():
                    delay = self.spec.flap_hold_s
                    self._flaps.clear()
                    self.holds += 1
                    self.held_until = self._clock() + delay
                    await self._emit(
                        "flapping",
                        Severity.MEDIUM,
                        f"{self.spec.flap_restarts} restarts within {self.spec.flap_window_s:g}s; "
                        f"held for {delay:g}s before the next start (vsm-mcp servers restart "
                        f"{self.name} starts it now); last: {reason}",
                    )
                    choice, rule = (
                        "hold",
                        f"flapping: {self.spec.flap_restarts} restarts within {self.spec.flap_window_s:g}s",
                    )
                else:
                    choice, rule = "restart", "restart after an exponential back-off"
                await self._decide(
                    choice,
                    rule,
                    f"{self.name} stopped ({reason}); next start in {delay:.2f}s, restart "
                    f"{self.stats.restarts}, {self._crash_loop.recent} of "
                    f"{self.spec.crash_loop_restarts} allowed within {self.spec.crash_loop_window_s:g}s.",
                    {
                        "reason": reason,
                        "delay_s": round(delay, 3),
                        "restarts": self.stats.restarts,
                        "restarts_in_window": self._crash_loop.recent,
                    },
                    predicted={"ready_within_s": round(delay + self.spec.start_timeout_s, 3)},
                )
                self.state = UnitState.BACKOFF
                try:
                    with anyio.move_on_after(delay):
                        await self._restart.wait()
                finally:
                    self.held_until = None
                if self._restart.is_set():
                    self._restart = anyio.Event()
        finally:
            self.state = UnitState.STOPPED
            self.stopped.set()

    async def _until_first_call(self) -> None:
        """An on-demand unit: list its pinned tools and stay PARKED until a call (or an operator's
        restart) wakes it. Without a usable pin it starts at once to learn its tools and parks
        as soon as they are listed (`_park_when_listed`)."""
        pin = await definitions.load(self._definitions, self.name) if self._definitions is not None else None
        if pin is None or pin.quarantine is not None or not pin.tools or pin.by == definitions.UNREADABLE:
            self._park_when_listed = True
            return
        self.catalog = UnitCatalog(tools=tuple(dict(tool) for tool in pin.tools.values()))
        await self._notify_catalog()
        self.state = UnitState.PARKED
        self.first_start.set()  # the routes know the pinned tools: listing need not wait for a start
        await self._wake.wait()
        self._wake = anyio.Event()

    async def wait_ready(self) -> None:
        """Return once the unit has a live session (bound it with ``anyio.fail_after``)."""
        while self._live is None:
            await self._ready.wait()
            await anyio.lowlevel.checkpoint()

    def request_restart(self) -> None:
        """Restart now (operator or S3): also lifts a FAILED crash-loop verdict, and starts a
        parked unit."""
        self._restart.set()
        self._wake.set()

    def park(self) -> None:
        """Stop the server with its tools kept listed (S3: idle, or over budget); the next call
        starts it again. A unit that is not running is left as it is."""
        if self._live is not None:
            self._park.set()

    def wake(self) -> None:
        """Start a parked unit (a call of one of its tools)."""
        self._wake.set()

    @property
    def idle_s(self) -> float | None:
        """Seconds since the unit's last call ended (since it got ready, if none), None while a
        call is under way or the unit is not running."""
        if self._active or self._live is None:
            return None
        since = self.last_call_at if self.last_call_at is not None else self.ready_since
        return None if since is None else max(0.0, self._clock() - since)

    def _call_began(self) -> Callable[[], None]:
        """Count a call under way; returns how to count its end (once)."""
        self._active += 1
        self.last_call_at = self._clock()
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                self._active -= 1
                self.last_call_at = self._clock()  # idle from the end of the last call

        return end

    async def _run_once(self) -> str:
        """One life of the server; returns why it ended."""
        try:
            async with self._open_session() as conn:
                catalog = await self._list_catalog(conn.session)
                moved = await self._review(catalog)  # before anyone can see or call its tools
                if conn.wire is not None:
                    conn.lane = self._open_lane(*conn.wire)
                self._live = conn
                self.session_lost = anyio.Event()
                self.state = UnitState.READY
                self._served = True
                self.stats.last_error = ""  # it describes the current state: a start that worked has none
                self.ready_since = self._clock()
                self.last_call_at = None  # idle counts afresh from this start
                self._ready.set()
                if catalog != self.catalog or moved:
                    self.catalog = catalog
                    await self._notify_catalog()
                self.first_start.set()  # after the routes know the catalog
                if self._park_when_listed:  # on demand, started only to learn its tools
                    self._park_when_listed = False
                    self._park.set()
                reason = await self._watch(conn.session, conn.gone)
                self._drop_session()  # no new call may pick the dying session while it is torn down
        except (SandboxUnavailableError, LauncherChangedError) as exc:
            self.sandbox_refusal = str(exc)
            self._refusal_kind = (
                "launcher_changed" if isinstance(exc, LauncherChangedError) else "sandbox_unavailable"
            )
            reason = f"not started: {exc}"
        except MissingSecretError as exc:
            self.missing_secret = str(exc)
            reason = f"not started: {exc}"
        except (
            OSError,
            MCPError,
            TimeoutError,
            ValidationError,
            anyio.BrokenResourceError,
            SandboxError,  # the command is not found or the prefix cannot be prepared
            ListingTooLargeError,
        ) as exc:
            reason = f"start failed: {in_words(exc, self.spec)}{self._stderr_hint()}"
        except ExceptionGroup as group:
            reason = f"session failed: {in_words(group, self.spec)}{self._stderr_hint()}"
        finally:
            self._drop_session()
            child = self._conn.child if self._conn is not None else None
            if child is not None and child.final_usage is not None:
                # What killed it may have been a limit; also when the gateway is stopping (the
                # VSM systems stop after the fleet, so the signal still reaches S5).
                usage, child.final_usage = child.final_usage, None
                with anyio.CancelScope(shield=True), anyio.move_on_after(FINAL_SIGNAL_S):
                    await self._check_limits(usage)
        return reason

    def _drop_session(self) -> None:
        live, self._live = self._live, None
        if live is not None and live.lane is not None:
            live.lane.close("connection closed")
        self.session_lost.set()
        if self._ready.is_set():
            if (
                self.ready_since is not None
                and self._clock() - self.ready_since >= self.spec.crash_loop_window_s
            ):
                self._backoff.reset()  # it ran healthily for a whole window: start back-off afresh
            self._ready = anyio.Event()
            self.state = UnitState.STARTING

    @asynccontextmanager
    async def _open_session(self) -> AsyncIterator[Connection]:
        """One start: the spec's secrets filled in, its launch planned and checked against its
        pin (stdio), then `connect`."""
        self.missing_secret = ""
        # With its secrets filled in; only the launch and the HTTP client see this copy.
        spec = await resolve_secrets(self.spec, self._secrets)
        plan = None
        if spec.transport == "stdio":
            self.sandbox_refusal = ""
            confined = await self._confinement.plan(spec)
            if confined.plan.pin is not None and self._pins is not None:
                await check_pin(self._pins, self.name, confined.plan.pin)
            self.confined = confined
            if confined.mode != "off" and not confined.plan.sandboxed and not self._warned_unsandboxed:
                self._warned_unsandboxed = True
                # Never a quiet fallback: a server that runs without bubblewrap is high pain.
                await self._emit("unsandboxed", Severity.HIGH, f"running {confined.summary}")
            plan = confined.plan
        passthrough = self._observer is not None
        handlers = SessionHandlers(
            self._on_message,
            sampling=self._on_sampling if passthrough else None,
            elicitation=self._on_elicitation if passthrough else None,
            roots=self._on_roots if passthrough else None,
        )
        async with connect(spec, handlers, plan=plan, stderr=self.stderr, log_path=self.log_path) as conn:
            self._conn = conn
            yield conn

    async def _watch(self, session: ClientSession, gone: anyio.Event) -> str:
        reason = "stopped"

        async with anyio.create_task_group() as tg:

            async def until(event: anyio.Event, why: str) -> None:
                nonlocal reason
                await event.wait()
                reason = why
                tg.cancel_scope.cancel()

            async def health() -> None:
                nonlocal reason
                rounds = 0
                while True:
                    with anyio.move_on_after(self.spec.ping_interval_s):
                        await self._probe_now.wait()
                    self._probe_now = anyio.Event()
                    if not await self._ping(session):
                        reason = f"no answer to ping within {self.spec.ping_timeout_s:g}s"
                        tg.cancel_scope.cancel()
                        return
                    await self._check_limits(await anyio.to_thread.run_sync(self._usage))
                    rounds += 1
                    if self._definitions is not None and rounds % DEFINITIONS_EVERY_ROUNDS == 0:
                        # Every unit's tools, listed afresh on its live session: a server that shows
                        # its pinned definitions only in its first listing is caught within a few
                        # rounds, whatever S3*'s random sample picks.
                        with (
                            anyio.move_on_after(self.spec.ping_timeout_s),
                            suppress(MCPError, anyio.BrokenResourceError, anyio.ClosedResourceError),
                        ):
                            await self._relist(session)  # a failure here: the next ping judges it

            async def refresh() -> None:
                while True:
                    await self._refresh.wait()
                    self._refresh = anyio.Event()
                    await self._relist(session)

            async def runaway() -> None:
                # A timed-out call must stop its work: the server was told (cancelled); one that
                # keeps a core busy through the grace period is restarted.
                nonlocal reason
                while True:
                    await self._timed_out.wait()
                    self._timed_out = anyio.Event()
                    before = await anyio.to_thread.run_sync(self._cpu_seconds)
                    await anyio.sleep(RUNAWAY_GRACE_S)  # a measurement window, not a wait for an event
                    after = await anyio.to_thread.run_sync(self._cpu_seconds)
                    if (
                        before is None
                        or after is None
                        or after - before < RUNAWAY_CPU_SHARE * RUNAWAY_GRACE_S
                    ):
                        continue
                    reason = (
                        f"kept burning CPU after a timed-out call ({after - before:.1f} CPU seconds in the "
                        f"{RUNAWAY_GRACE_S:g} s after it): restarted"
                    )
                    await self._emit("runaway_cpu", Severity.MEDIUM, reason)
                    self._served = False  # the gateway stops it, with that pain: not lost on its own
                    tg.cancel_scope.cancel()
                    return

            def parked(why: str) -> None:
                # At once, before anything else runs: no call can pick this session any more, and
                # one that comes from now on sees PARKED and wakes the unit.
                nonlocal reason
                reason = f"{PARKED_PREFIX}: {why}"
                self.parks += 1
                self._drop_session()
                self._wake = anyio.Event()
                self.state = UnitState.PARKED
                tg.cancel_scope.cancel()

            async def parking() -> None:
                while True:
                    await self._park.wait()
                    self._park = anyio.Event()
                    if not self._active:  # a call under way is never cut short: S3 asks again later
                        parked("by S3")
                        return

            async def idle() -> None:
                # S3's idle stop: a deadline from the last call, re-armed as calls come.
                limit = self.spec.idle_stop_s
                if limit is None:
                    return
                while True:
                    idle_s = self.idle_s
                    if idle_s is not None and idle_s >= limit:
                        parked(f"no call for {limit:g}s")
                        return
                    await anyio.sleep(limit - (idle_s or 0.0) if idle_s is not None else min(limit, 1.0))

            tg.start_soon(until, gone, "server process exited")
            tg.start_soon(until, self._restart, RESTART_REQUESTED)
            tg.start_soon(parking)
            tg.start_soon(idle)
            tg.start_soon(health)
            tg.start_soon(refresh)
            tg.start_soon(runaway)
        if self._restart.is_set():
            self._restart = anyio.Event()
        return reason

    def _stderr_hint(self) -> str:
        """``; its stderr ends: ...`` with the last lines the server wrote, or "" when it wrote none."""
        lines = [line.strip() for line in list(self.stderr)[-STDERR_HINT_LINES:] if line.strip()]
        return f"; its stderr ends: {' | '.join(lines)[-STDERR_HINT_CHARS:]}" if lines else ""

    def _usage(self) -> CgroupUsage | None:
        """The server's cgroup counters now (blocking), or None without a cgroup."""
        cgroup = self.confined.plan.cgroup if self.confined is not None else None
        if cgroup is None:
            return None
        try:
            return cgroup.usage()
        except OSError:
            return None

    async def _check_limits(self, usage: CgroupUsage | None) -> None:
        """Algedonic pain when the server ran into its cgroup limits since the last look."""
        if usage is None:
            return
        kills, refused = usage.oom_kills or 0, usage.pids_refused or 0
        conn = self._conn
        seen_kills, seen_refused = conn.limits_seen if conn is not None else (0, 0)
        if conn is not None:
            conn.limits_seen = (kills, refused)
        hits = []
        if kills > seen_kills:
            hits.append(f"memory limit reached: the kernel killed {kills - seen_kills} of its processes")
        if refused > seen_refused:
            hits.append(f"process limit reached: {refused - seen_refused} forks refused")
        if hits:
            await self._emit("limit_hit", Severity.MEDIUM, "; ".join(hits))

    def _cpu_seconds(self) -> float | None:
        """CPU seconds the server has used so far: its cgroup's, else its process group's (blocking)."""
        cgroup = self.confined.plan.cgroup if self.confined is not None else None
        if cgroup is not None:
            used = cgroup.usage().cpu_seconds
            if used is not None:
                return used
        child = self._conn.child if self._conn is not None else None
        return group_cpu_seconds(child.pid) if child is not None else None

    async def _ping(self, session: ClientSession) -> bool:
        start = anyio.current_time()
        with anyio.move_on_after(self.spec.ping_timeout_s):
            try:
                await session.send_ping()
            except MCPError:
                return False
            self.stats.last_ping_ms = (anyio.current_time() - start) * 1000
            return True
        return False

    async def _list_catalog(self, session: ClientSession) -> UnitCatalog:
        init = session.initialize_result
        caps = init.capabilities if init is not None else types.ServerCapabilities()

        async def paged(method: str, key: str) -> tuple[dict[str, Any], ...]:
            items: list[dict[str, Any]] = []
            size = 0
            cursor: str | None = None
            for _ in range(1000):  # a server that paginates forever cannot hang the unit
                params = {"cursor": cursor} if cursor else None
                request = types.Request[Any, Any](method=method, params=params)
                page = _raw(await session.send_request(request, _Passthrough))
                found = page.get(key, [])
                items.extend(found)
                size += len(json.dumps(found, separators=(",", ":"), ensure_ascii=False))
                if len(items) > MAX_LISTED_ITEMS:
                    raise ListingTooLargeError(
                        f"it lists more than {MAX_LISTED_ITEMS:,} {key}, more than a server may"
                    )
                if size > MAX_LISTED_BYTES:
                    raise ListingTooLargeError(
                        f"its {key} take more than {MAX_LISTED_BYTES // 2**20} MiB, more than a server's may"
                    )
                cursor = page.get("nextCursor")
                if not cursor:
                    break
            return tuple(items)

        with anyio.fail_after(self.spec.start_timeout_s):
            empty: tuple[dict[str, Any], ...] = ()
            tools = await paged("tools/list", "tools") if caps.tools is not None else empty
            resources = templates = prompts = empty
            if caps.resources is not None:
                resources = await paged("resources/list", "resources")
                templates = await paged("resources/templates/list", "resourceTemplates")
            if caps.prompts is not None:
                prompts = await paged("prompts/list", "prompts")
        viable = nesting.is_viable(resources)
        if viable:  # a gateway below this one: its VSM is not capability (core.nesting)
            tools = tuple(t for t in tools if not nesting.is_own(t))
            resources = tuple(r for r in resources if not nesting.is_own(r))
        return UnitCatalog(
            tools=tools,
            resources=resources,
            templates=templates,
            prompts=prompts,
            capabilities=caps.model_dump(by_alias=True, mode="json", exclude_none=True),
            server_info=(
                init.server_info.model_dump(by_alias=True, mode="json", exclude_none=True) if init else {}
            ),
            viable=viable,
        )

    # -- definition pins -------------------------------------------------------
    async def _review(self, catalog: UnitCatalog) -> bool:
        """Compare a fresh listing's tools with the pin (the first is pinned); True when the unit
        went into or out of quarantine, so the routes must be rebuilt."""
        if self._definitions is None:
            return False
        before = self.quarantine
        verdict = await definitions.review(self._definitions, self.name, catalog.tools, now=time.time())
        self.quarantine = verdict.pin.quarantine
        if verdict.quarantined_now and self.quarantine is not None:
            await self._emit(
                "definitions_changed",
                Severity.HIGH,
                f"{self.quarantine.reason}; its tools are withheld until an operator approves them: "
                f"vsm-mcp servers approve {self.name}",
            )
            await self._decide(
                "quarantine",
                "definitions differ from their pin: withhold the tools until an operator approves them",
                f"{self.quarantine.reason}; none of its {len(catalog.tools)} tools is routed until "
                f"vsm-mcp servers approve {self.name}.",
                {"reason": self.quarantine.reason, "tools_listed": len(catalog.tools)},
                predicted={"calls_served": 0},
            )
        return (before is None) != (self.quarantine is None)

    async def _relist(self, session: ClientSession) -> None:
        """List the catalog afresh over ``session``, review it, and publish it if anything changed."""
        async with self._listing:
            catalog = await self._list_catalog(session)
            moved = await self._review(catalog)
            if catalog != self.catalog or moved:
                self.catalog = catalog
                await self._notify_catalog()

    async def audit_definitions(self) -> Quarantine | None:
        """S3*: list the tools afresh over the live session (never a kept listing) and review
        them as every listing is; returns the unit's quarantine (None: its tools match the pin).

        Raises:
            UnitUnavailableError: no session is up.
            MCPError, TimeoutError: the server did not list its tools.
        """
        live = self._live
        if live is None:
            raise UnitUnavailableError(f"server {self.name!r} is {self.state.value}: no session to list on")
        await self._relist(live.session)
        return self.quarantine

    async def lift_if_approved(self) -> None:
        """End the quarantine once an operator pinned new definitions (``vsm-mcp servers approve``,
        from any process): the last listing is reviewed against them, then the tools are listed afresh."""
        if self._definitions is None or self.quarantine is None:
            return
        stored = await definitions.load(self._definitions, self.name)
        if stored is not None and stored.quarantine is not None:
            return
        async with self._listing:
            if await self._review(self.catalog):
                await self._notify_catalog()
        self._refresh.set()  # what the server lists now, on the live session

    # -- express lane --------------------------------------------------------
    def _open_lane(self, read: LineReader, write: LineWriter) -> ExpressLane:
        def timed_out() -> None:
            self.stats.timeouts += 1
            self._probe_now.set()  # a hung server fails its ping and is restarted
            self._timed_out.set()  # and one still burning CPU after it is restarted too

        lane = ExpressLane(
            self.name,
            write,
            idle_timeout_s=self.spec.idle_timeout_s,
            call_timeout_s=self.spec.call_timeout_s,
            on_timeout=timed_out,
        )
        read.intercept = lane.intercept
        return lane

    def lane_call(
        self,
        params: dict[str, Any],
        done: Callable[[LaneOutcome], None],
        *,
        progress: ProgressSink | None = None,
        token: types.ProgressToken | None = None,
        control: CallControl | None = None,
    ) -> bool:
        """Send ``tools/call`` with ``params`` (as they go downstream) on the express lane, if it
        can take it now: a plain call (only ``name``, ``arguments``, ``_meta``), a stdio session
        up, its pipe not congested, the breaker closed. Returns False, having sent nothing,
        otherwise (`call_tool` takes it).

        ``done`` is called once, from the lane's reader callback or timer: with the server's
        answer (the breaker has recorded it) or a `UnitError`, for which the caller owes
        `lane_failed`. With a caller's progress ``token`` the server is asked for progress and
        ``progress`` gets it. ``control`` stops the call (the server is told; no ``done``).
        """
        live = self._live
        lane = live.lane if live is not None else None
        if (
            lane is None
            or self.breaker.state is not BreakerState.CLOSED
            or not params.keys() <= PLAIN_CALL_PARAMS
        ):
            return False
        started = self._clock()
        end: Callable[[], None] | None = None

        def finished(outcome: LaneOutcome) -> None:
            if end is not None:
                end()
            if not isinstance(outcome, UnitError):
                self.breaker.record_success()  # the server answered: it is alive
                if isinstance(outcome, types.JSONRPCResponse):
                    self.stats.latency_total_s += self._clock() - started
            done(outcome)

        call = lane.start(params, finished, progress if token is not None else None, token)
        if call is None:
            return False
        end = self._call_began()
        self.stats.calls += 1
        if control is not None:
            ended = end

            def stop() -> None:
                lane.cancel(call, control.reason)
                ended()

            control.attach(stop)
        return True

    async def lane_failed(self, error: UnitError) -> None:
        """Count a lane call that ended with ``error`` (breaker, counters, pain on a trip)."""
        await self._fail(str(error))

    async def call_tool(
        self,
        params: dict[str, Any],
        *,
        retry_safe: bool,
        progress: ProgressSink | None = None,
        token: types.ProgressToken | None = None,
        failed: UnitError | None = None,
    ) -> dict[str, Any]:
        """``tools/call`` with ``params`` through the SDK's session (`request`: a safe call is
        retried); ``failed``: how a lane attempt ended, taken over as the failed first attempt.

        Raises:
            MCPError: the server answered with an error.
            UnitError: the unit failed the call.
        """

        async def relay(value: float, total: float | None, message: str | None) -> None:
            if progress is not None:
                sent = {"progressToken": token, "progress": value, "total": total, "message": message}
                progress({k: v for k, v in sent.items() if v is not None})

        return await self.request(
            "tools/call",
            params,
            retry_safe=retry_safe,
            on_progress=relay if token is not None and progress is not None else None,
            failed=failed,
        )

    # -- calls -------------------------------------------------------------
    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        retry_safe: bool,
        on_progress: ProgressFn | None = None,
        failed: UnitError | None = None,
    ) -> dict[str, Any]:
        """Send one request to the server; returns its wire result. ``failed``: how an attempt
        made elsewhere (the express lane) ended; it is retried, counted and raised exactly as
        this method's own first attempt would be.

        Raises:
            MCPError: the server answered with an error (passed through unchanged).
            UnitUnavailableError: the unit is down, failed, or its breaker is open.
            CallTimeoutError: no result within the idle or the absolute timeout.
        """
        attempt, error = (0, None) if failed is None else (1, failed)
        while True:
            if error is not None:
                if (
                    not retry_safe
                    or not isinstance(error, UnitUnavailableError)
                    or attempt > self.spec.retries
                    or self.state is UnitState.FAILED
                ):
                    raise error
                self.stats.retries += 1
                await anyio.sleep(RETRY_PAUSE_S * (1 + self._rand()))  # jitter: spread retries out
            attempt += 1
            try:
                return await self._attempt(method, params, on_progress)
            except UnitUnavailableError as exc:
                error = exc

    async def _attempt(
        self, method: str, params: dict[str, Any] | None, on_progress: ProgressFn | None
    ) -> dict[str, Any]:
        if self.state is UnitState.FAILED:
            raise UnitUnavailableError(
                f"server {self.name!r} is failed "
                f"{'by its sandbox policy' if self.sandbox_refusal else 'after a crash loop'} "
                f"({self.stats.last_error}); "
                f"restart it with: vsm-mcp servers restart {self.name}"
            )
        if not self.breaker.admit():
            raise UnitUnavailableError(
                f"server {self.name!r} keeps failing: circuit open, next probe in {self.breaker.retry_after():.1f}s"
            )
        verdict = False
        self.stats.calls += 1
        started = anyio.current_time()
        conn: Connection | None = None
        try:
            conn = self._live if self._live is not None else await self._ready_connection()
            end = self._call_began()  # a request under way: the unit is not idle
            try:
                result = await self._send(conn, method, params, on_progress)
            finally:
                end()
        except MCPError as exc:
            if exc.code != types.CONNECTION_CLOSED:
                verdict = True
                self.breaker.record_success()  # the server answered: it is alive
                raise
            await self._fail(f"{method}: connection closed")
            if self._live is conn:
                self._drop_session()  # do not hand the dead session to the next call
                self._probe_now.set()
            raise UnitUnavailableError(
                f"server {self.name!r} went away during {method} (connection closed); it is being restarted"
            ) from exc
        except UnitError as exc:
            await self._fail(str(exc))
            raise
        else:
            verdict = True
            self.breaker.record_success()
            self.stats.latency_total_s += anyio.current_time() - started
            return result
        finally:
            if not verdict and self.breaker.state is BreakerState.HALF_OPEN:
                self.breaker.release_probe()

    async def _fail(self, why: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = why
        trips = self.breaker.trips
        self.breaker.record_failure()
        if self.breaker.trips > trips:
            await self._emit(
                "breaker_open",
                Severity.MEDIUM,
                f"circuit opened after {self.spec.breaker_failures} failed calls; last: {why}",
            )

    async def _ready_connection(self) -> Connection:
        if self._live is not None:
            return self._live
        wait = READY_WAIT_S
        if self.state is UnitState.PARKED:  # a call starts a parked unit: it may take a start
            self.wake()
            wait = max(READY_WAIT_S, self.spec.start_timeout_s)
        with anyio.move_on_after(wait):
            await self.wait_ready()
        if self._live is None:
            raise UnitUnavailableError(
                f"server {self.name!r} is {self.state.value} and not ready after {READY_WAIT_S:g}s"
                + (f" (last error: {self.stats.last_error})" if self.stats.last_error else "")
            )
        return self._live

    async def _send(
        self,
        conn: Connection,
        method: str,
        params: dict[str, Any] | None,
        on_progress: ProgressFn | None,
    ) -> dict[str, Any]:
        idle, absolute = self.spec.idle_timeout_s, self.spec.call_timeout_s
        hard = anyio.current_time() + absolute
        scope = anyio.CancelScope(deadline=min(anyio.current_time() + idle, hard))

        relays = _Relays()

        async def progressed(progress: float, total: float | None, message: str | None) -> None:
            scope.deadline = min(anyio.current_time() + idle, hard)
            if on_progress is not None:
                await relays.run(on_progress, progress, total, message)

        session, dispatcher = conn.session, conn.dispatcher
        opts: CallOptions = {"on_progress": progressed}
        if self.spec.transport != "stdio" and session.protocol_version is not None:
            opts["headers"] = {MCP_PROTOCOL_VERSION_HEADER: session.protocol_version}
        result: dict[str, Any] | None = None
        with scope:
            result = await dispatcher.send_raw_request(method, forwarded_params(params), opts)
        if result is not None:
            # The SDK relays each progress notification in a task of its own: the result waits
            # for those of them still under way, so the caller sees them before the result.
            await relays.drain()
            return result
        self.stats.timeouts += 1
        self._probe_now.set()  # a hung server fails its ping and is restarted
        self._timed_out.set()  # and one still burning CPU after it is restarted too
        which = (
            f"absolute timeout of {absolute:g}s"
            if anyio.current_time() >= hard
            else f"{idle:g}s without progress"
        )
        raise CallTimeoutError(f"server {self.name!r} did not answer {method} ({which})")

    # -- downstream -> gateway ---------------------------------------------
    async def _on_message(self, message: types.ServerNotification | Exception) -> None:
        if isinstance(message, Exception):
            return  # garbage on stdout: counted by the process pump, never fatal
        if isinstance(
            message,
            types.ToolListChangedNotification
            | types.ResourceListChangedNotification
            | types.PromptListChangedNotification,
        ):
            self._refresh.set()
        if self._observer is not None:
            await self._observer.unit_notification(self, message)

    async def _on_sampling(self, context: Any, params: types.CreateMessageRequestParams) -> Any:
        assert self._observer is not None
        return await self._observer.unit_request(self, types.CreateMessageRequest(params=params))

    async def _on_elicitation(self, context: Any, params: types.ElicitRequestParams) -> Any:
        assert self._observer is not None
        return await self._observer.unit_request(self, types.ElicitRequest(params=params))

    async def _on_roots(self, context: Any) -> Any:
        assert self._observer is not None
        return await self._observer.unit_request(self, types.ListRootsRequest())

    async def _notify_catalog(self) -> None:
        if self._observer is not None:
            await self._observer.unit_catalog_changed(self)

    async def _decide(
        self, choice: str, rule: str, rationale: str, inputs: dict[str, Any], *, predicted: dict[str, Any]
    ) -> None:
        """Tell the observer of a supervision decision: the unit's own (S1's local regulation),
        except quarantine, which withholds its tools from S2's routing under S3's trust rules."""
        if self._observer is None:
            return
        decision = Decision(
            at=time.time(),
            system="s3" if choice == "quarantine" else "s1",
            subject=self.name,
            choice=choice,
            rule=rule,
            rationale=rationale,
            inputs={**inputs, "unit": self.name, "predicted": predicted},
        )
        await self._observer.unit_decided(self, decision)

    async def _emit(self, kind: str, severity: Severity, detail: str) -> None:
        if self._observer is not None:
            signal = AlgedonicSignal(
                source=unit_source(self.name),
                kind=kind,
                valence=Valence.PAIN,
                severity=severity,
                detail=detail,
                at=time.time(),
            )
            await self._observer.unit_signal(signal)


def in_words(exc: BaseException, spec: ServerSpec) -> str:
    """What went wrong starting or talking to ``spec``'s server, for a person (no reprs, no groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError) and "connection closed" in str(exc).lower():
        return "the server closed the connection before answering (it exited, or it is not an MCP server)"
    if isinstance(exc, TimeoutError):
        return f"no MCP handshake within {spec.start_timeout_s:g} s (start_timeout_s)"
    if isinstance(exc, ListingTooLargeError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or spec.command}: no such file or command"
    if isinstance(exc, PermissionError):
        return f"{exc.filename or spec.command}: permission denied"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError | anyio.EndOfStream):
        return "the connection to the server broke (it exited)"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
