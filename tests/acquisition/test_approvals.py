"""Questions kept for an operator: asked once, approved (acted on, step by step) or denied for good."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition import approvals
from vsm_mcp.acquisition.approvals import QueuedApprover
from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.pipeline import Acquirer, FixedAnswer
from vsm_mcp.acquisition.vetting import Candidate, VettingPolicy
from vsm_mcp.core.messages import ApprovalStatus
from vsm_mcp.errors import AcquisitionError, AcquisitionRefusedError, ConfigError
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.store import MemoryStore

from .conftest import ProbeInstaller, stub_metadata

pytestmark = pytest.mark.anyio

PROBE = Candidate(
    "probe-time", "pypi", "mcp-server-probe", "1.0.0", score=2.0, reasons=("name",), in_catalog=True
)
OTHER = Candidate("other", "npm", "other-mcp", "0.1.0", score=0.5, in_catalog=True)
ALICE = "local user alice (vsm-mcp approvals approve)"


def _acquirer(store: MemoryStore, tmp_path: Path, installer: ProbeInstaller) -> Acquirer:
    return Acquirer(
        store=store,
        registry=FleetRegistry(store),
        installer=installer,
        metadata=stub_metadata(),  # type: ignore[arg-type]
        known_names={"mcp-server-probe", "other-mcp"},
        state_dir=tmp_path,
        policy=VettingPolicy(),  # auto-approve off: a person decides
        approver=QueuedApprover(FixedAnswer(None), store),
        launcher=SandboxLauncher(tmp_path, mode="off"),
    )


async def _ask(acquirer: Acquirer) -> str:
    plan = await acquirer.plan([PROBE, OTHER], query="tell the time", category="time")
    with pytest.raises(AcquisitionRefusedError) as refused:
        await acquirer.acquire(plan)
    return str(refused.value)


async def test_nobody_to_ask_keeps_one_question_per_candidate(tmp_path: Path) -> None:
    installer = ProbeInstaller()
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, installer)
        first = await _ask(acquirer)
        second = await _ask(acquirer)
        assert "kept for an operator as approval 1: `vsm-mcp approvals approve 1`" in first
        assert first == second
        [request] = await store.approvals()
        assert (request.kind, request.subject, request.status) == (
            "acquisition",
            "acquire:pypi:mcp-server-probe@1.0.0",
            ApprovalStatus.PENDING,
        )
        assert request.question.startswith(
            "Install pypi:mcp-server-probe@1.0.0 as server 'probe' for 'tell the time'?"
        )
        assert request.request["alternatives"][0]["identifier"] == "other-mcp"
        assert request.request["verdict"]["rule"] == "operator"
        assert installer.installs == []


@pytest.mark.slow
async def test_approve_acts_on_the_question_step_by_step_and_records_who(tmp_path: Path) -> None:
    installer = ProbeInstaller()
    steps: list[tuple[str, bool]] = []
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, installer)
        await _ask(acquirer)
        with anyio.fail_after(60):
            outcome = await approvals.approve(
                store, acquirer, 1, by=ALICE, progress=lambda step, s: steps.append((step, s is not None))
            )
        assert outcome.startswith("pypi:mcp-server-probe@1.0.0 runs as server 'probe' with ")
        assert [s for s, _ in steps] == [
            *("budget", "budget", "vet", "vet", "install", "install"),
            *("sandbox", "sandbox", "verify", "verify", "integrate", "integrate"),
        ]
        assert [done for _, done in steps] == [False, True] * 6
        request = await store.approval(1)
        assert request is not None
        assert (request.status, request.decided_by, request.outcome) == (ApprovalStatus.DONE, ALICE, outcome)
        assert "probe" in await FleetRegistry(store).desired()
        approved = [d for d in await store.decisions() if d.choice == "approve"]
        assert approved[0].inputs["answered_by"] == ALICE
        with pytest.raises(ConfigError, match=r"approval 1 is done \(by local user alice"):
            await approvals.approve(store, acquirer, 1, by=ALICE)


@pytest.mark.slow
async def test_a_failed_acquisition_marks_the_question_failed(tmp_path: Path) -> None:
    installer = ProbeInstaller({"mcp-server-probe": ("--crash-at-start",)})
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, installer)
        await _ask(acquirer)
        with anyio.fail_after(60), pytest.raises(AcquisitionError):
            await approvals.approve(store, acquirer, 1, by=ALICE)
        request = await store.approval(1)
        assert request is not None and request.status is ApprovalStatus.FAILED
        assert "crashing at start" in (request.outcome or "")


async def test_a_denied_candidate_is_refused_from_then_on_without_asking(tmp_path: Path) -> None:
    installer = ProbeInstaller()
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, installer)
        await _ask(acquirer)
        await approvals.deny(store, 1, by="local user bob (vsm-mcp approvals deny)", reason="not this one")
        refusal = await _ask(acquirer)
        assert refusal == "acquisition refused (operator): the operator declined"
        assert [a.id for a in await store.approvals()] == [1]  # not asked again
        decisions = await store.decisions()
        assert any(
            d.choice == "refuse" and d.rationale.endswith("denied approval 1: not this one")
            for d in decisions
        )
        declined = next(d for d in decisions if d.rationale.startswith("operator declined"))
        assert (
            "bob" in declined.inputs["answered_by"] and "approval 1, denied" in declined.inputs["answered_by"]
        )
        with pytest.raises(ConfigError, match="approval 1 is denied"):
            await approvals.deny(store, 1, by="x")
        with pytest.raises(ConfigError, match="no approval 7"):
            await approvals.deny(store, 7, by="x")
        assert installer.installs == []
