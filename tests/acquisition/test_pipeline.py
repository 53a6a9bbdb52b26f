"""The pipeline with a real probe server behind a fixture installer: success, rollback, budgets, asking."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.pipeline import (
    INSTALLED_KEY,
    Acquirer,
    AcquisitionPlan,
    FixedAnswer,
    unit_name,
)
from vsm_mcp.acquisition.vetting import Candidate, Verdict, VettingPolicy
from vsm_mcp.errors import AcquisitionError, AcquisitionRefusedError
from vsm_mcp.fleet import definitions
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.store import MemoryStore

from .conftest import ProbeInstaller, children_running, stub_metadata

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE_TIME = Candidate("probe-time", "pypi", "mcp-server-probe", "1.0.0", score=2.0, in_catalog=True)
ALTERNATIVE = Candidate("other", "npm", "other-mcp", "0.1.0", score=0.5, in_catalog=True)


def _acquirer(store: MemoryStore, tmp_path: Path, installer: ProbeInstaller, **kw: object) -> Acquirer:
    options: dict[str, object] = {
        "store": store,
        "registry": FleetRegistry(store),
        "installer": installer,
        "metadata": stub_metadata(),
        "known_names": {"mcp-server-probe", "other-mcp"},
        "state_dir": tmp_path,
        "policy": VettingPolicy(auto_approve=True),
        "launcher": SandboxLauncher(tmp_path, mode="off"),
    } | kw
    return Acquirer(**options)  # type: ignore[arg-type]


def test_unit_names_drop_scope_and_affixes_and_stay_unique() -> None:
    assert unit_name("mcp-server-time", ()) == "time"
    assert unit_name("time-mcp", {"time"}) == "time-2"
    assert unit_name("@modelcontextprotocol/server-everything", ()) == "everything"
    assert unit_name("mcp_server_fetch", ()) == "fetch"
    assert unit_name("mcp", ()) == "mcp"


async def test_a_server_is_installed_verified_pinned_and_registered(tmp_path: Path) -> None:
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, ProbeInstaller())
        plan = await acquirer.plan([PROBE_TIME, ALTERNATIVE], query="echo text", category="search:echo text")
        assert (plan.unit, plan.prefix) == ("probe", tmp_path / "servers" / "probe")
        with anyio.fail_after(60):
            acquired = await acquirer.acquire(plan)
        assert acquired.spec.command == str(tmp_path / "servers" / "probe" / "bin" / "server")
        assert acquired.spec.category == "search:echo text"
        assert sorted(acquired.verification.pins) == [
            "add",
            "child_pid",
            "crash",
            "echo",
            "env",
            "hang",
            "pid",
            "sleep",
            "slow",
        ]
        echo = next(t for t in acquired.verification.tools if t["name"] == "echo")
        assert acquired.verification.pins["echo"] == definitions.digest(echo)
        desired = await FleetRegistry(store).desired()
        assert desired["probe"] == acquired.spec
        # What was verified is the server's definition pin: every field of every tool.
        pin = await definitions.load(store, "probe")
        assert pin is not None and (pin.by, pin.quarantine) == ("verification", None)
        assert pin.tools == definitions.listed(acquired.verification.tools)
        assert pin.tools["echo"]["annotations"] == {"readOnlyHint": True}
        installed = await store.kv_get(INSTALLED_KEY)
        assert isinstance(installed, dict) and installed["probe"]["ref"] == "pypi:mcp-server-probe@1.0.0"
        caps = await store.capabilities()
        assert {c.category for c in caps} == {"search:echo text"}
        assert len(caps) == len(acquired.verification.pins) == 9
        decisions = await store.decisions()
        assert [(d.choice, d.rule) for d in decisions] == [
            ("acquired", "auto_approve"),
            ("approve", "auto_approve"),
        ]
        vetted = decisions[1]
        assert vetted.subject == "acquire:pypi:mcp-server-probe@1.0.0"
        assert vetted.inputs["query"] == "echo text"
        assert vetted.inputs["metadata"]["license"] == "MIT"
        assert vetted.alternatives == [
            {
                "server": "other",
                "package": "npm:other-mcp@0.1.0",
                "score": 0.5,
                "reasons": [],
                "in_catalog": True,
            }
        ]
        assert await acquirer.installed_unit(PROBE_TIME) == "probe"
    assert children_running(str(tmp_path)) == []


async def test_a_server_that_crashes_at_start_is_rolled_back_completely(tmp_path: Path) -> None:
    installer = ProbeInstaller({"mcp-server-probe": ("--crash-at-start",)})
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, installer)
        plan = await acquirer.plan([PROBE_TIME], query="echo", category="echo")
        with anyio.fail_after(60), pytest.raises(AcquisitionError) as info:
            await acquirer.acquire(plan)
        assert info.value.step == "verify"
        assert info.value.reason == "the server exited before answering (crashing at start)"
        assert not (tmp_path / "servers" / "probe").exists()
        assert await FleetRegistry(store).desired() == {}
        assert await store.capabilities() == []
        assert await definitions.load(store, "probe") is None
        last = (await store.decisions())[0]
        assert (last.choice, last.rule) == ("rolled_back", "verify")
        assert last.rationale == "the server exited before answering (crashing at start); undone: files"
    assert children_running(str(tmp_path)) == []


async def test_integration_into_a_running_fleet_and_rollback_of_it(tmp_path: Path) -> None:
    async with MemoryStore.open() as store, Fleet() as fleet:
        acquirer = _acquirer(store, tmp_path, ProbeInstaller(), fleet=fleet)
        plan = await acquirer.plan([PROBE_TIME], query="echo", category="echo")
        with anyio.fail_after(60):
            await acquirer.acquire(plan)
        assert "probe__echo" in fleet.routes.tools
        result = await fleet.call_tool("probe__echo", {"text": "hi"})
        assert result["content"][0]["text"] == "hi"
        pid = fleet.unit("probe").pid
        assert pid is not None

        # A second unit whose listing no longer matches what was verified (a verifier that saw other
        # tools) is undone.
        async def lying_verifier(spec: object, plan: object) -> object:
            from vsm_mcp.acquisition.verify import verify

            real = await verify(spec, plan)  # type: ignore[arg-type]
            echo = next(t for t in real.tools if t["name"] == "echo")
            return type(real)(**{**{f: getattr(real, f) for f in real.__slots__}, "tools": (echo,)})

        liar = _acquirer(store, tmp_path, ProbeInstaller(), fleet=fleet, verifier=lying_verifier)
        other = await liar.plan([ALTERNATIVE], query="other", category="other")
        with anyio.fail_after(60), pytest.raises(AcquisitionError) as info:
            await liar.acquire(other)
        assert info.value.step == "integrate"
        assert info.value.reason.startswith("tool definitions changed since verification: tool 'add' is new")
        assert await definitions.load(store, "other") is None
        assert "other" not in fleet.units
        assert not (tmp_path / "servers" / "other").exists()
        assert list(await FleetRegistry(store).desired()) == ["probe"]
        last = (await store.decisions())[0]
        assert last.rationale.endswith("undone: process, definition pin, files")
    assert children_running(str(tmp_path)) == []


async def test_budgets_refuse_before_anything_is_installed(tmp_path: Path) -> None:
    installer = ProbeInstaller()
    async with MemoryStore.open() as store:
        full = _acquirer(store, tmp_path, installer, policy=VettingPolicy(auto_approve=True, max_units=0))
        with pytest.raises(
            AcquisitionRefusedError, match=r"max_units.*the fleet has 0 servers; the budget is 0"
        ):
            await full.acquire(await full.plan([PROBE_TIME], query="q", category="q"))
        busy = _acquirer(
            store, tmp_path, installer, policy=VettingPolicy(auto_approve=True, max_installs_per_hour=1)
        )
        with anyio.fail_after(60):
            await busy.acquire(await busy.plan([PROBE_TIME], query="q", category="q"))
        with pytest.raises(AcquisitionRefusedError, match=r"1 installs in the last hour; the budget is 1"):
            await busy.acquire(await busy.plan([ALTERNATIVE], query="q", category="q"))
        assert installer.installs == ["pypi:mcp-server-probe@1.0.0"]
        refusals = [d for d in await store.decisions() if d.choice == "refuse"]
        assert [d.rule for d in refusals] == ["max_installs_per_hour", "max_units"]


class _Recorder:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    async def approve(self, plan: AcquisitionPlan, verdict: Verdict) -> bool | None:
        self.asked.append((plan.unit, verdict.rule))
        return self.answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            None,
            "acquisition refused (operator): every check passed; listed in the catalog; auto-approve is off: "
            "a person decides, but nobody can be asked (non-interactive; pass --yes to accept)",
        ),
        (False, "acquisition refused (operator): the operator declined"),
    ],
)
async def test_ask_goes_to_the_operator_and_no_answer_refuses(
    tmp_path: Path, answer: bool | None, expected: str
) -> None:
    approver = _Recorder(answer)
    installer = ProbeInstaller()
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, installer, policy=VettingPolicy(), approver=approver)
        with pytest.raises(AcquisitionRefusedError) as info:
            await acquirer.acquire(await acquirer.plan([PROBE_TIME], query="q", category="q"))
        assert str(info.value) == expected
        assert approver.asked == [("probe", "operator")]
        assert installer.installs == []
        assert [d.choice for d in await store.decisions()] == ["refuse", "ask"]


async def test_yes_accepts_an_ask(tmp_path: Path, probe_installer: Callable[..., ProbeInstaller]) -> None:
    async with MemoryStore.open() as store:
        acquirer = _acquirer(
            store, tmp_path, probe_installer(), policy=VettingPolicy(), approver=FixedAnswer(True)
        )
        with anyio.fail_after(60):
            await acquirer.acquire(await acquirer.plan([PROBE_TIME], query="q", category="q"))
        assert [(d.choice, d.rule) for d in await store.decisions()] == [
            ("acquired", "operator"),
            ("approve", "operator"),
            ("ask", "operator"),
        ]


async def test_a_typosquat_is_refused_without_installing(tmp_path: Path) -> None:
    installer = ProbeInstaller()
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, installer, approver=FixedAnswer(True))
        squat = Candidate("mcp-server-prbe", "pypi", "mcp-server-prbe", "1.0.0")
        with pytest.raises(AcquisitionRefusedError, match="possible typosquat"):
            await acquirer.acquire(await acquirer.plan([squat], query="q", category="q"))
        assert installer.installs == []
        assert not (tmp_path / "servers").exists()


async def test_a_configured_server_launching_the_same_package_counts_as_installed(
    tmp_path: Path, probe_installer: Callable[..., ProbeInstaller]
) -> None:
    configured = ServerSpec(name="time", command="uvx", args=["mcp-server-time"])
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, probe_installer(), registry=FleetRegistry(store, [configured]))
        candidate = Candidate("mcp-server-time", "pypi", "mcp-server-time", "2026.10.19", in_catalog=True)
        assert await acquirer.installed_unit(candidate) == "time"
        other = Candidate("mcp-server-fetch", "pypi", "mcp-server-fetch", "1.0.0", in_catalog=True)
        assert await acquirer.installed_unit(other) is None


async def test_an_acquisition_records_the_success_it_expects_for_reflection(tmp_path: Path) -> None:
    from vsm_mcp.discovery.outcomes import OutcomeLedger

    ledger = OutcomeLedger()
    ledger.record("probe-time", "search:echo text", True)
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path, ProbeInstaller(), outcomes=ledger)
        plan = await acquirer.plan([PROBE_TIME], query="echo text", category="search:echo text")
        await acquirer.acquire(plan)
        acquired = next(d for d in await store.decisions() if d.choice == "acquired")
    # The ledger's posterior for (server, category) at the time, with the tally it started from.
    assert acquired.inputs["predicted_success"] == pytest.approx((1 + 2) / (1 + 4))
    assert acquired.inputs["outcome_key"] == ["probe-time", "search:echo text"]
    assert acquired.inputs["tally_at_decision"] == [1, 0]


async def test_s5_does_not_approve_by_itself_a_server_that_served_the_category_badly(tmp_path: Path) -> None:
    from vsm_mcp.acquisition.pipeline import TRUST_EVIDENCE
    from vsm_mcp.discovery.outcomes import OutcomeLedger

    ledger = OutcomeLedger()
    for i in range(TRUST_EVIDENCE):
        ledger.record("probe-time", "search:echo text", i < 2)  # 2 of 10 succeeded before
    async with MemoryStore.open() as store:
        installer = ProbeInstaller()
        acquirer = _acquirer(store, tmp_path, installer, outcomes=ledger)
        plan = await acquirer.plan([PROBE_TIME], query="echo text", category="search:echo text")
        with pytest.raises(AcquisitionRefusedError) as refused:
            await acquirer.acquire(plan)  # nobody can be asked here
        assert installer.installs == []
        [vetted] = [d for d in await store.decisions() if d.choice == "ask"]
    assert vetted.rule == "trust"
    assert (
        "probe-time served 'search:echo text' badly before (2 of 10 calls succeeded; trust 0.29 < 0.5)"
        in (vetted.rationale)
    )
    assert "nobody can be asked" in str(refused.value)
    # Another category has no such history: auto-approve holds.
    async with MemoryStore.open() as store:
        acquirer = _acquirer(store, tmp_path / "other", ProbeInstaller(), outcomes=ledger)
        plan = await acquirer.plan([PROBE_TIME], query="echo text", category="search:other")
        await acquirer.acquire(plan)
