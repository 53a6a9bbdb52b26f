"""A `store` fixture that runs each contract test on both implementations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vsm_mcp.core.ports import Store
from vsm_mcp.store import MemoryStore, SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        async with MemoryStore.open() as memory:
            yield memory
    else:
        async with SqliteStore.open(tmp_path / "state.db") as sqlite:
            yield sqlite
