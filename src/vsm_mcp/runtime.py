"""`Runtime`: the composition root. It builds the store, the viable system, the
fleet and the gateway, wires them, and runs them as one async context manager.

Data flow (ARCHITECTURE.md draws it):

* client request -> `Gateway` -> `Fleet.call_tool` -> unit session; the fleet's call observers
  (`vsm_mcp.bridge.observers`) report each ended call to S1 and the outcome ledger;
  the gateway feeds each request's demand category to `SystemDemand` (`vsm_mcp.bridge`), which
  batches it onto the bus as `DemandObserved` for S4 (back-pressure, no drop);
  each finished call becomes a `CallCompleted` for S1.
* fleet changes -> S4 capacity (answerable categories), S1 unit registry, and
  the store's capabilities table; unit state changes (sampled) -> S3 with the
  unit's measured RSS.
* unit pain (crash loop, ...) -> algedonic channel -> S5 -> store.
* every `STATUS_EVERY_S` the recursive status is written to the store
  (``status`` key) so `vsm-mcp status` shows the live system.

Invariants: everything runs in the task groups entered here; leaving stops
the gateway, then the fleet (every child process), then the VSM systems (S5
stores the alerts still queued), then closes the store.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from vsm_mcp.acquisition.approvals import QueuedApprover
from vsm_mcp.acquisition.build import capability_service
from vsm_mcp.acquisition.face import CapabilityFace
from vsm_mcp.acquisition.loop import AcquisitionLoop
from vsm_mcp.acquisition.mcp_tools import CAPABILITY_TOOL_NAMES
from vsm_mcp.acquisition.service import CapabilityService
from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.bridge.demand import SystemDemand
from vsm_mcp.bridge.observers import OutcomeRecorder, S1Reporter
from vsm_mcp.bridge.reflection import DecisionRecords, record_reflection
from vsm_mcp.bridge.routing import LearnedRouting
from vsm_mcp.bridge.sampling import audit_probe, sample_units
from vsm_mcp.bridge.self_model import Limits
from vsm_mcp.core.messages import AlgedonicSignal, Decision
from vsm_mcp.core.ports import Store
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.errors import VsmError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.fleet.tracing import CallTracer
from vsm_mcp.gateway import Gateway
from vsm_mcp.gateway.access import StoreAudit, principal_of
from vsm_mcp.gateway.profiles import StoredProfiles
from vsm_mcp.gateway.vsm_tools import VSM_TOOL_NAMES
from vsm_mcp.settings import Settings
from vsm_mcp.store import SqliteStore
from vsm_mcp.store.lock import gateway_lock
from vsm_mcp.telemetry import start_tracing
from vsm_mcp.vsm.audit import ProbeResult
from vsm_mcp.vsm.notices import Notices, noticed
from vsm_mcp.vsm.policy import PolicyRules
from vsm_mcp.vsm.viable import ViableConfig, ViableSystem

#: How often unit states are sampled for S3 and the live status is stored.
STATUS_EVERY_S = 2.0
#: The inbox of the autonomous acquisition loop (it hands each proposal to S5, then acts on S5's rules).
ACQUISITION_INBOX = "acquisition"


def viable_config(settings: Settings, *, autonomous: bool = False) -> ViableConfig:
    """Map user settings onto the running systems' tunables."""
    return ViableConfig(
        proposals_to=ACQUISITION_INBOX if autonomous else "s5",
        rules=PolicyRules(auto_approve_acquisition=settings.acquisition.auto_approve),
        alert_window_s=settings.algedonic.window_s,
        max_alerts_per_s=settings.algedonic.max_alerts_per_s,
        max_restarts=settings.supervision.max_restarts,
        restart_within_s=settings.supervision.within_s,
        audit_probability=settings.audit.probability,
        audit_interval_s=settings.audit.interval_s,
        demand_max_events=settings.variety.max_events,
        demand_max_age_s=settings.variety.max_age_s,
        hysteresis=settings.variety.hysteresis(),
        budget=settings.budget.budget(),
        drift=settings.drift.policy(),
    )


