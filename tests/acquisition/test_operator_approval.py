"""Only an operator approves an acquisition: the forged-approval attempt over real HTTP, and the real one.

A sandboxed server that reaches the gateway's HTTP face with a call-only token, calls
``vsm_acquire_capability`` and answers its own elicitation with "accept" gets nothing
installed, and the attempt is stored naming the token. A client whose token holds
``approve`` (or the local user on stdio) approves, and the decision names who and what
they were shown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from vsm_mcp.acquisition.face import CapabilityFace
from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.service import CapabilityService
from vsm_mcp.acquisition.vetting import VettingPolicy
from vsm_mcp.core.access import Scope
from vsm_mcp.discovery.catalog import Catalog, PackageRef, ServerEntry, ToolSpec
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.gateway import Gateway
from vsm_mcp.gateway.access import LOCAL_OPERATOR, StoreAudit, principal_of
from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.binding import HttpListen
from vsm_mcp.gateway.keyring import Keyring
from vsm_mcp.gateway.tokens import AdminTokenFile, TokenBook
from vsm_mcp.gateway.transport import MCP_PATH, serve_http
from vsm_mcp.store import MemoryStore

from .conftest import ProbeInstaller, stub_metadata

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

QUERY = "add two integers"
CATALOG = Catalog(
    (
        ServerEntry(
            "mcp-server-probe",
            "Echo text back and add integers",
            tools=(ToolSpec("echo", "Return the text unchanged"), ToolSpec("add", "Add two integers")),
            packages=(PackageRef("pypi", "mcp-server-probe", "1.0.0"),),
            license="MIT",
        ),
    )
)


@dataclass
class Served:
    url: str
    gateway: Gateway
    store: MemoryStore
    installer: ProbeInstaller
    tokens: dict[str, str]


@asynccontextmanager
async def served(tmp_path: Path, store: MemoryStore) -> AsyncIterator[Served]:
    """A gateway with the real capability face (S5 asks: auto-approve off) over HTTP and in process."""
    registry = FleetRegistry(store)
    installer = ProbeInstaller()
    async with Fleet([]) as fleet, anyio.create_task_group() as tg:
        face = CapabilityFace(fleet, registry, principal_of)
        acquirer = Acquirer(
            store=store,
            registry=registry,
            installer=installer,
            metadata=stub_metadata(),
            known_names={"mcp-server-probe"},
            state_dir=tmp_path,
            policy=VettingPolicy(auto_approve=False),
            approver=face.approver,
            fleet=fleet,
            launcher=SandboxLauncher(tmp_path, mode="off"),
        )
        face.attach(CapabilityService(acquirer, Matcher(CATALOG), registry_types=("pypi",)))
        gateway = Gateway(fleet, extra=face, audit=StoreAudit(store))
        admin = AdminTokenFile.in_state(tmp_path)
        admin.ensure()
        book = TokenBook(store, admin)
        tokens = {
            "ci": await book.create("ci", {Scope.CALL}),
            "ops": await book.create("ops", {Scope.CALL, Scope.APPROVE}),
        }

        async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            listen = HttpListen("127.0.0.1", 0)
            await serve_http(gateway, listen, Keyring(store, admin), task_status=task_status)

        port = await tg.start(run)
        try:
            yield Served(f"http://127.0.0.1:{port}{MCP_PATH}", gateway, store, installer, tokens)
        finally:
            tg.cancel_scope.cancel()


def accepting(asked: list[str]) -> Callable[..., object]:
    async def accept(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    return accept


async def test_a_call_only_token_answering_its_own_elicitation_installs_nothing(tmp_path: Path) -> None:
    asked: list[str] = []
    async with MemoryStore.open() as store, served(tmp_path, store) as face:
        async with bearer_client(
            face.url, face.tokens["ci"], mode="legacy", elicitation_callback=accepting(asked)
        ) as ci:
            with anyio.fail_after(60), pytest.raises(MCPError) as refused:
                await ci.call_tool("vsm_acquire_capability", {"query": QUERY})
        assert (
            refused.value.error.message
            == "token 'ci' lacks scope 'approve' needed for vsm_acquire_capability"
        )
        assert asked == []  # never asked, so its "accept" never counted
        assert face.installer.installs == []
        assert await FleetRegistry(store).desired() == {}
        [attempt] = await store.decisions()
        assert (attempt.system, attempt.choice, attempt.rule) == ("gateway", "refuse", "scope")
        assert attempt.inputs["token"] == "ci"
        assert attempt.inputs["arguments"] == {"query": QUERY}


async def test_behind_the_gate_the_face_still_asks_no_one_without_approve(tmp_path: Path) -> None:
    """Defence in depth: were the gate to let the call through, the approver would not ask the caller."""
    asked: list[str] = []
    async with MemoryStore.open() as store, served(tmp_path, store) as face:
        face.gateway.gate.tool_scope = lambda name: Scope.CALL  # a gate that forgot the tool's scope
        async with bearer_client(
            face.url, face.tokens["ci"], mode="legacy", elicitation_callback=accepting(asked)
        ) as ci:
            with anyio.fail_after(60):
                result = await ci.call_tool("vsm_acquire_capability", {"query": QUERY})
        assert result.is_error is True
        text = result.content[0].text  # type: ignore[union-attr]
        assert "nobody can be asked here: token 'ci' lacks scope 'approve' needed for an approval" in text
        assert asked == []
        assert face.installer.installs == []
        refusal = (await store.decisions())[0]
        assert (refusal.system, refusal.choice, refusal.rule) == ("s5", "refuse", "operator")
        assert refusal.inputs["answered_by"] == "token 'ci'"


async def test_an_approve_token_approves_and_the_decision_names_it_and_what_it_was_shown(
    tmp_path: Path,
) -> None:
    asked: list[str] = []
    async with MemoryStore.open() as store, served(tmp_path, store) as face:
        async with bearer_client(
            face.url, face.tokens["ops"], mode="legacy", elicitation_callback=accepting(asked)
        ) as ops:
            with anyio.fail_after(60):
                result = await ops.call_tool("vsm_acquire_capability", {"query": QUERY})
            assert result.is_error is False, result.content
            assert result.structured_content is not None
            assert "probe__add" in result.structured_content["tools"]
            assert (await ops.call_tool("probe__add", {"a": 2, "b": 3})).is_error is False
        assert len(asked) == 1
        assert asked[0].startswith("Install pypi:mcp-server-probe@1.0.0 as server 'probe'")
        approval = next(d for d in await store.decisions() if d.choice == "approve")
        assert approval.rule == "operator"
        assert approval.inputs["answered_by"] == "token 'ops'"
        assert approval.inputs["shown"] == asked[0]
        assert list(await FleetRegistry(store).desired()) == ["probe"]
        # The audit log has the call an approve scope let through, by its token; plain calls are not in it.
        log = await store.actions()
        assert [(a.actor, a.action, a.target, a.via) for a in log] == [
            ("token 'ops'", "tools/call", "vsm_acquire_capability", "mcp")
        ]


async def test_on_stdio_the_local_user_is_the_operator(tmp_path: Path) -> None:
    asked: list[str] = []
    async with MemoryStore.open() as store, served(tmp_path, store) as face:
        async with Client(face.gateway.server, mode="legacy", elicitation_callback=accepting(asked)) as local:
            with anyio.fail_after(60):
                result = await local.call_tool("vsm_acquire_capability", {"query": QUERY})
        assert result.is_error is False, result.content
        approval = next(d for d in await store.decisions() if d.choice == "approve")
        assert approval.inputs["answered_by"] == f"local user {LOCAL_OPERATOR.name} (stdio)"
        assert approval.inputs["shown"] == asked[0]
