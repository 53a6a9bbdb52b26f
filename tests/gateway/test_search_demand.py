"""A search is demand answered only by a call that follows it: the rule, its bounds, over real faces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from vsm_mcp.core.access import Scope
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.gateway import Gateway, WindowDemand
from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.binding import HttpListen
from vsm_mcp.gateway.keyring import Keyring
from vsm_mcp.gateway.search_demand import PendingSearches
from vsm_mcp.gateway.tokens import AdminTokenFile, TokenBook
from vsm_mcp.gateway.transport import MCP_PATH, serve_http
from vsm_mcp.store import MemoryStore


class Recorded:
    def __init__(self) -> None:
        self.events: list[tuple[str, bool]] = []

    def __call__(self, category: str, matched: bool) -> None:
        self.events.append((category, matched))


def _searches(**options: int) -> tuple[PendingSearches, Recorded, list[float]]:
    now = [0.0]
    recorded = Recorded()
    return PendingSearches(recorded, window_s=60.0, clock=lambda: now[0], **options), recorded, now


def test_a_call_of_a_shown_tool_answers_the_search_and_adds_no_event() -> None:
    searches, recorded, _ = _searches()
    searches.searched("a", "time", ["time__now", "time__convert"])
    searches.called("a", "time__convert")
    assert recorded.events == [] and searches.summary() == {"pending": 0, "answered": 1, "unanswered": 0}


def test_no_hit_is_unmatched_at_once_and_an_unanswered_window_is_unmatched_when_it_ends() -> None:
    searches, recorded, now = _searches()
    searches.searched("a", "search:klingon", [])
    assert recorded.events == [("search:klingon", False)]
    searches.searched("a", "time", ["time__now"])
    now[0] = 59.0
    assert searches.expire() == 0
    now[0] = 60.0
    assert searches.expire() == 1
    assert recorded.events[-1] == ("time", False)
    searches.called("a", "time__now")  # too late: nothing pending
    assert searches.summary() == {"pending": 0, "answered": 0, "unanswered": 2}


def test_other_calls_use_up_a_search_and_clients_do_not_answer_each_others() -> None:
    searches, recorded, _ = _searches(calls=2)
    searches.searched("a", "time", ["time__now"])
    searches.called("b", "time__now")  # another client's call
    assert searches.pending("a") == 1
    searches.called("a", "files__read")
    assert recorded.events == []
    searches.called("a", "files__write")  # the second other call: the client has moved on
    assert recorded.events == [("time", False)]


def test_memory_is_bounded_per_client_and_in_all_and_a_gone_client_settles() -> None:
    searches, recorded, _ = _searches(per_client=2, total=3)
    for i in range(3):
        searches.searched("a", f"c{i}", ["x"])
    assert searches.pending("a") == 2 and recorded.events == [("c0", False)]
    searches.searched("b", "d0", ["y"])
    searches.searched("c", "e0", ["z"])  # the fourth in all: the oldest goes
    assert len(searches) == 3 and recorded.events[-1] == ("c1", False)
    searches.ended("b")
    assert recorded.events[-1] == ("d0", False) and searches.pending("b") == 0


pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_over_http_sessions_are_apart_and_counted_as_clients(
    probe_spec: Callable[..., ServerSpec], tmp_path: Path
) -> None:
    demand = WindowDemand()
    async with (
        MemoryStore.open() as store,
        Fleet([probe_spec("probe")]) as fleet,
        anyio.create_task_group() as tg,
    ):
        with anyio.fail_after(20):
            await fleet.wait_ready("probe")
        admin = AdminTokenFile.in_state(tmp_path)
        admin.ensure()
        token = await TokenBook(store, admin).create("ci", {Scope.CALL})
        gateway = Gateway(fleet, demand=demand, status=demand)

        async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            await serve_http(
                gateway, HttpListen("127.0.0.1", 0), Keyring(store, admin), task_status=task_status
            )

        port = await tg.start(run)
        url = f"http://127.0.0.1:{port}{MCP_PATH}"
        async with bearer_client(url, token, mode="legacy") as one:
            async with bearer_client(url, token, mode="legacy") as two:
                assert gateway.client_count() == 2
                await one.call_tool("vsm_search_tools", {"query": "add two integers"})
                await two.call_tool("probe__add", {"a": 1, "b": 2})  # not the client that searched
                assert gateway.searches.summary()["pending"] == 1
                await one.call_tool("probe__add", {"a": 1, "b": 2})
                assert gateway.searches.summary() == {"pending": 0, "answered": 1, "unanswered": 0}
                await one.call_tool("vsm_search_tools", {"query": "echo text"})
            with anyio.fail_after(10):  # the second client's session ends as it leaves
                while gateway.client_count() != 1:  # noqa: ASYNC110 - the SDK ends the session after the DELETE
                    await anyio.sleep(0.02)
        with anyio.fail_after(10):
            while gateway.client_count() != 0:  # noqa: ASYNC110 - the SDK ends the session after the DELETE
                await anyio.sleep(0.02)
        # The first client left with a search nobody answered: one unmatched event.
        assert gateway.searches.summary() == {"pending": 0, "answered": 1, "unanswered": 1}
        assert (demand.matched, demand.unmatched) == (2, 1)
        tg.cancel_scope.cancel()
