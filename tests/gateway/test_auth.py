"""The HTTP face's trust boundary over real HTTP: tokens, scopes, Host/Origin, session bounds, TLS."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from vsm_mcp.core.access import Scope, TokenRecord, token_digest
from vsm_mcp.errors import ConfigError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.gateway import Gateway
from vsm_mcp.gateway.access import StoreAudit, principal_of
from vsm_mcp.gateway.bearer import bearer_client, bearer_headers
from vsm_mcp.gateway.binding import HttpListen
from vsm_mcp.gateway.keyring import REFRESH_S, Keyring
from vsm_mcp.gateway.server import MAX_LISTEN_STREAMS_PER_PRINCIPAL
from vsm_mcp.gateway.tokens import AdminTokenFile, TokenBook
from vsm_mcp.gateway.transport import MCP_PATH, serve_http
from vsm_mcp.store import MemoryStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ACCEPT = "application/json, text/event-stream"
VERSION = "2025-11-25"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


class FakeAcquire:
    """An own tool that needs ``approve``, recording who got through."""

    def __init__(self) -> None:
        self.callers: list[str] = []

    def definitions(self) -> list[dict[str, Any]]:
        schema = {"type": "object", "properties": {"query": {"type": "string"}}}
        return [{"name": "vsm_acquire_capability", "description": "acquire", "inputSchema": schema}]

    def scope(self, name: str) -> Scope:
        return Scope.APPROVE

    async def call(
        self, name: str, arguments: dict[str, Any], ctx: ServerRequestContext[Any, Any]
    ) -> dict[str, Any]:
        self.callers.append(principal_of(ctx).name)
        return {"acquired": arguments.get("query")}


@dataclass
class Face:
    url: str
    port: int
    store: MemoryStore
    tokens: dict[str, str]
    book: TokenBook
    extra: FakeAcquire
    clock: list[float] = field(default_factory=lambda: [0.0])

    def headers(self, name: str, **more: str) -> dict[str, str]:
        return {"accept": ACCEPT, **bearer_headers(self.tokens[name]), **more}


@asynccontextmanager
async def served(
    tmp_path: Path,
    spec: ServerSpec,
    listen: HttpListen | None = None,
    *,
    store: MemoryStore,
    **options: Any,
) -> AsyncIterator[Face]:
    """The gateway fronting ``spec`` over HTTP, with tokens admin, ci (call) and ops (call approve)."""
    clock = [0.0]
    async with Fleet([spec]) as fleet, anyio.create_task_group() as tg:
        with anyio.fail_after(20):
            await fleet.wait_ready(spec.name)
        admin = AdminTokenFile.in_state(tmp_path)
        assert admin.ensure() is True
        book = TokenBook(store, admin)
        tokens = {
            "admin": admin.read(),
            "ci": await book.create("ci", {Scope.CALL}),
            "ops": await book.create("ops", {Scope.CALL, Scope.APPROVE}),
        }
        extra = FakeAcquire()
        gateway = Gateway(fleet, extra=extra, audit=StoreAudit(store))
        keyring = Keyring(store, admin, clock=lambda: clock[0])
        where = listen or HttpListen("127.0.0.1", 0)

        async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            await serve_http(gateway, where, keyring, task_status=task_status, **options)

        port = await tg.start(run)
        try:
            yield Face(f"http://127.0.0.1:{port}{MCP_PATH}", port, store, tokens, book, extra, clock)
        finally:
            tg.cancel_scope.cancel()


async def _initialize(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    return await http.post(url, json=INIT, headers=headers)


async def test_every_request_needs_a_known_bearer_token(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    async with (
        MemoryStore.open() as store,
        served(tmp_path, probe_spec(), store=store) as face,
        httpx.AsyncClient(timeout=20) as http,
    ):
        for headers in (
            {"accept": ACCEPT},
            {"accept": ACCEPT, "authorization": "Bearer vsm_not-a-token"},
            {"accept": ACCEPT, "authorization": f"Basic {face.tokens['ci']}"},
        ):
            refused = await _initialize(http, face.url, headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer ")
            assert refused.json() == {
                "error": "invalid_token",
                "error_description": "Authentication required",
            }
            assert "mcp-session-id" not in refused.headers
        for name in ("admin", "ci", "ops"):
            opened = await _initialize(http, face.url, face.headers(name))
            assert opened.status_code == 200, opened.text
            assert '"serverInfo"' in opened.text
        # The session belongs to the token that opened it: another token's requests do not reach it.
        session = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        stolen = await http.post(
            face.url,
            json=ping,
            headers=face.headers("ci", **{"mcp-session-id": session, "mcp-protocol-version": VERSION}),
        )
        assert stolen.status_code == 404


async def test_a_call_only_token_calls_tools_but_not_what_needs_approve(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    async with MemoryStore.open() as store:
        async with served(tmp_path, probe_spec(), store=store) as face:
            async with bearer_client(face.url, face.tokens["ci"], mode="legacy") as ci:
                names = [t.name for t in (await ci.list_tools()).tools]
                assert "vsm_acquire_capability" in names and "probe__echo" in names
                echoed = await ci.call_tool("probe__echo", {"text": "over http"})
                assert echoed.content[0].text == "over http"  # type: ignore[union-attr]
                status = await ci.call_tool("vsm_status", {})
                assert status.is_error is False
                for name, arguments in (
                    ("vsm_acquire_capability", {"query": "time"}),
                    ("vsm_call_tool", {"name": "vsm_acquire_capability", "arguments": {"query": "time"}}),
                ):
                    with pytest.raises(MCPError) as refused:
                        await ci.call_tool(name, arguments)
                    assert refused.value.error.message == (
                        "token 'ci' lacks scope 'approve' needed for vsm_acquire_capability"
                    )
                    assert refused.value.error.data == {"token": "ci", "scope": "approve"}
            async with bearer_client(face.url, face.tokens["ops"], mode="legacy") as ops:
                done = await ops.call_tool("vsm_acquire_capability", {"query": "time"})
                assert done.structured_content == {"acquired": "time"}
            async with bearer_client(face.url, face.tokens["admin"]) as admin:  # a 2026-07-28 client
                done = await admin.call_tool("vsm_acquire_capability", {"query": "clock"})
                assert done.structured_content == {"acquired": "clock"}
        assert face.extra.callers == ["ops", "admin"]
        # The first denial is stored naming the token; the second (within DENIAL_RECORD_EVERY_S) is counted.
        [denied] = await face.store.decisions()
        assert (denied.system, denied.subject, denied.choice, denied.rule) == (
            "gateway",
            "access:vsm_acquire_capability",
            "refuse",
            "scope",
        )
        assert denied.rationale == "token 'ci' lacks scope 'approve' needed for vsm_acquire_capability"
        assert denied.inputs["token"] == "ci"
        assert denied.inputs["scopes"] == ["call"]
        assert denied.inputs["arguments"] == {"query": "time"}


async def test_an_approve_only_token_may_acquire_but_not_call_tools(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    async with MemoryStore.open() as store, served(tmp_path, probe_spec(), store=store) as face:
        face.tokens["approver"] = await face.book.create("approver", {Scope.APPROVE})
        face.clock[0] += REFRESH_S
        async with bearer_client(face.url, face.tokens["approver"], mode="legacy") as client:
            assert "vsm_acquire_capability" in [t.name for t in (await client.list_tools()).tools]
            with pytest.raises(
                MCPError, match=r"^token 'approver' lacks scope 'call' needed for resources/list$"
            ):
                await client.list_resources()
            with pytest.raises(MCPError, match=r"lacks scope 'call' needed for probe__echo$"):
                await client.call_tool("probe__echo", {"text": "x"})
            done = await client.call_tool("vsm_acquire_capability", {"query": "time"})
            assert done.structured_content == {"acquired": "time"}


async def test_one_token_holds_at_most_its_share_of_listen_streams(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    async with (
        MemoryStore.open() as store,
        served(tmp_path, probe_spec(), store=store) as face,
        bearer_client(face.url, face.tokens["ci"]) as ci,
        bearer_client(face.url, face.tokens["ops"]) as ops,
        AsyncExitStack() as held,
    ):
        streams = [
            await held.enter_async_context(ci.listen(tools_list_changed=True))
            for _ in range(MAX_LISTEN_STREAMS_PER_PRINCIPAL)
        ]
        assert len(streams) == MAX_LISTEN_STREAMS_PER_PRINCIPAL
        with pytest.raises(
            MCPError, match=r"^ci holds 16 listen streams already, as many as one principal may"
        ):
            async with ci.listen(tools_list_changed=True):
                pass
        # another token is not held back by this one's streams
        async with ops.listen(tools_list_changed=True) as other:
            assert other.honored.tools_list_changed is True
        # a stream closed frees its place
        await held.aclose()
        async with ci.listen(tools_list_changed=True) as again:
            assert again.honored.tools_list_changed is True


async def test_revoked_and_rotated_tokens_stop_working_within_the_refresh(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    async with MemoryStore.open() as store:
        async with served(tmp_path, probe_spec(), store=store) as face, httpx.AsyncClient(timeout=20) as http:
            assert (await _initialize(http, face.url, face.headers("ci"))).status_code == 200
            # A token created a moment ago works at once (a miss rereads the store).
            fresh = await face.book.create("fresh", {Scope.CALL})
            face.clock[0] += 0.2
            headers = {"accept": ACCEPT, **bearer_headers(fresh)}
            assert (await _initialize(http, face.url, headers)).status_code == 200

            await face.book.revoke("ci")
            new_admin = await face.book.rotate()
            # Within REFRESH_S the gateway still knows the old values; after it, never again.
            assert (await _initialize(http, face.url, face.headers("ci"))).status_code == 200
            face.clock[0] += REFRESH_S
            assert (await _initialize(http, face.url, face.headers("ci"))).status_code == 401
            assert (await _initialize(http, face.url, face.headers("admin"))).status_code == 401
            headers = {"accept": ACCEPT, **bearer_headers(new_admin)}
            assert (await _initialize(http, face.url, headers)).status_code == 200
        # Last uses are written when the face stops (and every LAST_USE_FLUSH_S while it runs).
        used = {t.name: t.last_used_at for t in await face.store.tokens()}
        assert used["fresh"] is not None and used["ops"] is None


async def test_host_and_origin_are_checked_on_loopback(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    listen = HttpListen("127.0.0.1", 0, allow_origins=("https://app.example",))
    async with (
        MemoryStore.open() as store,
        served(tmp_path, probe_spec(), listen, store=store) as face,
        httpx.AsyncClient(timeout=20) as http,
    ):
        own = f"http://127.0.0.1:{face.port}"
        cases = [
            ({}, 200),
            ({"host": "localhost"}, 200),
            ({"host": f"localhost:{face.port}"}, 200),
            ({"host": f"[::1]:{face.port}"}, 200),
            ({"origin": own}, 200),
            ({"origin": f"http://localhost:{face.port}"}, 200),
            ({"origin": "https://app.example"}, 200),
            ({"host": f"evil.example.com:{face.port}"}, 421),
            ({"origin": "http://evil.example.com"}, 403),
            ({"origin": f"http://localhost:{face.port + 1}"}, 403),  # another port is another origin
            ({"origin": f"https://127.0.0.1:{face.port}"}, 403),  # another scheme too
        ]
        got = [
            (extra, (await _initialize(http, face.url, face.headers("ci", **extra))).status_code)
            for extra, _ in cases
        ]
    assert got == cases


async def test_a_public_bind_answers_its_listed_host_names_only(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    listen = HttpListen("0.0.0.0", 0, public=True, allow_hosts=("gw.example",))
    async with (
        MemoryStore.open() as store,
        served(tmp_path, probe_spec(), listen, store=store) as face,
        httpx.AsyncClient(timeout=20) as http,
    ):
        assert (await _initialize(http, face.url, face.headers("ci", host="gw.example"))).status_code == 200
        assert (
            await _initialize(http, face.url, face.headers("ci", host="other.example"))
        ).status_code == 421
        assert (
            await _initialize(http, face.url, {"accept": ACCEPT, "host": "gw.example"})
        ).status_code == 401
    notices = listen.notices(face.port)
    assert notices[0].startswith(
        f"PUBLIC: listening on 0.0.0.0:{face.port}; the bearer token is the only guard"
    )
    assert "gw.example" in notices[1]
    assert notices[2].startswith("  no TLS: tokens cross the network in clear text")


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        (
            HttpListen("0.0.0.0", 8765),
            "refusing to listen on 0.0.0.0:8765 (every interface) without --public: the bearer token would "
            "be the only guard. Use 127.0.0.1:8765, or add --public (and --allow-host NAME for each name "
            "clients use)",
        ),
        (HttpListen("::", 8765), "refusing to listen on [::]:8765 (every interface) without --public"),
        (HttpListen("192.0.2.7", 8765), "refusing to listen on 192.0.2.7:8765 (beyond this machine)"),
        (HttpListen("127.0.0.1", 8765, tls_cert=Path("c.pem")), "--tls-cert and --tls-key go together"),
        (
            HttpListen("127.0.0.1", 8765, allow_origins=("app.example",)),
            "--allow-origin expects scheme://host[:port]",
        ),
    ],
)
def test_a_bind_that_must_not_start_is_refused_with_its_fix(listen: HttpListen, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        listen.check()
    assert str(refused.value).startswith(message)


def test_loopback_binds_start_without_public() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        HttpListen(host, 0).check()
        assert HttpListen(host, 0).notices(8765) == []


async def test_a_session_flood_from_one_token_leaves_another_token_working(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    async with (
        MemoryStore.open() as store,
        served(tmp_path, probe_spec(), store=store, sessions_per_token=4) as face,
        httpx.AsyncClient(timeout=20) as http,
    ):
        opened = [await _initialize(http, face.url, face.headers("ci")) for _ in range(4)]
        assert [r.status_code for r in opened] == [200, 200, 200, 200]
        flood = [await _initialize(http, face.url, face.headers("ci")) for _ in range(20)]
        assert {r.status_code for r in flood} == {429}
        error = flood[0].json()["error"]
        assert error["message"] == (
            "token 'ci' holds 4 sessions, the most one token may hold; end one (DELETE with its "
            "Mcp-Session-Id) or wait: a session idle for 600 s is closed"
        )
        # Another token is not locked out: its client opens, lists and calls.
        async with bearer_client(face.url, face.tokens["ops"], mode="legacy") as ops:
            echoed = await ops.call_tool("probe__echo", {"text": "still here"})
            assert echoed.content[0].text == "still here"  # type: ignore[union-attr]
        # Ending one of its sessions gives the flooding token its place back.
        ended = await http.delete(
            face.url,
            headers=face.headers(
                "ci",
                **{"mcp-session-id": opened[0].headers["mcp-session-id"], "mcp-protocol-version": VERSION},
            ),
        )
        assert ended.status_code == 200
        assert (await _initialize(http, face.url, face.headers("ci"))).status_code == 200


async def test_idle_sessions_of_a_token_are_closed_and_free_its_place(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec]
) -> None:
    async with (
        MemoryStore.open() as store,
        served(tmp_path, probe_spec(), store=store, sessions_per_token=2, session_idle_s=0.3) as face,
        httpx.AsyncClient(timeout=20) as http,
    ):
        first = [await _initialize(http, face.url, face.headers("ci")) for _ in range(2)]
        assert [r.status_code for r in first] == [200, 200]
        assert (await _initialize(http, face.url, face.headers("ci"))).status_code == 429
        started = anyio.current_time()
        with anyio.fail_after(10):
            while (await _initialize(http, face.url, face.headers("ci"))).status_code == 429:  # noqa: ASYNC110
                await anyio.sleep(0.05)  # the idle timer fires in the server: a client can only ask again
        assert anyio.current_time() - started >= 0.2
        # The idle sessions are gone: their ids answer 404.
        headers = face.headers(
            "ci", **{"mcp-session-id": first[0].headers["mcp-session-id"], "mcp-protocol-version": VERSION}
        )
        gone = await http.post(face.url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=headers)
        assert gone.status_code == 404


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (openssl, one day)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr.decode()[-300:]}")
    return cert, key


async def test_tls_serves_https_with_the_given_certificate(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    listen = HttpListen("127.0.0.1", 0, tls_cert=cert, tls_key=key)
    async with (
        MemoryStore.open() as store,
        served(tmp_path, probe_spec(), listen, store=store) as face,
        httpx.AsyncClient(timeout=20, verify=ssl.create_default_context(cafile=cert)) as http,
    ):
        url = f"https://127.0.0.1:{face.port}{MCP_PATH}"
        opened = await _initialize(http, url, face.headers("ci", origin=f"https://127.0.0.1:{face.port}"))
        assert opened.status_code == 200
        plain = await _initialize(http, url, face.headers("ci", origin=f"http://127.0.0.1:{face.port}"))
        assert plain.status_code == 403  # the face's own origin is https now
        with pytest.raises(httpx.HTTPError):
            await _initialize(http, f"http://127.0.0.1:{face.port}{MCP_PATH}", face.headers("ci"))


async def test_stored_tokens_are_digests_only(tmp_path: Path) -> None:
    async with MemoryStore.open() as store:
        book = TokenBook(store, AdminTokenFile.in_state(tmp_path))
        value = await book.create("ci", {Scope.CALL})
        assert value.startswith("vsm_") and len(value) == 4 + 43
        [stored] = await store.tokens()
        assert stored == TokenRecord("ci", token_digest(value), frozenset({Scope.CALL}), stored.created_at)
        assert value not in repr(stored)
