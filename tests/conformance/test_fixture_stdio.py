"""The fixture server's stdio face, the one the gateway fronts, speaks the suite's protocol.

Needs no Node: it drives the fixture with the official SDK client over a real
subprocess, so a stdio regression shows up here and not only as gateway losses.
"""

from __future__ import annotations

import json
import sys

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.stdio import StdioServerParameters

from .conftest import FIXTURE_SERVER

pytestmark = pytest.mark.slow

# Starting Python with the SDK and finishing the handshake; the machine is shared.
STDIO_SESSION_TIMEOUT_S = 30.0
FIXTURE = StdioServerParameters(command=sys.executable, args=[str(FIXTURE_SERVER), "--stdio"])
SUITE_TOOLS = {
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_reconnection",
}


@pytest.mark.anyio
async def test_stdio_face_lists_the_suite_surface() -> None:
    with anyio.fail_after(STDIO_SESSION_TIMEOUT_S):
        async with Client(FIXTURE, mode="legacy") as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
            resources = {resource.uri for resource in (await client.list_resources()).resources}
            template = await client.read_resource("test://template/123/data")

    assert set(tools) == SUITE_TOOLS
    assert tools["json_schema_2020_12_tool"].input_schema["$defs"]["address"]["type"] == "object"
    assert prompts == {
        "test_simple_prompt",
        "test_prompt_with_arguments",
        "test_prompt_with_embedded_resource",
        "test_prompt_with_image",
    }
    assert resources == {"test://static-text", "test://static-binary", "test://watched-resource"}
    content = template.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert json.loads(content.text) == {"id": "123", "templateTest": True, "data": "Data for ID: 123"}


@pytest.mark.anyio
async def test_stdio_face_sends_logs_progress_and_client_requests() -> None:
    logs: list[str] = []
    steps: list[float] = []
    prompts: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async def on_sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        prompts.append(content.text if isinstance(content, types.TextContent) else "")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(text="four"),
            model="test-model",
            stop_reason="endTurn",
        )

    async def on_elicitation(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"username": "ada", "email": "ada@example.com"})

    with anyio.fail_after(STDIO_SESSION_TIMEOUT_S):
        async with Client(
            FIXTURE,
            mode="legacy",
            logging_callback=on_log,
            sampling_callback=on_sampling,
            elicitation_callback=on_elicitation,
        ) as client:
            await client.call_tool("test_tool_with_logging", {})
            await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
            sampled = await client.call_tool("test_sampling", {"prompt": "2+2?"})
            elicited = await client.call_tool("test_elicitation", {"message": "Who are you?"})
            failed = await client.call_tool("test_error_handling", {})

    assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]
    assert steps == [0, 50, 100]
    assert prompts == ["2+2?"]
    assert sampled.content == [types.TextContent(text="LLM response: four")]
    assert elicited.content == [
        types.TextContent(
            text='Elicitation completed: action=accept, content={"email": "ada@example.com", "username": "ada"}'
        )
    ]
    assert failed.is_error is True
