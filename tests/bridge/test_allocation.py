"""S3 allocates: with a budget of 2 units and 4 servers, at most 2 run; a call starts a parked one."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from mcp import Client

from vsm_mcp.bridge.allocation import prestart
from vsm_mcp.bridge.reflection import DecisionRecords
from vsm_mcp.core.messages import DemandAggregate
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import load_settings
from vsm_mcp.store import MemoryStore
from vsm_mcp.vsm.audit import ProbeResult
from vsm_mcp.vsm.events import UnitState
from vsm_mcp.vsm.forecast import HOUR_S
from vsm_mcp.vsm.viable import ViableSystem

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"
NAMES = ("a", "b", "c", "d")


def _running(runtime: Runtime) -> set[str]:
    return {n for n, u in runtime.fleet.units.items() if u.pid is not None}


async def test_over_budget_s3_parks_the_longest_idle_and_a_call_starts_one_again(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    lines = ["[budget]", "max_units = 2"]
    for name in NAMES:
        lines += [f"[servers.{name}]", f'command = "{sys.executable}"', f'args = ["{PROBE}"]']
    config.write_text("\n".join(lines) + "\n")
    settings = load_settings(config, state_dir=tmp_path / "state")
    async with Runtime.open(settings, seed=3) as runtime:
        notices = runtime.notices
        await runtime.fleet.settled(60)  # every server through its first start (S3 may park some)
        assert all(runtime.fleet.unit(n).first_start.is_set() for n in NAMES)
        async with Client(runtime.gateway.server, mode="legacy") as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert {f"{n}__echo" for n in NAMES} <= listed
            # a and b are used; c and d never: they are the longest idle, parked
            for name in ("a", "b"):
                await client.call_tool(f"{name}__echo", {"text": "x"})
            with anyio.fail_after(30):
                for name in ("c", "d"):
                    await notices.wait_for(
                        "unit.state", name, after=0, where=lambda n: n.data["state"] == "parked"
                    )
            assert _running(runtime) == {"a", "b"}
            # (a round before the calls of a and b may have parked them first: never called, they
            # were as idle as c and d; the calls started them again)
            decisions = [d for d in await runtime.store.decisions() if d.choice == "park"]
            assert {"c", "d"} <= {d.subject for d in decisions}
            assert all(d.system == "s3" and d.inputs["max_units"] == 2 for d in decisions)
            # each park predicts the calls S4 expects within the hour, stamped with the tally then
            assert all(d.inputs["predicted"] == {"calls_within_hour": 0.0} for d in decisions)
            [park_c] = [d for d in decisions if d.subject == "c"][-1:]
            assert park_c.inputs["server_tally_at_decision"] == [0, 0]
            # the parked units' tools stay listed, and a call of one starts it and answers
            assert {f"{n}__echo" for n in NAMES} <= {t.name for t in (await client.list_tools()).tools}
            mark = notices.last_seq
            answer = await client.call_tool("c__echo", {"text": "woken"})
            assert answer.is_error is False and "woken" in str(answer.content[0])
            assert runtime.fleet.unit("c").state is UnitState.READY
            records = DecisionRecords(runtime.store, lambda: runtime.outcomes.ledger)
            document = await records.decision(park_c.id or 0)
            assert document is not None
            assert document["observed"]["calls_since"] == 1  # the call that woke it
            assert document["observed"]["as_predicted"] is None  # its hour is not over
            # three run now: S3 parks the longest idle of a, b (a was called first)
            with anyio.fail_after(20):
                parked = await notices.wait_for(
                    "unit.state", after=mark, where=lambda n: n.data["state"] == "parked"
                )
            assert parked.subject == "a"
            assert _running(runtime) == {"b", "c"}


async def test_a_parked_unit_is_started_before_the_demand_s4_expects_within_the_hour(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async def ping(_: str) -> ProbeResult:
        return ProbeResult("ping", True)

    day = 1_700_000_000 // (24 * HOUR_S) * (24 * HOUR_S)  # a midnight (UTC)
    now = day + 9 * HOUR_S + 60  # just after 09:00
    # a week of weather demand: a burst at 09:00 and a little at 15:00, every day
    history = [
        DemandAggregate("weather", day - d * 24 * HOUR_S + h * HOUR_S, n, n)
        for d in range(1, 8)
        for h, n in ((9, 30), (15, 2))
    ]
    async with MemoryStore.open() as store:
        await store.add_demand(history)
        system = ViableSystem("gw", store, probe=ping, rng=random.Random(0))
        spec = probe_spec("w", category="weather", idle_stop_s=0.3)
        async with system, Fleet([spec], notices=system.notices) as fleet:
            with anyio.fail_after(20):
                await fleet.wait_ready("w")
                await system.notices.wait_for(
                    "unit.state", "w", after=0, where=lambda n: n.data["state"] == "parked"
                )
            assert await prestart(system, fleet, store) == []  # S4 has not looked ahead yet
            forecast = await system.s4.look_ahead(now)
            assert forecast["weather"] > 5
            assert await prestart(system, fleet, store) == ["w"]
            with anyio.fail_after(20):
                await fleet.wait_ready("w")
            [decision] = [d for d in await store.decisions() if d.choice == "pre-start"]
            assert (decision.system, decision.subject) == ("s3", "w")
            assert decision.inputs["categories"] == ["weather"]
