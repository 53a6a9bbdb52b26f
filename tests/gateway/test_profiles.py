"""Profiles on the gateway: a client sees, searches, calls and reads only its profile's part of the fleet.

Real servers behind a real gateway: two probe servers (``a``, ``b``) and the
conformance fixture server (``conf``: resources, templates and prompts),
reached in-process (stdio's ``serve --profile``), over HTTP at
``/mcp/p/<name>`` and with a token bound to a profile.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from vsm_mcp.core.access import Scope
from vsm_mcp.core.profiles import Profile, ToolOverride
from vsm_mcp.errors import ConfigError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.routing import Route, RoutingTable
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.gateway import Gateway, WindowDemand
from vsm_mcp.gateway.bearer import bearer_client, bearer_headers
from vsm_mcp.gateway.binding import HttpListen
from vsm_mcp.gateway.keyring import Keyring
from vsm_mcp.gateway.profiles import ProfileBook, ProfileView, StoredProfiles
from vsm_mcp.gateway.tokens import AdminTokenFile, TokenBook
from vsm_mcp.gateway.transport import MCP_PATH, serve_http
from vsm_mcp.gateway.vsm_tools import VSM_TOOLS
from vsm_mcp.store import MemoryStore

pytestmark = pytest.mark.anyio

CONFORMANCE = Path(__file__).resolve().parents[1] / "fixtures" / "conformance_server.py"
OWN = [str(t["name"]) for t in VSM_TOOLS]
#: Server ``a`` only, minus its ``crash`` tool, ``a__echo`` renamed and ``a__add`` described anew.
ONLY_A = Profile(
    "only-a",
    servers=("a",),
    deny_tools=("a__crash",),
    overrides={
        "a__echo": ToolOverride(name="say", description="Say it back."),
        "a__add": ToolOverride(description="Sum of two integers."),
    },
)
#: The conformance server's resources and prompts, and no gateway tool but search.
CONF = Profile("conf-only", servers=("conf",), deny_tools=("vsm_status", "vsm_variety", "vsm_call_tool"))


def _route(unit: str, tool: str) -> Route:
    public = f"{unit}__{tool}"
    return Route(public, unit, tool, {"name": public, "description": f"{tool} of {unit}", "inputSchema": {}})


def _table(*routes: Route) -> RoutingTable:
    return RoutingTable(tools={r.public: r for r in routes})


# -- the view, pure -------------------------------------------------------------------------------
def test_a_view_without_a_profile_is_the_whole_fleet() -> None:
    view = ProfileView(None, _table(_route("a", "x"), _route("b", "y")), VSM_TOOLS)
    assert [t["name"] for t in view.tools] == [*OWN, "a__x", "b__y"]
    resolved = view.resolve("b__y")
    assert resolved is not None and resolved.public == "b__y"


def test_a_view_renames_and_redescribes_and_the_old_name_is_gone() -> None:
    table = _table(_route("a", "echo"), _route("a", "add"), _route("a", "crash"), _route("b", "echo"))
    view = ProfileView(ONLY_A, table, VSM_TOOLS)
    tools = {t["name"]: t for t in view.tools}
    assert list(tools) == [*OWN, "say", "a__add"]
    assert tools["say"]["description"] == "Say it back."
    assert tools["a__add"]["description"] == "Sum of two integers."
    assert view.resolve("a__echo") is None and view.resolve("b__echo") is None
    said = view.resolve("say")
    assert said is not None and (said.public, said.route.unit, said.route.name) == ("a__echo", "a", "echo")
    assert table.tools["a__echo"].definition["name"] == "a__echo"  # the fleet's own table is untouched
    assert [h.name for h in view.index.search("integers sum")] == ["a__add"]
    assert view.admits_unit("a") and not view.admits_unit("b")


def test_a_rename_onto_a_name_the_view_already_shows_is_not_applied() -> None:
    profile = Profile(
        "p",
        overrides={
            "a__x": ToolOverride(name="b__y"),  # b__y is shown under its own name
            "a__z": ToolOverride(name="vsm_fine".replace("vsm_", "ok_")),
        },
    )
    view = ProfileView(profile, _table(_route("a", "x"), _route("b", "y"), _route("a", "z")), VSM_TOOLS)
    assert sorted(view.exposed) == ["a__x", "b__y", "ok_fine"]
    assert view.conflicts == [("a__x", "b__y", "another tool of the profile has that name")]
    target = view.resolve("b__y")
    assert target is not None and target.public == "b__y"


def test_a_denied_own_tool_leaves_the_view() -> None:
    view = ProfileView(CONF, _table(), VSM_TOOLS)
    assert [t["name"] for t in view.tools] == ["vsm_search_tools"]
    assert not view.admits_own("vsm_call_tool")


# -- the book -------------------------------------------------------------------------------------
async def test_the_book_adds_replaces_and_will_not_remove_a_profile_tokens_are_bound_to() -> None:
    store = MemoryStore()
    book = ProfileBook(store)
    await book.add(ONLY_A)
    with pytest.raises(ConfigError, match="exists; add it with --replace"):
        await book.add(ONLY_A)
    await book.add(Profile("only-a", servers=("b",)), replace_existing=True)
    assert (await book.get("only-a")).servers == ("b",)
    tokens = TokenBook(store, AdminTokenFile(Path("/nonexistent/admin.token")))
    with pytest.raises(ConfigError, match="no profile named 'nope'"):
        await tokens.create("ide", {Scope.CALL}, profile="nope")
    await tokens.create("ide", {Scope.CALL}, profile="only-a")
    with pytest.raises(ConfigError, match="tokens bound to profile 'only-a': ide"):
        await book.remove("only-a")
    assert await book.remove("only-a", force=True) == ["ide"]
    assert await book.all() == {}
    with pytest.raises(ConfigError, match="no profile named 'only-a'"):
        await book.remove("only-a")


async def test_stored_profiles_see_a_change_and_keep_the_last_good_ones_when_the_store_is_bad() -> None:
    store = MemoryStore()
    stored = StoredProfiles(store)
    assert await stored.load() is False and stored.generation == 0
    await ProfileBook(store).add(ONLY_A)
    assert await stored.load() is True and stored.profile("only-a") == ONLY_A
    assert await stored.load() is False and stored.generation == 1
    await store.kv_put("gateway.profiles", {"only-a": {"name": "only-a", "servers": "a"}})
    assert await stored.load() is False
    assert stored.profile("only-a") == ONLY_A
    assert stored.error is not None and "malformed" in stored.error


# -- a real gateway -------------------------------------------------------------------------------
def _conformance_spec() -> ServerSpec:
    return ServerSpec(
        name="conf", command=sys.executable, args=[str(CONFORMANCE), "--stdio"], start_timeout_s=20
    )


@asynccontextmanager
async def fronted(
    probe_spec: Callable[..., ServerSpec], *, profile: str | None = None
) -> AsyncIterator[tuple[Gateway, MemoryStore, StoredProfiles, WindowDemand]]:
    store = MemoryStore()
    for p in (ONLY_A, CONF):
        await ProfileBook(store).add(p)
    profiles = StoredProfiles(store)
    await profiles.load()
    specs = [probe_spec("a"), probe_spec("b"), _conformance_spec()]
    demand = WindowDemand()
    async with Fleet(specs) as fleet:
        with anyio.fail_after(30):
            for spec in specs:
                await fleet.wait_ready(spec.name)
        yield (
            Gateway(fleet, demand=demand, status=demand, profiles=profiles, profile=profile),
            store,
            profiles,
            demand,
        )


def _names(result: types.ListToolsResult) -> list[str]:
    return [t.name for t in result.tools]


def _structured(result: types.CallToolResult) -> Any:
    assert not result.is_error, result
    return result.structured_content


@pytest.mark.slow
async def test_a_profiled_face_lists_searches_calls_and_reads_only_its_part(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with fronted(probe_spec, profile="only-a") as (gateway, _, _, demand):
        async with Client(gateway.server, mode="legacy") as client:
            tools = await client.list_tools()
            of_a = [n for n in gateway.fleet.routes.tools if n.startswith("a__")]
            assert {"a__echo", "a__crash", "a__add"} <= set(of_a)
            expected = [*OWN, *("say" if n == "a__echo" else n for n in of_a if n != "a__crash")]
            assert _names(tools) == expected
            assert next(t for t in tools.tools if t.name == "say").description == "Say it back."

            assert _structured(await client.call_tool("say", {"text": "hi"})) == {"result": "hi"}
            via = await client.call_tool("vsm_call_tool", {"name": "say", "arguments": {"text": "yo"}})
            assert _structured(via)["result"] == "yo"
            for outside in ("b__echo", "a__echo", "a__crash", "conf__test_simple_text"):
                with pytest.raises(MCPError, match=f"Unknown tool: '{outside}'.*tools of profile 'only-a'"):
                    await client.call_tool(outside, {"text": "x"})
                with pytest.raises(MCPError, match="Unknown tool"):
                    await client.call_tool("vsm_call_tool", {"name": outside, "arguments": {"text": "x"}})

            found = _structured(await client.call_tool("vsm_search_tools", {"query": "echo text back"}))
            assert {t["server"] for t in found["tools"]} == {"a"}
            assert "b__echo" not in {t["name"] for t in found["tools"]}

            resources = await client.list_resources()
            assert {str(r.uri) for r in resources.resources} == {
                "vsm://status",
                "vsm://variety",
                "vsm://fleet",
            }
            assert (await client.list_prompts()).prompts == []
            with pytest.raises(MCPError, match="Resource not found"):
                await client.read_resource("test://static-text")
            with pytest.raises(MCPError, match="Unknown prompt"):
                await client.get_prompt("test_simple_prompt")
            status = json.loads(_text(await client.read_resource("vsm://fleet")))
            assert [u["name"] for u in status["units"]] == ["a"]
        # Calls outside the profile are not demand the fleet lacks (it has those tools): the two calls
        # of ``say`` are matched and nothing is unmatched.
        assert (demand.matched, demand.unmatched) == (2, 0)  # two calls of say
        assert gateway.searches.summary()["pending"] == 1  # the search waits for a call of what it showed


def _text(result: types.ReadResourceResult) -> str:
    content = result.contents[0]
    assert isinstance(content, types.TextResourceContents)
    return content.text


@pytest.mark.slow
async def test_a_profile_of_one_server_shows_its_resources_and_prompts(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with (
        fronted(probe_spec, profile="conf-only") as (gateway, _, _, _),
        Client(gateway.server, mode="legacy") as client,
    ):
        tools = _names(await client.list_tools())
        assert "vsm_search_tools" in tools and "vsm_call_tool" not in tools
        assert all(n == "vsm_search_tools" or n.startswith("conf__") for n in tools)
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "test://static-text" in uris
        assert (await client.read_resource("test://static-text")).contents
        assert (await client.list_prompts()).prompts
        with pytest.raises(MCPError, match="Unknown tool: 'vsm_status'"):
            await client.call_tool("vsm_status", {})


@pytest.mark.slow
async def test_a_profile_change_reaches_a_connected_client_with_list_changed(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    heard = anyio.Event()
    reread: list[anyio.Event] = [anyio.Event()]

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            heard.set()

    async with fronted(probe_spec, profile="only-a") as (gateway, store, profiles, _):

        async def changed() -> None:
            await gateway.fleet_changed()
            reread[-1].set()

        async with (
            Client(gateway.server, mode="legacy", message_handler=on_message) as client,
            anyio.create_task_group() as tg,
        ):
            assert "a__add" in _names(await client.list_tools())
            tg.start_soon(profiles.poll, changed)
            await ProfileBook(store).add(Profile("only-a", servers=("b",)), replace_existing=True)
            with anyio.fail_after(10):
                await heard.wait()
                await reread[0].wait()  # the first change is done before the second is awaited
            names = _names(await client.list_tools())
            assert "b__echo" in names and "a__add" not in names
            reread.append(anyio.Event())
            await ProfileBook(store).remove("only-a")
            with anyio.fail_after(10):
                await reread[-1].wait()
            with pytest.raises(MCPError, match="profile 'only-a' does not exist"):
                await client.list_tools()
            tg.cancel_scope.cancel()


# -- over HTTP ------------------------------------------------------------------------------------
@dataclass
class Served:
    base: str
    tokens: dict[str, str]


@asynccontextmanager
async def served_http(probe_spec: Callable[..., ServerSpec], tmp_path: Path) -> AsyncIterator[Served]:
    async with fronted(probe_spec) as (gateway, store, _, _), anyio.create_task_group() as tg:
        admin = AdminTokenFile.in_state(tmp_path)
        admin.ensure()
        book = TokenBook(store, admin)
        tokens = {
            "admin": admin.read(),
            "ide": await book.create("ide", {Scope.CALL}, profile="only-a"),
            "gone": await book.create("gone", {Scope.CALL}, profile="conf-only"),
        }
        await ProfileBook(store).remove("conf-only", force=True)
        assert gateway.profiles is not None
        await gateway.profiles.load()  # type: ignore[attr-defined]

        async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            await serve_http(
                gateway, HttpListen("127.0.0.1", 0), Keyring(store, admin), task_status=task_status
            )

        port = await tg.start(run)
        try:
            yield Served(f"http://127.0.0.1:{port}{MCP_PATH}", tokens)
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.slow
async def test_a_token_bound_to_a_profile_sees_only_it_on_every_path(
    probe_spec: Callable[..., ServerSpec], tmp_path: Path
) -> None:
    async with served_http(probe_spec, tmp_path) as face:
        # The bound token on the plain path: its profile.
        async with bearer_client(face.base, face.tokens["ide"], mode="legacy") as client:
            names = _names(await client.list_tools())
            assert "say" in names and "b__echo" not in names and "a__echo" not in names
            assert _structured(await client.call_tool("say", {"text": "hi"})) == {"result": "hi"}
            with pytest.raises(MCPError, match="Unknown tool: 'b__echo'"):
                await client.call_tool("b__echo", {"text": "x"})
            found = _structured(await client.call_tool("vsm_search_tools", {"query": "echo"}))
            assert {t["server"] for t in found["tools"]} == {"a"}
        # ... and on its own profile's path; the admin token there sees the same subset.
        for who in ("ide", "admin"):
            async with bearer_client(f"{face.base}/p/only-a", face.tokens[who], mode="legacy") as client:
                assert "say" in _names(await client.list_tools())
                assert "b__echo" not in _names(await client.list_tools())
        # The admin token on the plain path: everything.
        async with bearer_client(face.base, face.tokens["admin"], mode="legacy") as client:
            names = _names(await client.list_tools())
            assert {"a__echo", "b__echo"} <= set(names) and "say" not in names

        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        accept = {"accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient() as http:
            other = await http.post(
                f"{face.base}/p/conf-only",
                json=init,
                headers={**accept, **bearer_headers(face.tokens["ide"])},
            )
            assert other.status_code == 403
            assert "bound to profile 'only-a': use /mcp/p/only-a" in other.json()["error"]["message"]
            missing = await http.post(
                f"{face.base}/p/nope", json=init, headers={**accept, **bearer_headers(face.tokens["admin"])}
            )
            assert missing.status_code == 404
            assert "no profile named 'nope'" in missing.json()["error"]["message"]
            orphan = await http.post(
                face.base, json=init, headers={**accept, **bearer_headers(face.tokens["gone"])}
            )
            assert orphan.status_code == 403
            assert "bound to profile 'conf-only', which no longer exists" in orphan.json()["error"]["message"]
            anonymous = await http.post(f"{face.base}/p/only-a", json=init, headers=accept)
            assert anonymous.status_code == 401
