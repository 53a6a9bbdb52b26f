"""A scripted day: a real acquisition of the probe server, real calls through the fleet (some
failing), the outcome ledger fed by the fleet's observer, then `reflect` from the store alone."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.vetting import Candidate, VettingPolicy
from vsm_mcp.bridge.observers import OutcomeRecorder
from vsm_mcp.bridge.reflection import reflect
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.store import MemoryStore

from .conftest import ProbeInstaller, stub_metadata

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Candidate("probe-time", "pypi", "mcp-server-probe", "1.0.0", score=2.0, in_catalog=True)
CATEGORY = "search:echo text"


async def test_reflect_reports_the_brier_score_of_what_the_acquisition_expected(tmp_path: Path) -> None:
    ledger = OutcomeLedger()
    for ok in (True, True, False):  # what the ledger knew before: 2 of 3
        ledger.record(PROBE.server, CATEGORY, ok)
    expected_p = (2 + ledger.alpha) / (3 + ledger.alpha + ledger.beta)
    async with MemoryStore.open() as store:
        acquirer = Acquirer(
            store=store,
            registry=FleetRegistry(store),
            installer=ProbeInstaller(),
            metadata=stub_metadata(),
            known_names={"mcp-server-probe"},
            state_dir=tmp_path,
            policy=VettingPolicy(auto_approve=True),
            launcher=SandboxLauncher(tmp_path, mode="off"),
            outcomes=ledger,
        )
        plan = await acquirer.plan([PROBE], query="echo text", category=CATEGORY)
        acquired = await acquirer.acquire(plan)
        unit = plan.unit
        recorder = OutcomeRecorder(ledger, lambda: fleet.units)
        recorder.catalog_names = {unit: PROBE.server}  # as the runtime learns it from the installs
        async with Fleet([acquired.spec], observers=[recorder]) as fleet:
            with anyio.fail_after(30):
                await fleet.wait_ready(unit)
            for i in range(6):
                answer = await fleet.call_tool(f"{unit}__echo", {"text": str(i)})
                assert not answer.get("isError")
            for _ in range(2):  # arguments the tool refuses: failed calls
                answer = await fleet.call_tool(f"{unit}__add", {"a": "one", "b": 2})
                assert answer.get("isError") is True
        await ledger.save(store)
        report = await reflect(store)

    # Every call of the unit's tools counts for (server, category): its spec carries the category.
    independent = (6 * (1 - expected_p) ** 2 + 2 * expected_p**2) / 8
    assert report["calls_observed"] == 8
    assert report["brier"] == pytest.approx(independent, abs=1e-6)
    [entry] = report["acquisitions"]
    assert (entry["successes"], entry["failures"], entry["predicted_success"]) == (
        6,
        2,
        pytest.approx(expected_p, abs=1e-6),
    )
