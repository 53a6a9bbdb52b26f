"""Recursion end to end: a real VSM-MCP process behind this one, a real probe server behind it."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from vsm_mcp.bridge.nesting import _parse
from vsm_mcp.core.nesting import OWN_META_KEY, STATUS_URI, is_viable, mark_own
from vsm_mcp.core.variety import set_variety
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import load_settings
from vsm_mcp.vsm.status import ViableStatus

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"
PROBE_TOOLS = {"echo", "add", "pid", "child_pid", "slow", "sleep", "hang", "env", "crash"}


def _inner_state(tmp_path: Path) -> Path:
    state = tmp_path / "inner"
    state.mkdir()
    lines = [
        "[sandbox]",
        'mode = "off"',
        "[servers.probe]",
        f"command = {json.dumps(sys.executable)}",
        f"args = [{json.dumps(str(PROBE))}]",
        "start_timeout_s = 20",
        # Long enough that the inner gateway's S3 sees the probe backing off after a kill.
        "backoff_initial_s = 60",
    ]
    (state / "config.toml").write_text("\n".join(lines) + "\n")
    return state


def _outer_config(tmp_path: Path, inner: Path) -> Path:
    config = tmp_path / "outer.toml"
    lines = [
        "[sandbox]",
        'mode = "off"',
        "[servers.inner]",
        f"command = {json.dumps(sys.executable)}",
        'args = ["-m", "vsm_mcp.cli.serve", "--stdio"]',
        f"env = {{ VSM_MCP_STATE_DIR = {json.dumps(str(inner))} }}",
        "start_timeout_s = 60",
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def _nested_probe(runtime: Runtime) -> ViableStatus | None:
    try:
        return runtime.system.unit_status("inner").unit("probe")
    except KeyError:
        return None


async def _until(runtime: Runtime, holds: object) -> None:
    """Wait (bounded) for a sampling round after which ``holds()`` is true."""
    assert callable(holds)
    with anyio.fail_after(40):
        await runtime.notices.wait_for("status.stored", after=0, where=lambda _: bool(holds()))


async def test_an_inner_vsm_mcp_is_nested_with_its_own_systems_and_its_vsm_is_not_capability(
    tmp_path: Path,
) -> None:
    inner = _inner_state(tmp_path)
    settings = load_settings(_outer_config(tmp_path, inner), state_dir=tmp_path / "outer")
    async with Runtime.open(settings, seed=7) as runtime:
        with anyio.fail_after(60):
            await runtime.fleet.wait_ready("inner")
        assert runtime.fleet.unit("inner").catalog.viable

        # Only the probe's tools are capability: the inner gateway's own tools are not re-exported.
        assert set(runtime.fleet.routes.tools) == {f"inner__probe__{t}" for t in PROBE_TOOLS}
        async with Client(runtime.gateway.server, mode="legacy") as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert {n for n in listed if n.startswith("inner__")} == {
                f"inner__probe__{t}" for t in PROBE_TOOLS
            }
            uris = [str(r.uri) for r in (await client.list_resources()).resources]
            assert len(uris) == len(set(uris)) and uris.count(STATUS_URI) == 1
            answer = await client.call_tool("inner__probe__echo", {"text": "through two gateways"})
            assert answer.is_error is False
            probe_pid = int(str((await client.call_tool("inner__probe__pid", {})).content[0].text))  # type: ignore[union-attr]

        # The outer status nests the inner one's computed systems and its unit, with its calls.
        await _until(
            runtime,
            lambda: (
                (p := _nested_probe(runtime)) is not None
                and p.s1.metrics.get("calls") == 2
                and p.s3.state == "ready"
            ),
        )
        nested = runtime.system.unit_status("inner")
        assert [u.name for u in nested.units] == ["probe"]
        # The inner's own S2 and S5 (their metrics), not a plain server's "none".
        assert nested.s5.metrics.get("auto_approve_acquisition") is not None
        assert nested.s2.metrics.get("unit_restarts") == 0
        assert runtime.system.status().depth() == 3  # outer, inner gateway, probe
        # System variety counts the real tools (categories of the routes), not the inner's VSM.
        reading = runtime.system.s4.reading()
        assert reading.system_variety_bits == pytest.approx(set_variety(len(PROBE_TOOLS)))

        # The inner's server dies: the outer tree shows it within a few sampling rounds.
        os.kill(probe_pid, signal.SIGKILL)
        await _until(
            runtime,
            lambda: (p := _nested_probe(runtime)) is not None and p.s3.state in {"backoff", "starting"},
        )
        assert runtime.system.unit_status("inner").s2.metrics.get("unit_restarts") == 1
        assert runtime.fleet.unit("inner").state.value == "ready"  # the inner gateway itself is fine


def test_only_an_own_marked_status_resource_makes_a_unit_viable() -> None:
    own = mark_own({"uri": STATUS_URI, "name": "status"})
    assert own["_meta"] == {OWN_META_KEY: True}
    assert is_viable([own])
    assert not is_viable([{"uri": STATUS_URI, "name": "status"}])  # a server naming it, unmarked
    assert not is_viable([mark_own({"uri": "vsm://fleet"})])


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "not a viable status"),
        (json.dumps({"gateway": {}}), "not a viable status"),
        (json.dumps({"vsm": {"name": 3}}), "not a viable status"),
        (json.dumps({"vsm": {"name": "x", "s1": "ok"}}), "not a viable status"),
        (json.dumps({"vsm": {"name": "x", "units": "many"}}), "not a viable status"),
        ("[" * 100_000 + "]" * 100_000, "not a viable status"),
        (json.dumps({"vsm": {"name": "x", "units": []}, "pad": "x" * (5 << 20)}), "over"),
    ],
)
def test_a_broken_or_hostile_status_document_is_refused_with_the_reason(text: str, why: str) -> None:
    status, detail = _parse({"contents": [{"uri": STATUS_URI, "text": text}]})
    assert status is None and why in detail


def test_a_status_nested_too_deep_is_refused() -> None:
    doc: dict[str, object] = {"name": "leaf", "units": []}
    for level in range(12):
        doc = {"name": f"l{level}", "units": [doc]}
    status, detail = _parse({"contents": [{"text": json.dumps({"vsm": doc})}]})
    assert status is None and "deeper" in detail
    ok, _ = _parse({"contents": [{"text": json.dumps({"vsm": {"name": "x", "units": []}})}]})
    assert ok is not None and ok.name == "x"