class Runtime:
    """A running VSM-MCP: store, viable system, fleet and gateway, wired."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        system: ViableSystem,
        fleet: Fleet,
        outcomes: OutcomeRecorder,
        registry: FleetRegistry,
        gateway: Gateway,
        demand: SystemDemand,
        capabilities: CapabilityFace,
    ) -> None:
        self.settings = settings
        self.store = store
        self.system = system
        self.fleet = fleet
        #: The outcome ledger's recorder (every call the fleet ends is one outcome).
        self.outcomes = outcomes
        self.registry = registry
        self.gateway = gateway
        self.demand = demand
        self.capabilities = capabilities
        self.acquisition: AcquisitionLoop | None = None
        #: What happened, as it happens: unit states, capability changes, proposals, decisions, alerts.
        self.notices = system.notices

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings, *, seed: int | None = None, autonomous: bool = False
    ) -> AsyncIterator[Runtime]:
        """Start everything; stop it all on exit (see the module invariants).

        ``seed`` fixes the one random source (S3*'s audit sampling, every unit's back-off and retry
        jitter) for tests; by default it is unpredictable.
        ``autonomous`` runs the acquisition loop (when ``[acquisition] autonomous``
        allows it): a sustained gap makes S4 propose, S5 decide, and an approved
        acquisition installs, verifies and registers a server, which the fleet
        then starts. Nobody can be asked from inside the loop, so only what S5
        auto-approves is acquired; the rest is stored as a refused decision.

        Raises:
            StateError: the state directory or database cannot be used.
        """
        try:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VsmError(f"state directory {settings.state_dir} cannot be created: {exc.strerror}") from exc
        if not os.access(settings.state_dir, os.W_OK | os.X_OK):
            raise VsmError(
                f"state directory {settings.state_dir} is not writable by {_user()}: "
                "give it to this user, or choose another with --state-dir"
            )
        with gateway_lock(settings.state_dir):
            async with cls._open(settings, seed=seed, autonomous=autonomous) as runtime:
                yield runtime

    @classmethod
    @asynccontextmanager
    async def _open(cls, settings: Settings, *, seed: int | None, autonomous: bool) -> AsyncIterator[Runtime]:
        stop_tracing = start_tracing(settings.telemetry)
        try:
            async with cls._built(
                settings, seed=seed, autonomous=autonomous, tracing=stop_tracing is not None
            ) as runtime:
                yield runtime
        finally:
            if stop_tracing is not None:
                await anyio.to_thread.run_sync(stop_tracing)  # flushes the spans still buffered

    @classmethod
    @asynccontextmanager
    async def _built(
        cls, settings: Settings, *, seed: int | None, autonomous: bool, tracing: bool
    ) -> AsyncIterator[Runtime]:
        async with SqliteStore.open(settings.database_path) as stored:
            notices = Notices()
            # Every stored decision and alert is published as it is stored (`vsm.notices`).
            store = noticed(stored, notices)
            registry = FleetRegistry(store, settings.servers.values())
            fleets: list[Fleet] = []  # the probe needs the fleet, the fleet needs the system

            async def probe(unit: str) -> ProbeResult:
                return await audit_probe(fleets[0], unit)

            # The one random source: S3*'s sampling, and every unit's back-off and retry jitter.
            rng = random.Random(seed)
            system = ViableSystem(
                "vsm-mcp",
                store,
                probe=probe,
                rng=rng,
                notices=notices,
                config=viable_config(settings, autonomous=autonomous),
            )
            async with system:

                async def to_channel(signal: AlgedonicSignal) -> None:
                    system.channel.emit(signal)

                async def record_unit_decision(decision: Decision) -> None:
                    # a unit's supervision decision, with its server's tally to tell what followed
                    await store.record_decision(outcomes.stamp(decision))

                ledger = await OutcomeLedger.load(store)
                fleet = Fleet(
                    (await registry.desired()).values(),
                    dead_letters=store,
                    signals=to_channel,
                    decisions=record_unit_decision,
                    reserved_names=VSM_TOOL_NAMES | CAPABILITY_TOOL_NAMES,
                    log_dir=settings.state_dir / "logs",
                    sandbox=settings.sandbox_policy(),
                    secrets=store,
                    pins=store,
                    definitions=store,
                    rand=rng.random,
                    notices=notices,
                )
                if tracing:
                    fleet.tracer = CallTracer()
                fleets.append(fleet)
                outcomes = OutcomeRecorder(ledger, lambda: fleet.units)
                fleet.observers += [S1Reporter(system), outcomes]
                async with fleet, anyio.create_task_group() as tg:
                    limits = Limits(
                        sandbox_mode=settings.sandbox.mode,
                        sandbox_network=settings.sandbox.network,
                        max_installs_per_hour=settings.acquisition.max_installs_per_hour,
                        auto_approve=settings.acquisition.auto_approve,
                    )
                    demand = SystemDemand(system, fleet, store, outcomes, limits)
                    capabilities = CapabilityFace(
                        fleet, registry, principal_of, settings.acquisition.rerank_policy()
                    )
                    profiles = StoredProfiles(store)
                    await profiles.load()
                    gateway = Gateway(
                        fleet,
                        demand=demand,
                        status=demand,
                        extra=capabilities,
                        audit=StoreAudit(store),
                        profiles=profiles,
                        decisions=DecisionRecords(store, lambda: outcomes.ledger),
                        self_source=demand,
                        routing=LearnedRouting(
                            store,
                            lambda: outcomes.ledger,
                            lambda: fleet.routes.tools,
                            lambda unit: outcomes.catalog_names.get(unit, unit),
                        ),
                        tracing=tracing,
                    )
                    runtime = cls(
                        settings=settings,
                        store=store,
                        system=system,
                        fleet=fleet,
                        outcomes=outcomes,
                        registry=registry,
                        gateway=gateway,
                        demand=demand,
                        capabilities=capabilities,
                    )
                    tg.start_soon(demand.run)
                    tg.start_soon(profiles.poll, gateway.fleet_changed)
                    tg.start_soon(gateway.searches.run)  # a search nobody answered counts when idle too
                    tg.start_soon(registry.keep_in_sync, fleet)
                    tg.start_soon(runtime._sample_units)
                    tg.start_soon(runtime._reflect_periodically)
                    try:
                        # The loop needs the service at once; the MCP tools wait for it (the catalog
                        # takes a couple of seconds to index, and a client should not wait for that).
                        if autonomous:
                            await tg.start(runtime._serve_capabilities, ledger, autonomous)
                        else:
                            tg.start_soon(runtime._serve_capabilities, ledger, autonomous)
                        yield runtime
                    finally:
                        tg.cancel_scope.cancel()

    async def _serve_capabilities(
        self,
        ledger: OutcomeLedger,
        autonomous: bool,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Build the one `CapabilityService` (for the MCP tools and, when autonomous, the loop) and keep it."""
        capabilities = self.capabilities
        try:
            async with capability_service(
                # Nobody to ask (the loop; a client that cannot answer): the question waits for an
                # operator (`vsm-mcp approvals`).
                self.settings.acquisition,
                self.settings.servers.values(),
                self.settings.state_dir,
                self.store,
                QueuedApprover(capabilities.approver, self.store),
                outcomes=ledger,
            ) as service:
                capabilities.attach(service)
                if autonomous:
                    self.acquisition = AcquisitionLoop(
                        self.system.bus.inbox(ACQUISITION_INBOX),
                        acquirer=service.acquirer,
                        matcher=service.matcher,
                        s4=self.system.s4,
                        s5=self.system.s5,
                        registry_types=service.registry_types,
                        search=functools.partial(_search_candidates, service),
                    )
                    task_status.started()
                    await self.acquisition.run()
                else:
                    task_status.started()
                    await anyio.sleep_forever()
        except (VsmError, OSError) as exc:
            capabilities.fail(str(exc))
            if autonomous:
                raise

    async def _sample_units(self) -> None:
        """Unit states to S3, the live status and the outcome ledger to the store, every `STATUS_EVERY_S`."""
        await sample_units(
            self.system,
            self.fleet,
            self.store,
            self.outcomes,
            self.live_status,
            every_s=STATUS_EVERY_S,
            refresh_capacity=self.demand.refresh_capacity,  # S4 counts serving units' capacity only
            self_model=self.demand.self_model,
        )

    async def _reflect_periodically(self) -> None:
        """S5 reflects every ``[reflection] every_s``: the report is stored as its decision."""
        while True:
            await anyio.sleep(self.settings.reflection.every_s)
            await record_reflection(self.store)

    def live_status(self) -> dict[str, Any]:
        """The recursive VSM status plus the fleet's per-unit counters."""
        return {"vsm": self.system.status().to_dict(), "fleet": self.fleet.status()}


async def _search_candidates(
    service: CapabilityService, query: str, limit: int, category: str
) -> tuple[Candidate, ...]:
    """The loop's candidates: the catalog's, and the live sources' when its match is weak."""
    return (await service.search(query, limit=limit, category=category)).candidates


def _user() -> str:
    """This process's user, for a message: its name, else its uid."""
    import pwd

    try:
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:
        return f"uid {os.geteuid()}"
