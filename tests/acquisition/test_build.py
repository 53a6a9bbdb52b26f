"""The service built from the [acquisition] settings asks the live sources only when they are on."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsm_mcp.acquisition.build import capability_service
from vsm_mcp.acquisition.pipeline import FixedAnswer
from vsm_mcp.discovery.sources import GuardedSource
from vsm_mcp.settings import AcquisitionSettings
from vsm_mcp.store import MemoryStore

pytestmark = pytest.mark.anyio


async def test_live_sources_follow_the_setting_with_its_deadline(tmp_path: Path) -> None:
    async with MemoryStore.open() as store:
        on = AcquisitionSettings(live_sources=True, live_deadline_s=3.5)
        async with capability_service(on, [], tmp_path, store, FixedAnswer(None)) as service:
            sources = service.live_sources
            assert [s.name for s in sources] == ["mcp-registry", "npm", "pypi-names", "npm-names"]
            assert all(isinstance(s, GuardedSource) and s.deadline_s == 3.5 for s in sources)
        # a registry the policy does not allow is not probed by name either
        async with capability_service(
            on, [], tmp_path, store, FixedAnswer(None), registries=("pypi",)
        ) as service:
            assert [s.name for s in service.live_sources] == ["mcp-registry", "npm", "pypi-names"]
        off = AcquisitionSettings(live_sources=False)
        async with capability_service(off, [], tmp_path, store, FixedAnswer(None)) as service:
            assert service.live_sources == ()
            found = await service.search("frobnicate the quuxalator")  # words no catalog entry has
            assert (found.strength.weak, found.live_asked) == (True, False)
