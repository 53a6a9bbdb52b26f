"""Hostile frames at both faces of a real gateway: no crash, only JSON-RPC answers, bounded memory.

Property-based (hypothesis, derandomized so CI repeats it): each example is a
batch of frames (random bytes, invalid JSON and UTF-8, wrong types, huge and
odd ids, unknown methods, batches, deep nesting, oversized lines and bodies,
requests before initialize) sent to one long-lived `vsm-mcp serve` process;
after each batch a sentinel ``ping`` must be answered (the face still works),
every line the stdio face wrote must be a JSON-RPC message, and every HTTP
answer a documented status with, for JSON, a JSON-RPC body. At the end a real
tool call is answered, the gateway's memory stays under `RSS_BOUND_BYTES`, and
the state database has not grown with what was sent. In all, more than 10,000
frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import httpx
import mcp_types as types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from vsm_mcp.gateway.tokens import AdminTokenFile

pytestmark = pytest.mark.slow

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"
CLI = [sys.executable, "-c", "from vsm_mcp.cli.app import main; main()"]
MESSAGE = TypeAdapter(types.JSONRPCMessage)
#: Batches per face and frames per batch: 60 x 100 = 6,000 frames a face, 12,000 in all.
EXAMPLES = 60
FRAMES = 100
#: A gateway that keeps nothing it is sent stays far below this (it starts at ~90 MB here).
RSS_BOUND_BYTES = 400 * 1024 * 1024
#: Waiting for one answer of a busy but healthy gateway.
ANSWER_TIMEOUT_S = 30.0
VERSION = "2025-11-25"

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=30),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.booleans(),
)
_methods = st.one_of(
    st.sampled_from(
        [
            "initialize",
            "ping",
            "tools/list",
            "tools/call",
            "resources/list",
            "resources/read",
            "prompts/get",
            "completion/complete",
            "logging/setLevel",
            "notifications/cancelled",
            "notifications/initialized",
            "notifications/progress",
            "x/unknown",
            "",
        ]
    ),
    st.text(max_size=20),
    st.integers(),
)
_message = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2.0, None]), "method": _methods},
    optional={"id": _ids, "params": _values, "result": _values, "error": _values},
)
_call = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": _ids,
        "method": st.just("tools/call"),
        "params": st.fixed_dictionaries(
            {"name": st.sampled_from(["probe__echo", "vsm_status", "vsm_call_tool", "nope", ""])},
            optional={"arguments": _values, "_meta": _values},
        ),
    }
)


def _nest(depth: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + b"[" * depth + b"]" * depth + b"}"


def _huge(mib: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":"big","method":"ping","params":{"x":"' + b"a" * (mib << 20) + b'"}}'


_frame = st.one_of(
    st.binary(max_size=120),
    st.text(max_size=60).map(str.encode),
    _message.map(lambda m: json.dumps(m).encode()),
    _call.map(lambda m: json.dumps(m).encode()),
    st.lists(_message, max_size=4).map(lambda b: json.dumps(b).encode()),  # batches
    st.integers(min_value=1, max_value=3000).map(_nest),  # deep nesting
    st.sampled_from([b"\xff\xfe\xfd", b'{"jsonrpc":"2.0","id":1,"method":"ping"', b"{}", b"[]", b"null"]),
)
_batch = st.lists(_frame, min_size=FRAMES, max_size=FRAMES)
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def _state(tmp: Path) -> Path:
    state = tmp / "state"
    state.mkdir()
    (state / "config.toml").write_text(
        f'[sandbox]\nmode = "off"\n[servers.probe]\ncommand = {json.dumps(sys.executable)}\n'
        f"args = [{json.dumps(str(PROBE))}]\n"
    )
    return state


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class StdioFace:
    """A `vsm-mcp serve --stdio` process, its stdout lines collected by a thread."""

    def __init__(self, state: Path) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "--state-dir", str(state), "serve", "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.lines: Queue[bytes] = Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.sentinels = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, *frames: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(frame.replace(b"\n", b" ") + b"\n" for frame in frames))
        self.proc.stdin.flush()

    def answer_to(self, request_id: str) -> list[dict[str, Any]]:
        """Every message written until the answer to ``request_id`` (which is last)."""
        seen: list[dict[str, Any]] = []
        while True:
            try:
                line = self.lines.get(timeout=ANSWER_TIMEOUT_S)
            except Empty:
                raise AssertionError(
                    f"no answer to {request_id!r}; alive: {self.proc.poll() is None}"
                ) from None
            try:
                message = MESSAGE.validate_json(line)
            except ValidationError as exc:
                raise AssertionError(f"not a JSON-RPC message on stdout: {line[:200]!r}") from exc
            seen.append(message.model_dump(by_alias=True, exclude_none=True))
            if getattr(message, "id", None) == request_id:
                return seen

    def ping(self) -> dict[str, Any]:
        self.sentinels += 1
        request_id = f"sentinel-{self.sentinels}"
        self.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode())
        return self.answer_to(request_id)[-1]


@pytest.fixture(scope="module")
def stdio_face(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StdioFace]:
    face = StdioFace(_state(tmp_path_factory.mktemp("stdio")))
    try:
        yield face
    finally:
        _stop(face.proc)


def _initialize(face: StdioFace) -> None:
    face.send(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "init",
                "method": "initialize",
                "params": {
                    "protocolVersion": VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "f", "version": "1"},
                },
            }
        ).encode(),
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
    )
    assert "result" in face.answer_to("init")[-1]


def test_the_stdio_face_answers_hostile_frames_only_in_json_rpc_and_keeps_working(
    stdio_face: StdioFace,
) -> None:
    # A request before initialize gets an answer (every line checked to be JSON-RPC), then the handshake.
    stdio_face.send(b"garbage", _nest(2000), b'{"jsonrpc":"2.0","id":"early","method":"tools/list"}')
    assert stdio_face.answer_to("early")[-1]["id"] == "early"
    _initialize(stdio_face)
    sent = 0

    @FUZZ
    @given(batch=_batch)
    def hostile(batch: list[bytes]) -> None:
        nonlocal sent
        stdio_face.send(*batch)
        sent += len(batch)
        assert stdio_face.ping()["result"] == {}

    hostile()
    # One line past the face's limit (64 MiB) is dropped whole, and the face goes on.
    stdio_face.send(_huge(65))
    assert stdio_face.ping()["result"] == {}
    assert sent == EXAMPLES * FRAMES
    stdio_face.send(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "real",
                "method": "tools/call",
                "params": {"name": "probe__echo", "arguments": {"text": "still here"}},
            }
        ).encode()
    )
    answer = stdio_face.answer_to("real")[-1]
    assert answer["result"]["content"][0]["text"] == "still here"
    assert _rss(stdio_face.proc.pid) < RSS_BOUND_BYTES


class HttpFace:
    """A `vsm-mcp serve --http` process on a free loopback port, with its admin token."""

    def __init__(self, state: Path) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "--state-dir", str(state), "serve", "--http", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        self.url = ""
        for line in self.proc.stderr:
            if "MCP on http" in line:
                self.url = line.split("MCP on ", 1)[1].split()[0]
                break
        assert self.url, "the HTTP face did not start"
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        self.token = AdminTokenFile.in_state(state).read()
        self.state = state


@pytest.fixture(scope="module")
def http_face(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpFace]:
    face = HttpFace(_state(tmp_path_factory.mktemp("http")))
    try:
        yield face
    finally:
        _stop(face.proc)


#: What the streamable HTTP transport may answer a hostile POST with (the SDK's documented refusals).
HTTP_REFUSALS = {400, 401, 404, 405, 406, 409, 413, 415, 421, 422, 429}


def _check_http(answer: httpx.Response) -> None:
    assert answer.status_code in {200, 202} | HTTP_REFUSALS, (answer.status_code, answer.text[:200])
    kind = answer.headers.get("content-type", "")
    if answer.status_code == 200 and kind.startswith("application/json"):
        MESSAGE.validate_json(answer.content)
    elif answer.status_code == 200 and kind.startswith("text/event-stream"):
        for line in answer.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                MESSAGE.validate_json(line[5:].strip())


def test_the_http_face_answers_hostile_bodies_and_tokens_only_with_documented_refusals(
    http_face: HttpFace,
) -> None:
    accept = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    auth = {"authorization": f"Bearer {http_face.token}"}
    with httpx.Client(timeout=ANSWER_TIMEOUT_S) as http:
        # Garbage tokens: 401, never a crash.
        for token in (
            b"",
            b"Bearer",
            b"Bearer x",
            b"Basic abc",
            b"Bearer " + b"a" * 10_000,
            b"Bearer \xff\xfe",
        ):
            answer = http.post(http_face.url, content=b"{}", headers={**accept, "authorization": token})
            assert answer.status_code == 401, token
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": VERSION,
                "capabilities": {},
                "clientInfo": {"name": "f", "version": "1"},
            },
        }
        opened = http.post(http_face.url, json=init, headers={**accept, **auth})
        assert opened.status_code == 200
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
        http.post(
            http_face.url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers={**accept, **auth, **session},
        )
        sent = 0

        @FUZZ
        @given(batch=_batch)
        def hostile(batch: list[bytes]) -> None:
            nonlocal sent
            for i, body in enumerate(batch):
                headers = {**accept, **auth, **(session if i % 2 else {})}  # half outside the session
                _check_http(http.post(http_face.url, content=body, headers=headers))
            sent += len(batch)
            pong = http.post(
                http_face.url,
                json={"jsonrpc": "2.0", "id": "s", "method": "ping"},
                headers={**accept, **auth, **session},
            )
            assert pong.status_code == 200, pong.text[:200]

        hostile()
        assert sent == EXAMPLES * FRAMES
        big = http.post(http_face.url, content=_huge(20), headers={**accept, **auth, **session})
        _check_http(big)
        call = {
            "jsonrpc": "2.0",
            "id": "real",
            "method": "tools/call",
            "params": {"name": "probe__echo", "arguments": {"text": "still here"}},
        }
        answer = http.post(http_face.url, json=call, headers={**accept, **auth, **session})
        assert answer.status_code == 200
        assert "still here" in answer.text
    assert _rss(http_face.proc.pid) < RSS_BOUND_BYTES
    database = http_face.state / "state.db"
    assert sum(p.stat().st_size for p in database.parent.glob("state.db*")) < 8 * 1024 * 1024
