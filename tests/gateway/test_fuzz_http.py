"""Hostile requests at a real ``vsm-mcp serve --http``: only JSON-RPC answers or the SDK's refusals.

Property-based (hypothesis, derandomized, no example database: CI repeats the
same requests), against one long-lived gateway per test on a free loopback
port, over one keep-alive connection:

* garbage ``Authorization`` headers (random bytes, other schemes, mutations
  of the real token, huge values) get exactly the SDK's 401 (its JSON body
  and ``WWW-Authenticate: Bearer``), never a crash, and the real token goes
  on working;
* hostile bodies (`hostile_frames`) in a session get what the SDK documents:
  400 with a JSON-RPC error for what is not JSON (``PARSE_ERROR``) or not a
  message, 202 and no body for a notification or response, and for a request
  an SSE stream whose one answer has the request's id (``METHOD_NOT_FOUND``
  for an unknown method); the same bodies with hostile headers (no or a
  wrong session, odd protocol versions, Accept, Content-Type, Host, Origin,
  methods) get a 2xx or 4xx whose body is JSON-RPC or one of the SDK's
  plain refusals, never a 5xx;
* afterwards a body over the SDK's limit gets 413, a failed call with huge
  arguments is dead-lettered as a digest, a real tool call is answered, the
  gateway's peak RSS stays under `PEAK_RSS_BOUND_BYTES`, the state database
  stays small and stderr holds no traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pydantic_core
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from tests.gateway.hostile_frames import CLIENT_METHODS, frames, parse

from vsm_mcp.core.payload import MAX_STORED_PAYLOAD_BYTES
from vsm_mcp.gateway.bearer import bearer_headers
from vsm_mcp.gateway.tokens import AdminTokenFile
from vsm_mcp.store import SqliteStore

pytestmark = pytest.mark.slow

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"
CLI = [sys.executable, "-c", "from vsm_mcp.cli.app import main; main()"]
VERSION = "2025-11-25"
#: Requests per example (past ~60 an example outgrows hypothesis's choice buffer, and most drawn
#: examples are thrown away); examples per test: 20 x 50 garbage tokens, 80 x 50 hostile bodies.
FRAMES = 50
AUTH_EXAMPLES = 20
BODY_EXAMPLES = 80
#: The gateway starts at ~110 MiB; the capability matcher (the catalog's index, the WordLlama
#: model and the catalog's vectors) adds ~95 MiB (`vsm-mcp bench match` measures it); it peaks at 240-300 MiB here (a body is at most
#: the SDK's 4 MiB). The bound catches growth with the fuzz, not the matcher's fixed cost.
PEAK_RSS_BOUND_BYTES = 352 * 1024 * 1024
STATE_DB_BOUND_BYTES = 2 * 1024 * 1024
#: One answer of a busy but healthy gateway.
ANSWER_TIMEOUT_S = 30.0
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: every example runs on the same process, so a failure is reported as first found.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
#: What the SDK answers an unauthenticated request with (`RequireAuthMiddleware`).
UNAUTHENTICATED = {"error": "invalid_token", "error_description": "Authentication required"}
#: The SDK's refusals with a plain body (transport security, body limit) or none (405, 406, 202).
PLAIN_REFUSALS = {
    "",
    "Invalid Content-Type header",
    "Invalid Host header",
    "Invalid Origin header",
    "Request body too large",
}
#: The codes JSON-RPC reserves (standard and implementation-defined), the only ones a refusal here uses.
JSON_RPC_CODES = (-32768, -32000)
#: Every status the streamable HTTP transport documents for a request it refuses (no 5xx).
REFUSALS = {400, 401, 403, 404, 405, 406, 409, 413, 415, 421, 422, 429}


def _rss(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of ``pid``, in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}


class HttpGateway:
    """A ``vsm-mcp serve --http 127.0.0.1:0`` process, its URL and its admin token."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.proc = subprocess.Popen(
            [*CLI, "--state-dir", str(state), "serve", "--http", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        self.stderr: list[str] = []
        self.url = ""
        for line in self.proc.stderr:
            self.stderr.append(line)
            if "MCP on http" in line:
                self.url = line.split("MCP on ", 1)[1].split()[0]
                break
        assert self.url, f"the HTTP face did not start: {''.join(self.stderr)}"
        self._drain = threading.Thread(target=self.stderr.extend, args=(self.proc.stderr,), daemon=True)
        self._drain.start()
        self.token = AdminTokenFile.in_state(state).read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._drain.join(timeout=10)


@contextmanager
def http_gateway(tmp_path: Path) -> Iterator[HttpGateway]:
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text(
        f'[sandbox]\nmode = "off"\n[servers.probe]\ncommand = {json.dumps(sys.executable)}\n'
        f"args = [{json.dumps(str(PROBE))}]\n"
    )
    gateway = HttpGateway(state)
    try:
        yield gateway
    finally:
        gateway.proc.kill()
        gateway.proc.wait(timeout=10)
        assert gateway.proc.stderr is not None
        gateway.proc.stderr.close()


def _sse_messages(answer: httpx.Response) -> list[types.JSONRPCMessage]:
    """Every JSON-RPC message in an SSE body (the priming event's empty data is not one).

    SSE ends lines at CR, LF or CRLF only: a JSON string may hold U+2028 or U+0085 raw.
    """
    lines = re.split(r"\r\n|\r|\n", answer.text)
    payloads = [line[5:].strip(" ") for line in lines if line.startswith("data:")]
    return [types.jsonrpc_message_adapter.validate_json(p, by_name=False) for p in payloads if p]


def _is_json(body: bytes) -> bool:
    try:
        pydantic_core.from_json(body)
    except ValueError:
        return False
    return True


class Session:
    """One authenticated, initialized session of the gateway, and the checks of its answers."""

    def __init__(self, gateway: HttpGateway, http: httpx.Client) -> None:
        self.gateway = gateway
        self.http = http
        self.auth = bearer_headers(gateway.token)
        self.stats: Counter[str] = Counter()
        opened = self.post(
            {
                "jsonrpc": "2.0",
                "id": "init",
                "method": "initialize",
                "params": {
                    "protocolVersion": VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "fuzz", "version": "1"},
                },
            },
            session=False,
        )
        assert opened.status_code == 200, opened.text[:300]
        self.headers = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
        initialized = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert initialized.status_code == 202

    def post(self, message: dict[str, Any], *, session: bool = True) -> httpx.Response:
        headers = {**ACCEPT, **self.auth, **(self.headers if session else {})}
        return self.http.post(self.gateway.url, content=json.dumps(message).encode(), headers=headers)

    def answer(self, request_id: str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The one answer to a request sent in the session, as a dict."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        response = self.post(message)
        assert response.status_code == 200, response.text[:300]
        (answer,) = [m for m in _sse_messages(response) if not isinstance(m, types.JSONRPCNotification)]
        assert getattr(answer, "id", None) == request_id
        return answer.model_dump(by_alias=True, exclude_none=True)

    def check(self, body: bytes) -> None:
        """POST ``body`` in the session with good headers: the SDK's exact answer for its kind."""
        response = self.http.post(
            self.gateway.url, content=body, headers={**ACCEPT, **self.auth, **self.headers}
        )
        context = f"{body[:200]!r} -> {response.status_code} {response.text[:300]!r}"
        message = parse(body)
        if message is None:
            assert response.status_code == 400, context
            error = types.JSONRPCError.model_validate_json(response.content)
            expected = types.PARSE_ERROR if not _is_json(body) else types.INVALID_PARAMS
            assert (error.id, error.error.code) == (None, expected), context
            self.stats["garbage: 400"] += 1
        elif isinstance(message, types.JSONRPCRequest):
            assert response.status_code == 200, context
            assert response.headers["content-type"].startswith("text/event-stream"), context
            answers = [m for m in _sse_messages(response) if not isinstance(m, types.JSONRPCNotification)]
            assert len(answers) == 1, context
            (answer,) = answers
            assert isinstance(answer, types.JSONRPCResponse | types.JSONRPCError), context
            assert type(answer.id) is type(message.id) and answer.id == message.id, context
            if isinstance(answer, types.JSONRPCError):
                # A JSON-RPC code, never an exception's leak (the SDK answers an unhandled one with code 0).
                assert JSON_RPC_CODES[0] <= answer.error.code <= JSON_RPC_CODES[1], context
            if message.method not in CLIENT_METHODS:
                assert isinstance(answer, types.JSONRPCError), context
                assert answer.error.code == types.METHOD_NOT_FOUND, context
            self.stats[f"requests: {type(answer).__name__}"] += 1
        else:
            assert (response.status_code, response.content) == (202, b""), context
            self.stats[f"{type(message).__name__}: 202"] += 1

    def check_refusal(self, method: str, body: bytes, headers: dict[str, str | bytes]) -> None:
        """Send ``body`` with hostile ``headers``: a documented status, a JSON-RPC or plain SDK body."""
        response = self.http.request(method, self.gateway.url, content=body, headers=headers)
        context = f"{method} {headers} {body[:120]!r} -> {response.status_code} {response.text[:300]!r}"
        assert response.status_code in {200, 202} | REFUSALS, context
        kind = response.headers.get("content-type", "")
        if kind.startswith("text/event-stream"):
            _sse_messages(response)  # every event a JSON-RPC message
        elif kind.startswith("application/json") and response.content:
            if response.status_code == 401:
                assert response.json() == UNAUTHENTICATED, context
            else:
                refusal = types.jsonrpc_message_adapter.validate_json(response.content, by_name=False)
                if isinstance(refusal, types.JSONRPCError):
                    assert JSON_RPC_CODES[0] <= refusal.error.code <= JSON_RPC_CODES[1], context
        else:
            assert response.text in PLAIN_REFUSALS, context
        self.stats[f"hostile headers: {response.status_code}"] += 1

    def ping(self) -> None:
        assert self.answer("sentinel", "ping") == {"jsonrpc": "2.0", "id": "sentinel", "result": {}}


def _header_value(raw: bytes) -> bytes:
    """Bytes a client can send as a header value (no controls, no surrounding whitespace)."""
    value = bytes(b if b >= 0x20 or b == 0x09 else 0x3F for b in raw).strip(b" \t")
    return value


_token_mutations = st.sampled_from(["truncate", "flip", "append", "upper", "double", "spaced", "none"])
_schemes = st.sampled_from(
    [b"Bearer ", b"bearer ", b"Basic ", b"Token ", b"", b"Bearer", b"Bearer  ", b"Bearer:"]
)


def _mutated(token: str, how: str, at: int) -> bytes:
    value = token.encode()
    at %= len(value)
    if how == "truncate":
        return value[:at]
    if how == "flip":
        return value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]
    if how == "append":
        return value + b"x"
    if how == "upper":
        return value.upper() if value.upper() != value else value + b"X"
    if how == "double":
        return value + value
    if how == "spaced":
        return value[:at] + b" " + value[at:]
    return b""


