"""The gateway's streamable HTTP face, spoken to with raw httpx: SSE priming and resumption (SEP-1699)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.gateway import Gateway
from vsm_mcp.gateway.bearer import bearer_client, bearer_headers
from vsm_mcp.gateway.binding import HttpListen
from vsm_mcp.gateway.events import EventLog
from vsm_mcp.gateway.keyring import Keyring
from vsm_mcp.gateway.tokens import AdminTokenFile
from vsm_mcp.gateway.transport import HTTP_SHUTDOWN_S, MCP_PATH, RETRY_INTERVAL_MS, serve_http
from vsm_mcp.store import MemoryStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"


def _access(state: Path) -> tuple[Keyring, dict[str, str]]:
    """A keyring knowing only the admin token (kept in ``state``), and the header presenting it."""
    admin = AdminTokenFile.in_state(state)
    admin.ensure()
    return Keyring(MemoryStore(), admin), bearer_headers(admin.read())


@asynccontextmanager
async def live(spec: ServerSpec, log: EventLog) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The gateway over HTTP in front of ``spec``: its URL and the admin token's header."""
    with tempfile.TemporaryDirectory() as state:
        keyring, auth = _access(Path(state))
        async with Fleet([spec]) as fleet, anyio.create_task_group() as tg:
            with anyio.fail_after(20):
                await fleet.wait_ready(spec.name)
            listen = HttpListen("127.0.0.1", 0)
            port = await tg.start(
                lambda task_status: serve_http(
                    Gateway(fleet), listen, keyring, log=log, task_status=task_status
                )
            )
            try:
                yield f"http://127.0.0.1:{port}{MCP_PATH}", auth
            finally:
                tg.cancel_scope.cancel()


async def _events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """SSE events of a streamed response as field dicts."""
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if event:
                yield event
            event = {}
            continue
        field, _, value = line.partition(":")
        event[field] = value.removeprefix(" ")


def _rpc(method: str, params: dict[str, Any] | None = None, id: int | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id is not None:
        msg["id"] = id
    return msg


async def _open_session(http: httpx.AsyncClient, url: str) -> tuple[str, list[dict[str, str]]]:
    init = _rpc(
        "initialize",
        {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        id=1,
    )
    async with http.stream("POST", url, json=init, headers={"accept": ACCEPT}) as response:
        assert response.status_code == 200
        session = response.headers["mcp-session-id"]
        events = [e async for e in _events(response)]
    headers = {"accept": ACCEPT, "mcp-session-id": session, "mcp-protocol-version": VERSION}
    done = await http.post(url, json=_rpc("notifications/initialized"), headers=headers)
    assert done.status_code == 202
    return session, events


async def test_a_2025_11_25_client_is_primed_with_an_event_id_and_retry(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with (
        live(probe_spec("probe"), EventLog()) as (url, auth),
        httpx.AsyncClient(timeout=20, headers=auth) as http,
    ):
        _, events = await _open_session(http, url)
    priming, answer = events
    assert priming == {"id": priming["id"], "data": "", "retry": str(RETRY_INTERVAL_MS)}
    assert priming["id"].isdecimal()
    assert int(answer["id"]) > int(priming["id"])
    assert json.loads(answer["data"])["result"]["serverInfo"]["name"] == "vsm-mcp"


async def test_a_dropped_call_stream_is_resumed_with_last_event_id(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    log = EventLog()
    async with (
        live(probe_spec("probe"), log) as (url, auth),
        httpx.AsyncClient(timeout=20, headers=auth) as http,
    ):
        session, _ = await _open_session(http, url)
        headers = {"accept": ACCEPT, "mcp-session-id": session, "mcp-protocol-version": VERSION}
        call = _rpc(
            "tools/call",
            {
                "name": "probe__slow",
                "arguments": {"steps": 3, "step_s": 0.2},
                "_meta": {"progressToken": "p"},
            },
            id=2,
        )
        seen: list[dict[str, str]] = []
        with anyio.fail_after(20):
            async with http.stream("POST", url, json=call, headers=headers) as response:
                async for event in _events(response):
                    seen.append(event)
                    if event.get("data"):
                        break  # the connection drops after the first progress notification
        priming, first = seen
        assert priming["data"] == "" and priming["retry"] == str(RETRY_INTERVAL_MS)
        assert json.loads(first["data"])["params"]["progress"] == 1
        # Everything after `first` happens while no one listens; wait until the call has answered.
        with anyio.fail_after(20):
            while True:
                kept = log.after(int(first["id"]))
                if kept is not None and any(getattr(m, "id", None) == 2 for _, m in kept[1]):
                    break
                await anyio.sleep(0.02)
        resumed: list[dict[str, str]] = []
        with anyio.fail_after(20):
            async with http.stream("GET", url, headers={**headers, "last-event-id": first["id"]}) as response:
                assert response.status_code == 200
                async for event in _events(response):
                    if event.get("data"):
                        resumed.append(event)
                        if "result" in json.loads(event["data"]):
                            break
    messages = [json.loads(e["data"]) for e in resumed]
    assert [m["params"]["progress"] for m in messages[:-1]] == [2, 3]
    assert [m["params"]["progressToken"] for m in messages[:-1]] == ["p", "p"]
    assert messages[-1]["id"] == 2
    assert messages[-1]["result"]["content"][0]["text"] == "done after 3 steps"
    ids = [int(e["id"]) for e in resumed]
    assert ids == sorted(ids) and ids[0] > int(first["id"])


async def test_another_session_cannot_replay_a_session_s_events(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with (
        live(probe_spec("probe"), EventLog()) as (url, auth),
        httpx.AsyncClient(timeout=20, headers=auth) as http,
    ):
        _, events_a = await _open_session(http, url)
        session_b, _ = await _open_session(http, url)
        headers = {"accept": ACCEPT, "mcp-session-id": session_b, "mcp-protocol-version": VERSION}
        with anyio.fail_after(20):
            response = await http.get(url, headers={**headers, "last-event-id": events_a[0]["id"]})
    assert response.status_code == 200
    assert "serverInfo" not in response.text
    assert response.text.strip() == ""


async def test_stopping_ends_open_streams_at_once_and_quietly(
    probe_spec: Callable[..., ServerSpec], capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = probe_spec("probe")
    keyring, auth = _access(tmp_path)
    async with Fleet([spec]) as fleet, anyio.create_task_group() as tg:
        with anyio.fail_after(20):
            await fleet.wait_ready(spec.name)
        serving = anyio.CancelScope()
        stopped = anyio.Event()

        async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            with serving:
                await serve_http(Gateway(fleet), HttpListen("127.0.0.1", 0), keyring, task_status=task_status)
            stopped.set()

        url = f"http://127.0.0.1:{await tg.start(run)}{MCP_PATH}"
        token = auth["Authorization"].removeprefix("Bearer ")
        async with httpx.AsyncClient(timeout=20, headers=auth) as http, bearer_client(url, token) as modern:
            session, _ = await _open_session(http, url)
            headers = {"accept": ACCEPT, "mcp-session-id": session, "mcp-protocol-version": VERSION}
            async with (
                http.stream("GET", url, headers=headers) as stream,
                modern.listen(tools_list_changed=True) as events,
            ):
                assert stream.status_code == 200
                started = time.monotonic()
                serving.cancel()
                with anyio.fail_after(HTTP_SHUTDOWN_S):
                    assert [e async for e in _events(stream)] == []
                    assert [e async for e in events] == []
                    await stopped.wait()
                took = time.monotonic() - started
    assert took < 1.5  # nothing waited for the graceful-shutdown timeout
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "ERROR" not in err
