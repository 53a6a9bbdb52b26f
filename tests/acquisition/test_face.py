"""``vsm_find_capability`` through the gateway to real MCP clients in-process, whose sampling callbacks
answer from a script: the client's model reranks the top candidates, or the offline order stands and
the result says why. Not part of the offline matching figures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

from vsm_mcp.acquisition.rerank import MAX_TOKENS, PROMPT_MAX_CHARS, SYSTEM_PROMPT
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import Settings, load_settings

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

QUERY = "current time in another timezone"
MODEL = "scripted-model-1"
#: Short, so the test of a client that never answers is quick; an in-process answer takes milliseconds.
DEADLINE_S = 2.0
#: A find runs the matcher and, at most, one in-process sampling round trip.
CALL_TIMEOUT_S = 30.0

Sampling = Callable[[ClientRequestContext, types.CreateMessageRequestParams], Awaitable[Any]]


def _settings(tmp_path: Path, rerank: bool = True) -> Settings:
    config = tmp_path / "config.toml"
    config.write_text(
        "[acquisition]\nlive_sources = false\n"
        f"rerank_with_client = {'true' if rerank else 'false'}\nrerank_deadline_s = {DEADLINE_S}\n"
    )
    return load_settings(config, state_dir=tmp_path / "state")


class ScriptedClient:
    """A sampling callback that answers ``text`` and keeps every request it received."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.requests: list[types.CreateMessageRequestParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.requests.append(params)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(text=self.text), model=MODEL, stop_reason="endTurn"
        )


@asynccontextmanager
async def _runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with Runtime.open(settings, seed=3) as runtime:
        yield runtime


async def _find(runtime: Runtime, sampling: Sampling | None = None, **arguments: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"sampling_callback": sampling} if sampling is not None else {}
    async with Client(runtime.gateway.server, mode="legacy", **options) as client:
        with anyio.fail_after(CALL_TIMEOUT_S):
            result = await client.call_tool("vsm_find_capability", {"query": QUERY, **arguments})
    assert result.is_error is False
    assert result.structured_content is not None
    return result.structured_content


def _servers(found: dict[str, Any]) -> list[str]:
    return [c["server"] for c in found["candidates"]]


def _text(params: types.CreateMessageRequestParams) -> str:
    (message,) = params.messages
    assert message.role == "user"
    assert isinstance(message.content, types.TextContent)
    return message.content.text


async def test_the_client_model_reranks_or_the_offline_order_stands_with_its_reason(tmp_path: Path) -> None:
    async with _runtime(_settings(tmp_path)) as runtime:
        # (c) A client without the sampling capability is not asked: the offline order.
        offline = await _find(runtime)
        order = _servers(offline)
        assert len(order) == 5
        assert offline["reranked_by"] == "offline"
        assert offline["rerank"] == {"reason": "this client did not declare the MCP sampling capability"}

        # (a) The model answers "3": candidate 3 comes first, the rest keep their order.
        three = ScriptedClient("3")
        chosen = await _find(runtime, three)
        assert _servers(chosen) == [order[2], order[0], order[1], order[3], order[4]]
        assert chosen["reranked_by"] == "client-sampling"
        assert chosen["rerank"] == {
            "model": MODEL,
            "chosen": 3,
            "reason": "the client's model chose candidate 3 of 5",
        }
        assert chosen["candidates"][0]["reasons"][-1] == (
            f"chosen by the client's model ({MODEL}) among the top 5, offline rank 3"
        )
        (request,) = three.requests
        prompt = _text(request)
        assert request.system_prompt == SYSTEM_PROMPT
        assert request.max_tokens == MAX_TOKENS
        assert prompt.startswith(f"Need: {QUERY}\n")
        assert [line.split(":")[0] for line in prompt.splitlines()[3:8]] == [
            f"{i}. {name}" for i, name in enumerate(order, start=1)
        ]
        assert prompt.endswith("Answer with its number (1-5) only.")
        assert len(prompt) <= PROMPT_MAX_CHARS

        # (b) An answer that names no candidate changes nothing, and says so.
        garbage = ScriptedClient("Probably the time one, I think")
        ignored = await _find(runtime, garbage)
        assert len(garbage.requests) == 1
        assert _servers(ignored) == order
        assert ignored["reranked_by"] == "offline"
        assert ignored["rerank"] == {
            "reason": f"the client's model ({MODEL}) answered 'Probably the time one, I think', "
            "not a candidate's number from 1 to 5 or its exact name"
        }

        # A client that refuses the request (its user declined): the offline order, the client's words.
        async def refuse(
            context: ClientRequestContext, params: types.CreateMessageRequestParams
        ) -> types.ErrorData:
            return types.ErrorData(code=types.INVALID_REQUEST, message="the user declined sampling")

        refused = await _find(runtime, refuse)
        assert _servers(refused) == order
        assert refused["rerank"] == {"reason": "the client did not sample (the user declined sampling)"}

        # (d) A client that never answers: the offline order once the deadline passes.
        asked, cancelled = anyio.Event(), anyio.Event()

        async def silent(
            context: ClientRequestContext, params: types.CreateMessageRequestParams
        ) -> types.CreateMessageResult:
            asked.set()
            try:
                await anyio.Event().wait()  # nobody ever answers
            finally:
                cancelled.set()
            raise AssertionError("unreachable")

        late = await _find(runtime, silent)
        assert asked.is_set()
        assert _servers(late) == order
        assert late["reranked_by"] == "offline"
        assert late["rerank"] == {"reason": f"the client's model did not answer within {DEADLINE_S:g} s"}
        with anyio.fail_after(5):  # the gateway's cancellation reaches the client's callback
            await cancelled.wait()

        # A 2026-07-28 client has no back-channel to be asked on.
        async with Client(runtime.gateway.server, sampling_callback=ScriptedClient("3")) as modern:
            with anyio.fail_after(CALL_TIMEOUT_S):
                result = await modern.call_tool("vsm_find_capability", {"query": QUERY})
        assert result.structured_content is not None
        assert _servers(result.structured_content) == order
        assert result.structured_content["rerank"] == {
            "reason": "a 2026-07-28 connection carries no server-to-client request"
        }

        # A smaller list shows the model only what the client asked for.
        two = ScriptedClient("2")
        short = await _find(runtime, two, limit=2)
        assert _servers(short) == [order[1], order[0]]
        assert _text(two.requests[0]).endswith("Answer with its number (1-2) only.")


async def test_with_the_setting_off_no_request_is_sent(tmp_path: Path) -> None:
    async with _runtime(_settings(tmp_path, rerank=False)) as runtime:
        scripted = ScriptedClient("3")
        found = await _find(runtime, scripted)
        assert scripted.requests == []
        assert found["reranked_by"] == "offline"
        assert found["rerank"] == {
            "reason": "reranking by the client's model is off ([acquisition] rerank_with_client)"
        }
        assert len(found["candidates"]) == 5
