"""S3 allocates: with a budget of 2 units and 4 servers, at most 2 run; a call starts a parked one."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import load_settings
from vsm_mcp.vsm.events import UnitState

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
        with anyio.fail_after(30):
            for name in NAMES:
                await runtime.fleet.wait_ready(name)
        async with Client(runtime.gateway.server, mode="legacy") as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert {f"{n}__echo" for n in NAMES} <= listed
            # a and b are used; c and d never: they are the longest idle, parked first
            for name in ("a", "b"):
                await client.call_tool(f"{name}__echo", {"text": "x"})
            with anyio.fail_after(20):
                for name in ("c", "d"):
                    await notices.wait_for(
                        "unit.state", name, after=0, where=lambda n: n.data["state"] == "parked"
                    )
            assert _running(runtime) == {"a", "b"}
            decisions = [d for d in await runtime.store.decisions() if d.choice == "park"]
            assert {d.subject for d in decisions} == {"c", "d"}
            assert all(d.system == "s3" and d.inputs["max_units"] == 2 for d in decisions)
            # the parked units' tools stay listed, and a call of one starts it and answers
            assert {f"{n}__echo" for n in NAMES} <= {t.name for t in (await client.list_tools()).tools}
            mark = notices.last_seq
            answer = await client.call_tool("c__echo", {"text": "woken"})
            assert answer.is_error is False and "woken" in str(answer.content[0])
            assert runtime.fleet.unit("c").state is UnitState.READY
            # three run now: S3 parks the longest idle of a, b (a was called first)
            with anyio.fail_after(20):
                parked = await notices.wait_for(
                    "unit.state", after=mark, where=lambda n: n.data["state"] == "parked"
                )
            assert parked.subject == "a"
            assert _running(runtime) == {"b", "c"}