#: A garbage ``Authorization`` value made from the real token ``t`` (drawn before it is known), to be
#: passed through `_header_value`.
_garbage_auth = st.one_of(
    st.binary(max_size=80).map(lambda raw: lambda t: raw),
    st.tuples(_schemes, st.text(max_size=60)).map(lambda s: lambda t: s[0] + s[1].encode()),
    st.tuples(_schemes, _token_mutations, st.integers(min_value=0)).map(
        lambda s: lambda t: s[0] + _mutated(t, s[1], s[2])
    ),
    st.tuples(_schemes, st.integers(min_value=1, max_value=60_000)).map(
        lambda s: lambda t: s[0] + b"a" * s[1]
    ),
    st.sampled_from([b"Bearer ", b"Basic", b"Bearer null", b"Bearer undefined"]).map(lambda v: lambda t: v),
)


def _accepted(value: bytes, token: str) -> bool:
    """Whether the SDK's backend would take ``value`` as the real token (case-insensitive scheme)."""
    return value.lower().startswith(b"bearer ") and value[7:] == token.encode()


def test_garbage_bearer_tokens_get_the_sdks_401_and_the_real_token_keeps_working(tmp_path: Path) -> None:
    with http_gateway(tmp_path) as gateway, httpx.Client(timeout=ANSWER_TIMEOUT_S) as http:
        session = Session(gateway, http)
        sent = Counter[int]()

        @settings(FUZZ, max_examples=AUTH_EXAMPLES)
        @given(
            batch=st.lists(
                st.tuples(
                    _garbage_auth, st.sampled_from(["POST", "GET", "DELETE", "PUT"]), frames, st.booleans()
                ),
                min_size=FRAMES,
                max_size=FRAMES,
            )
        )
        def garbage(batch: list[tuple[Any, str, bytes, bool]]) -> None:
            for make, method, body, in_session in batch:
                value = _header_value(make(gateway.token))
                headers: list[tuple[str, str | bytes]] = [*ACCEPT.items()]
                if in_session:
                    headers += session.headers.items()
                if value:  # an empty one is sent as none at all
                    headers.append(("authorization", value))
                if _accepted(value, gateway.token):
                    sent[200] += 1  # not garbage (b"Bearer" + b" " + token): counted apart, not sent
                    continue
                answer = http.request(method, gateway.url, content=body, headers=headers)
                assert answer.status_code == 401, (value[:100], answer.status_code, answer.text[:200])
                assert answer.json() == UNAUTHENTICATED
                assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
                sent[401] += 1
            session.ping()

        garbage()
        # A garbage value before the real one: the first is the one read, and it is refused.
        doubled = [*ACCEPT.items(), *session.headers.items(), ("authorization", "Bearer nope")]
        doubled.append(("authorization", f"Bearer {gateway.token}"))
        assert http.post(gateway.url, content=b"{}", headers=doubled).status_code == 401
        session.ping()
        assert gateway.proc.poll() is None
        peak = _rss(gateway.proc.pid)["VmHWM"]
    print(
        f"http garbage tokens: {sent[401]} answered 401 ({sent[200]} drawn valid); peak RSS {peak >> 20} MiB"
    )
    assert sent[401] + sent[200] == AUTH_EXAMPLES * FRAMES
    assert sent[200] < FRAMES
    assert peak < PEAK_RSS_BOUND_BYTES
    assert "Traceback" not in "".join(gateway.stderr)


