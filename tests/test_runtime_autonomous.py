"""The whole loop, for real: demand nobody answers -> sustained gap -> S4 proposal -> S5 decision ->
acquisition of a real PyPI server into the sandbox -> the fleet starts it -> the gap measurably closes."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import load_settings

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.external]

#: Installing mcp-server-time from PyPI and starting it twice (verify, then the fleet) on a shared machine.
ACQUIRE_TIMEOUT_S = 180.0


async def test_unanswered_demand_makes_the_system_acquire_a_server_and_the_gap_closes(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[variety]\npersist_events = 3\npersist_s = 0.5\ngap_upper = 0.5\ngap_lower = 0.2\n"
        '[acquisition]\nauto_approve = true\nregistries = ["pypi"]\n'
    )
    settings = load_settings(config, state_dir=tmp_path / "state")
    async with Runtime.open(settings, seed=1, autonomous=True) as runtime:
        notices = runtime.notices
        mark = notices.last_seq
        async with Client(runtime.gateway.server, mode="legacy") as client:
            for _ in range(4):
                with pytest.raises(MCPError, match="Unknown tool"):
                    await client.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
            s4 = runtime.system.s4
            with anyio.fail_after(10):
                await notices.wait_for("proposal.made", after=mark)
            gap_before = s4.reading().gap
            # one category (H_E = 0, so no deficit term), nothing answers it: G = 1 - kappa = 1
            assert gap_before == 1.0
            loop = runtime.acquisition
            assert loop is not None
            with anyio.fail_after(ACQUIRE_TIMEOUT_S):
                ended = await notices.wait_for(
                    "decision.stored",
                    after=mark,
                    where=lambda n: (
                        n.subject.startswith("acquire:")
                        and n.data["choice"] in {"acquired", "rolled_back", "refuse"}
                    ),
                )
            assert ended.data["choice"] == "acquired", ended
            with anyio.fail_after(60):
                # the registry hands the new server to the running fleet within a sync interval
                await notices.wait_for(
                    "capability.changed",
                    after=mark,
                    where=lambda _: any(n.endswith("get_current_time") for n in runtime.fleet.routes.tools),
                )
            assert loop.attempts[0].ok, loop.attempts[0].detail
            public = next(n for n in runtime.fleet.routes.tools if n.endswith("get_current_time"))
            result = await client.call_tool(public, {"timezone": "Asia/Tokyo"})
            assert result.is_error is False
            assert "Asia/Tokyo" in str(result.content[0])
            # The same demand is now answered: coverage rises and the gap falls below the lower threshold.
            with anyio.fail_after(10):
                await notices.wait_for("variety.read", after=0, where=lambda n: n.data["events"] >= 5)
            after = s4.reading()
            assert after.coverage > 0.0
            assert after.gap < gap_before
        decisions = await runtime.store.decisions()
        assert any(d.system == "s5" and "approve" in d.choice for d in decisions)
