"""The assembled viable system: real events in, the same status shape out for whole and units."""

from __future__ import annotations

import random

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicAlert, Severity, unit_source
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.audit import ProbeResult
from vsm_mcp.vsm.events import CallCompleted, UnitState, UnitStateChanged
from vsm_mcp.vsm.notices import Notices, noticed
from vsm_mcp.vsm.status import SYSTEMS, SystemStatus, ViableStatus
from vsm_mcp.vsm.supervisor import ChildState
from vsm_mcp.vsm.viable import ViableConfig, ViableSystem

pytestmark = pytest.mark.anyio


async def _ping(unit: str) -> ProbeResult:
    return ProbeResult("ping", unit != "search", "" if unit != "search" else "timeout")


async def test_status_of_a_running_system_is_recursive_and_measured() -> None:
    async with MemoryStore.open() as store:
        system = ViableSystem(
            "gw",
            store,
            probe=_ping,
            rng=random.Random(3),
            config=ViableConfig(audit_probability=1.0, audit_interval_s=3600.0, alert_window_s=0.01),
        )
        system.s1.register("fs", ["read", "write"])
        system.s1.register("search", ["query"])
        # "search" is itself a VSM-MCP: it reports its own units.
        system.s1.set_nested(
            "search", ViableStatus("search", s5=SystemStatus("ok"), units=(ViableStatus("web"),))
        )
        async with system:
            await system.bus.publish("s1", CallCompleted("fs", "read", True, 0.004, at=1.0))
            await system.bus.publish("s1", CallCompleted("fs", "write", False, 0.006, at=2.0, error="EROFS"))
            await system.bus.publish("s3", UnitStateChanged("fs", UnitState.READY, 1.0, rss_bytes=4096))
            await system.s3_star.audit_once()
            await anyio.wait_all_tasks_blocked()
            status = system.status()
            assert {c.state for c in system.supervisor.status().values()} == {ChildState.RUNNING}
        assert {c.state for c in system.supervisor.status().values()} == {ChildState.STOPPED}

    doc = status.to_dict()
    shape = {"name", *SYSTEMS, "units"}
    assert set(doc) == shape
    assert [set(u) for u in doc["units"]] == [shape, shape]
    assert set(doc["units"][1]["units"][0]) == shape  # search's own unit, one level deeper
    fs = status.unit("fs")
    assert (fs.s1.metrics["calls"], fs.s1.metrics["errors"], fs.s1.metrics["last_error"]) == (2, 1, "EROFS")
    assert fs.s1.metrics["mean_latency_ms"] == pytest.approx(5.0)
    assert (fs.s3.state, fs.s3.metrics["rss_bytes"]) == ("ready", 4096)
    assert fs.s3_star.state == "ok"
    assert fs.s4.metrics == {"tools": 2, "variety_bits": 1.0}
    search = status.unit("search")
    assert search.s3_star.state == "failed"
    assert [u.name for u in search.units] == ["web"]
    assert status.s1.metrics["calls"] == 2
    assert status.s3_star.metrics["probes"] == 2
    assert status.depth() == 3


class AlertSignallingStore(MemoryStore):
    """A MemoryStore that lets a test wait for the first stored alert."""

    def __init__(self) -> None:
        super().__init__()
        self.alert_stored = anyio.Event()

    async def record_alert(self, alert: AlgedonicAlert) -> int:
        alert_id = await super().record_alert(alert)
        self.alert_stored.set()
        return alert_id


async def test_a_crashing_system_component_reaches_s5_through_the_assembled_channel() -> None:
    async with AlertSignallingStore.open() as store:
        assert isinstance(store, AlertSignallingStore)
        system = ViableSystem(
            "gw",
            store,
            probe=_ping,
            rng=random.Random(0),
            config=ViableConfig(max_restarts=1, restart_backoff_s=0.0, alert_window_s=0.01),
        )
        async with system:

            async def crash() -> None:
                raise RuntimeError("bad wiring")

            system.supervisor.start("s2_probe", crash)
            with anyio.fail_after(5):
                await system.supervisor.wait_settled("s2_probe")
                await store.alert_stored.wait()
            await anyio.wait_all_tasks_blocked()  # S5 finished handling it (decision stored)
            status = system.status()
        [alert] = await store.alerts()
    assert (alert.source, alert.severity) == ("gw/s2_probe", Severity.CRITICAL)
    assert status.s5.state == "attention"
    assert status.algedonic.metrics["alerts_sent"] == 1
    assert status.s2.metrics["restarts"] == 1


async def test_pain_felt_just_before_shutdown_is_still_stored() -> None:
    async with MemoryStore.open() as store:
        system = ViableSystem(
            "gw", store, probe=_ping, rng=random.Random(0), config=ViableConfig(alert_window_s=60.0)
        )
        async with system:
            await anyio.wait_all_tasks_blocked()
            for _ in range(5):
                system.channel.pain("unit/fs", "sandbox_violation", Severity.CRITICAL, "write to /etc")
        [alert] = await store.alerts()
        [decision] = await store.decisions()
    assert (alert.kind, alert.count) == ("sandbox_violation", 5)
    assert decision.choice == "escalate_to_operator"
    assert system.channel.lost_at_shutdown == 0


async def test_pain_about_a_unit_lights_that_units_view_and_no_other() -> None:
    notices = Notices()
    async with MemoryStore.open() as raw:
        system = ViableSystem(
            "gw",
            noticed(raw, notices),
            probe=_ping,
            rng=random.Random(0),
            config=ViableConfig(alert_window_s=0.01),
            notices=notices,
        )
        async with system:
            system.s1.register("fs", ["read"])
            system.s1.register("git", ["log"])
            mark = system.notices.last_seq
            # As the fleet, S1 and S3* name a unit (`unit_source`), and a system of the VSM names itself.
            system.channel.pain(unit_source("fs"), "crash_loop", Severity.CRITICAL, "5 restarts in 60 s")
            system.channel.pain("gw/git", "restart_intensity_exceeded", Severity.CRITICAL, "a system task")
            with anyio.fail_after(5):
                await system.notices.wait_for(
                    "alert.raised", after=mark, where=lambda n: n.subject == "gw/git"
                )
                await system.notices.wait_for("alert.raised", unit_source("fs"), after=mark)
            await anyio.wait_all_tasks_blocked()  # S5 has escalated both
            fs, git = system.unit_status("fs"), system.unit_status("git")
    assert len(system.s5.attention) == 2
    assert (fs.algedonic.state, fs.algedonic.metrics["attention"]) == ("attention", 1)
    assert (git.algedonic.state, git.algedonic.metrics["attention"]) == ("ok", 0)