_hostile_headers = st.one_of(
    st.just({"mcp-session-id": None}),  # no session
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40).map(
        lambda s: {"mcp-session-id": s}
    ),
    st.sampled_from(["2024-11-05", "2025-03-26", "2025-06-18", "2026-07-28", "1999-01-01", "", "x"]).map(
        lambda v: {"mcp-protocol-version": v}
    ),
    st.sampled_from(["application/json", "text/event-stream", "*/*", "", "text/html", "application/*"]).map(
        lambda v: {"accept": v}
    ),
    st.sampled_from(
        ["text/plain", "", "application/jsonx", "application/json; charset=latin-1", "multipart/form-data"]
    ).map(lambda v: {"content-type": v}),
    st.sampled_from(["evil.example", "127.0.0.1:1", "localhost.evil", ""]).map(lambda v: {"host": v}),
    st.sampled_from(["http://evil.example", "null", "file://", "http://127.0.0.1.evil"]).map(
        lambda v: {"origin": v}
    ),
)
_hostile_methods = st.sampled_from(["POST", "POST", "POST", "PUT", "PATCH", "OPTIONS"])


def test_hostile_bodies_and_headers_get_json_rpc_errors_or_the_sdks_refusals_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    with http_gateway(tmp_path) as gateway, httpx.Client(timeout=ANSWER_TIMEOUT_S) as http:
        session = Session(gateway, http)
        started = _rss(gateway.proc.pid)
        sent = 0

        @settings(FUZZ, max_examples=BODY_EXAMPLES)
        @given(
            batch=st.lists(
                st.tuples(frames, st.none() | st.tuples(_hostile_methods, _hostile_headers)),
                min_size=FRAMES,
                max_size=FRAMES,
            )
        )
        def hostile(batch: list[tuple[bytes, tuple[str, dict[str, str | None]] | None]]) -> None:
            nonlocal sent
            for body, hostile_headers in batch:
                if hostile_headers is None:
                    session.check(body)
                else:
                    method, changes = hostile_headers
                    headers = {**ACCEPT, **session.auth, **session.headers, **changes}
                    session.check_refusal(method, body, {k: v for k, v in headers.items() if v is not None})
            sent += len(batch)
            session.ping()

        hostile()
        assert sent == BODY_EXAMPLES * FRAMES
        after_fuzz = _rss(gateway.proc.pid)

        # One byte over the SDK's body limit: 413 before anything parses it.
        oversized = b'{"jsonrpc":"2.0","id":"oversized","method":"ping","params":{"x":"'
        oversized += b"a" * (DEFAULT_MAX_REQUEST_BODY_SIZE + 1 - len(oversized) - 3) + b'"}}'
        answer = http.post(
            gateway.url, content=oversized, headers={**ACCEPT, **session.auth, **session.headers}
        )
        assert (answer.status_code, answer.text) == (413, "Request body too large")

        # A call that fails for good (the server dies mid-call) with 3 MiB of arguments is dead-lettered.
        pad = "x" * (3 << 20)
        failed = session.answer("crash", "tools/call", {"name": "probe__crash", "arguments": {"pad": pad}})
        assert failed["error"]["code"] == types.INTERNAL_ERROR, str(failed)[:300]
        echoed = session.answer(
            "echo", "tools/call", {"name": "probe__echo", "arguments": {"text": "still here"}}
        )
        assert echoed["result"]["structuredContent"] == {"result": "still here"}
        assert gateway.proc.poll() is None
        final = _rss(gateway.proc.pid)
        gateway.stop()

    print(
        f"http hostile bodies: {dict(session.stats)}; RSS MiB at start {started['VmRSS'] >> 20}, after the "
        f"fuzz {after_fuzz['VmRSS'] >> 20} (peak {after_fuzz['VmHWM'] >> 20}), at the end "
        f"{final['VmRSS'] >> 20} (peak {final['VmHWM'] >> 20})"
    )
    assert final["VmHWM"] < PEAK_RSS_BOUND_BYTES
    assert "Traceback" not in "".join(gateway.stderr), "".join(gateway.stderr)[-3000:]
    database = gateway.state / "state.db"
    db_bytes = sum(path.stat().st_size for path in database.parent.glob("state.db*"))
    assert db_bytes < STATE_DB_BOUND_BYTES

    async def letters() -> list[Any]:
        async with SqliteStore.open(database) as store:
            return await store.dead_letters()

    (letter,) = anyio.run(letters)
    assert (letter.unit, letter.tool) == ("probe", "crash")
    assert letter.arguments["$vsm_mcp_capped"]["size"] == len(json.dumps({"pad": pad}, separators=(",", ":")))
    assert len(json.dumps(letter.arguments)) < MAX_STORED_PAYLOAD_BYTES
    print(f"http state database: {db_bytes} bytes")
