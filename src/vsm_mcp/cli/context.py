"""What the root command passes down to every sub-command."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

_T = TypeVar("_T")

if TYPE_CHECKING:
    from vsm_mcp.core.ports import Store
    from vsm_mcp.settings import Settings


@dataclass(frozen=True, slots=True)
class CliState:
    """Global flags, resolved lazily into `Settings` (so `--help` never reads files)."""

    state_dir: Path | None
    config: Path | None

    def settings(self) -> Settings:
        """Load settings: flags > environment > TOML file > defaults."""
        from vsm_mcp.settings import load_settings  # pydantic and every layer it validates: not for --help

        return load_settings(self.config, state_dir=self.state_dir)


def state_of(ctx: typer.Context) -> CliState:
    """The `CliState` of the current invocation (set by the root callback)."""
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, CliState):  # invoked without the root callback, e.g. in a test of one command
        obj = CliState(state_dir=None, config=None)
    return obj


async def audited(store: Store, action: str, target: str, detail: str = "") -> None:
    """Append what the local user just did here to the audit log (``vsm-mcp audit``)."""
    import time

    from vsm_mcp.core.messages import OperatorAction
    from vsm_mcp.gateway.access import LOCAL_OPERATOR

    await store.record_action(
        OperatorAction(time.time(), LOCAL_OPERATOR.label, action, target, "cli", detail)
    )


def with_store(ctx: typer.Context, action: Callable[[Store], Awaitable[_T]]) -> _T:
    """Run ``action`` on the state directory's store (opened and closed here)."""
    import anyio

    from vsm_mcp.store import SqliteStore

    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> _T:
        async with SqliteStore.open(settings.database_path) as store:
            return await action(store)

    return anyio.run(run)
