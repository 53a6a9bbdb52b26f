"""A server's listing is bounded: past `MAX_LISTED_ITEMS` or `MAX_LISTED_BYTES` its start fails and
says why, and none of its tools is kept; a large listing within the bounds is kept whole."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from tests.fleet.test_unit import Signals

from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.unit import MAX_LISTED_BYTES, MAX_LISTED_ITEMS, Unit
from vsm_mcp.vsm.events import UnitState

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LISTING = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "listing_server.py"


def listing_spec(*flags: str) -> ServerSpec:
    return ServerSpec(
        name="lister",
        command=sys.executable,
        args=[str(LISTING), *flags],
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        start_timeout_s=60.0,
        crash_loop_restarts=2,
    )


async def test_a_paged_listing_within_the_bounds_is_kept_whole() -> None:
    unit = Unit(listing_spec("--tools", "2500", "--per-page", "1000"), Signals())
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(120):
            await unit.first_start.wait()
        assert unit.state is UnitState.READY
        assert len(unit.catalog.tools) == 2500
        assert unit.catalog.tools[-1]["name"] == "tool_2499"
        tg.cancel_scope.cancel()


async def test_more_tools_than_a_server_may_list_fail_its_start_and_say_why() -> None:
    observer = Signals()
    unit = Unit(listing_spec("--tools", str(MAX_LISTED_ITEMS + 500), "--per-page", "2000"), observer)
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(120):
            await observer.kind("crash_loop").wait()
        assert unit.state is UnitState.FAILED
        assert unit.catalog.tools == ()
        assert f"failed: it lists more than {MAX_LISTED_ITEMS:,} tools" in unit.stats.last_error
        tg.cancel_scope.cancel()


async def test_tools_larger_than_a_server_may_list_fail_its_start_and_say_why() -> None:
    observer = Signals()
    # three tools of 6 MiB each: 18 MiB over two pages, each page within a message's size
    per_tool = 6 * 2**20
    unit = Unit(
        listing_spec("--tools", "3", "--per-page", "2", "--description-bytes", str(per_tool)), observer
    )
    assert 3 * per_tool > MAX_LISTED_BYTES
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(120):
            await observer.kind("crash_loop").wait()
        assert unit.state is UnitState.FAILED
        assert unit.catalog.tools == ()
        assert "its tools take more than 16 MiB" in unit.stats.last_error
        tg.cancel_scope.cancel()
