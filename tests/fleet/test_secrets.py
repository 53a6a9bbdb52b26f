"""Secrets filled into a server's env and headers at each start, and a start refused without them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from vsm_mcp.core.messages import AlgedonicSignal, Decision
from vsm_mcp.errors import MissingSecretError
from vsm_mcp.fleet.confinement import Confinement, SandboxPolicy
from vsm_mcp.fleet.secrets import referenced, resolve
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.unit import Unit
from vsm_mcp.vsm.events import UnitState

pytestmark = pytest.mark.anyio


class Secrets:
    """A `SecretSource` over a dict, counting the lookups."""

    def __init__(self, **values: str) -> None:
        self.values = values
        self.asked: list[str] = []

    async def secret(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)


class Observer:
    def __init__(self) -> None:
        self.signals: list[AlgedonicSignal] = []

    async def unit_catalog_changed(self, unit: Unit) -> None:
        return None

    async def unit_notification(self, unit: Unit, notification: types.ServerNotification) -> None:
        return None

    async def unit_request(self, unit: Unit, request: Any) -> Any:
        return types.ErrorData(code=types.INVALID_REQUEST, message="none")

    async def unit_signal(self, signal: AlgedonicSignal) -> None:
        self.signals.append(signal)

    async def unit_decided(self, unit: Unit, decision: Decision) -> None:
        return None


def _spec(**fields: Any) -> ServerSpec:
    return ServerSpec.model_validate({"name": "gh", "command": "server", **fields})


async def test_references_in_env_and_headers_are_filled_and_the_spec_keeps_them() -> None:
    spec = ServerSpec.model_validate(
        {
            "name": "api",
            "url": "http://127.0.0.1:1/mcp",
            "headers": {"Authorization": "Bearer ${secret:tok}", "X-Plain": "as is"},
        }
    )
    source = Secrets(tok="s3cret")
    filled = await resolve(spec, source)
    assert filled.headers == {"Authorization": "Bearer s3cret", "X-Plain": "as is"}
    assert spec.headers["Authorization"] == "Bearer ${secret:tok}"  # the original is untouched
    env = await resolve(_spec(env={"A": "${secret:tok}${secret:tok}", "B": "1"}), source)
    assert env.env == {"A": "s3crets3cret", "B": "1"}


async def test_a_spec_without_references_is_returned_without_asking() -> None:
    spec = _spec(env={"TZ": "UTC", "COST": "$5 {secret:x}"})
    source = Secrets()
    assert await resolve(spec, source) is spec
    assert source.asked == []
    assert referenced(spec) == []


async def test_a_value_with_backslashes_or_group_syntax_is_filled_literally() -> None:
    filled = await resolve(_spec(env={"K": "${secret:k}"}), Secrets(k=r"a\1b\g<0>$&"))
    assert filled.env == {"K": r"a\1b\g<0>$&"}


async def test_missing_secrets_refuse_the_start_naming_each_and_how_to_set_it() -> None:
    spec = _spec(env={"A": "${secret:one}", "B": "${secret:two}", "C": "${secret:set}"})
    with pytest.raises(MissingSecretError) as caught:
        await resolve(spec, Secrets(set="v"))
    assert str(caught.value) == (
        "server 'gh' refers to secrets 'one', 'two', not set: vsm-mcp secrets set one "
        "(then vsm-mcp servers restart gh)"
    )
    with pytest.raises(MissingSecretError, match="secret 'one', not set"):
        await resolve(_spec(env={"A": "${secret:one}"}), None)  # nowhere to look them up


@pytest.mark.slow
async def test_a_unit_starts_with_its_secret_and_never_logs_it(
    probe_spec: Callable[..., ServerSpec], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    spec = probe_spec("p", env={"PROBE_TOKEN": "Bearer ${secret:tok}"})
    # Sandboxed (or, without bubblewrap, its fallback): either way the launch is logged.
    confinement = Confinement(SandboxPolicy(mode="prefer", servers_dir=tmp_path / "servers"))
    unit = Unit(spec, Observer(), confinement=confinement, secrets=Secrets(tok="s3cret-value"))
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
        result = await unit.request(
            "tools/call", {"name": "env", "arguments": {"name": "PROBE_TOKEN"}}, retry_safe=True
        )
        assert result["content"][0]["text"] == "Bearer s3cret-value"
        assert unit.spec.env == {"PROBE_TOKEN": "Bearer ${secret:tok}"}
        tg.cancel_scope.cancel()
    assert "PROBE_TOKEN" in caplog.text  # the launch is logged, with the variable's name ...
    assert "s3cret-value" not in caplog.text  # ... never its value


@pytest.mark.slow
async def test_a_unit_without_its_secret_fails_with_a_signal_and_starts_once_it_is_set(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    observer = Observer()
    source = Secrets()
    failed = anyio.Event()

    def on_state(unit: Unit, previous: UnitState | None) -> None:
        if unit.state is UnitState.FAILED:
            failed.set()

    unit = Unit(
        probe_spec("p", env={"PROBE_TOKEN": "${secret:tok}"}), observer, secrets=source, on_state=on_state
    )
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(10):
            await failed.wait()
        assert unit.pid is None  # nothing was started
        assert unit.stats.last_error == (
            "not started: server 'p' refers to secret 'tok', not set: vsm-mcp secrets set tok "
            "(then vsm-mcp servers restart p)"
        )
        assert [(s.kind, s.source) for s in observer.signals] == [("secret_missing", "unit:p")]
        assert unit.stats.restarts == 0  # a refusal, not a crash loop
        source.values["tok"] = "now set"
        unit.request_restart()
        with anyio.fail_after(20):
            await unit.wait_ready()
        result = await unit.request(
            "tools/call", {"name": "env", "arguments": {"name": "PROBE_TOKEN"}}, retry_safe=True
        )
        assert result["content"][0]["text"] == "now set"
        assert unit.missing_secret == ""
        assert unit.stats.last_error == ""  # it describes the unit as it is now, not the refusal before
        tg.cancel_scope.cancel()
