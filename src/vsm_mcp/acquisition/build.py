"""Build the acquisition service (S4 ranking + S5 vetting + installer + sandbox) from settings.

Shared by `vsm-mcp acquire`, `vsm-mcp approvals approve` and the runtime's
autonomous loop, so all apply one policy: the ``[acquisition]`` settings
(`AcquisitionConfig`, which `vsm_mcp.settings.AcquisitionSettings` is), with
command-line flags on top.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx

from vsm_mcp.acquisition.candidates import known_names
from vsm_mcp.acquisition.install_sandbox import InstallSandbox
from vsm_mcp.acquisition.installer import PackageInstaller
from vsm_mcp.acquisition.launch import SandboxLauncher, SandboxMode
from vsm_mcp.acquisition.metadata import release_metadata
from vsm_mcp.acquisition.pipeline import Acquirer, Approver
from vsm_mcp.acquisition.service import CapabilityService
from vsm_mcp.acquisition.vetting import ReleaseMetadata, VettingPolicy
from vsm_mcp.core.ports import Store
from vsm_mcp.discovery.catalog import load_shipped_catalog
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.discovery.resilience import TtlCache
from vsm_mcp.discovery.sources import (
    CandidateSource,
    GuardedSource,
    NameProbeSource,
    NpmSearchSource,
    RegistrySource,
)
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.fleet.spec import ServerSpec


class AcquisitionConfig(Protocol):
    """The ``[acquisition]`` settings the service is built from."""

    @property
    def sandbox(self) -> SandboxMode: ...
    @property
    def network(self) -> bool: ...
    @property
    def source_builds(self) -> bool: ...
    @property
    def live_sources(self) -> bool: ...
    @property
    def live_deadline_s(self) -> float: ...

    def policy(self, **overrides: Any) -> VettingPolicy: ...


@asynccontextmanager
async def capability_service(
    config: AcquisitionConfig,
    servers: Iterable[ServerSpec],
    state_dir: Path,
    store: Store,
    approver: Approver,
    *,
    registries: Collection[str] | None = None,
    sandbox: SandboxMode | None = None,
    network: bool | None = None,
    auto_approve: bool | None = None,
    source_builds: bool | None = None,
    outcomes: OutcomeLedger | None = None,
) -> AsyncIterator[CapabilityService]:
    """A `CapabilityService` over the real registries, installer and sandbox ``config`` names,
    beside the configured ``servers``, installing under ``state_dir``.

    ``outcomes`` is the learned ledger the ranking uses (loaded from the store when not given).
    The installers run in the same sandbox mode as the servers they install.
    """
    # Parsing and validating the catalog (0.2 s of CPU measured, more on a busy host): off the event loop.
    catalog = await anyio.to_thread.run_sync(load_shipped_catalog)
    ledger = outcomes if outcomes is not None else await OutcomeLedger.load(store)
    policy = config.policy(
        allowed_registries=frozenset(registries) if registries is not None else None,
        auto_approve=auto_approve,
    )
    async with httpx.AsyncClient() as client:

        async def metadata(registry_type: str, name: str, version: str) -> ReleaseMetadata | None:
            return await release_metadata(client, registry_type, name, version)

        acquirer = Acquirer(
            store=store,
            registry=FleetRegistry(store, servers),
            installer=PackageInstaller(
                ignore_scripts=policy.npm_ignore_scripts,
                source_builds=config.source_builds if source_builds is None else source_builds,
                sandbox=InstallSandbox(sandbox or config.sandbox, state_dir=state_dir),
            ),
            metadata=metadata,
            known_names=known_names(catalog),
            state_dir=state_dir,
            policy=policy,
            approver=approver,
            outcomes=ledger,
            launcher=SandboxLauncher(
                state_dir,
                mode=sandbox or config.sandbox,
                network=config.network if network is None else network,
            ),
        )
        cache = TtlCache(store)
        # Off the event loop: indexing the catalog (and embedding its texts) takes about a second;
        # discovery's analyser stems with one stemmer per thread.
        matcher = await anyio.to_thread.run_sync(functools.partial(Matcher, catalog, outcomes=ledger))
        # Asked beside the catalog when its best match is weak (`CapabilityService.search`). PyPI has
        # no search API and npm's is not reachable from every network: both are also asked for the
        # conventional names of an MCP server (`NameProbeSource`) for the need's words the catalog
        # has least, of the registries policy allows.
        asked: list[CandidateSource] = [RegistrySource(client), NpmSearchSource(client)]
        asked += [
            NameProbeSource(client, registry, rarity=matcher.rarity)
            for registry in ("pypi", "npm")
            if registry in policy.allowed_registries
        ]
        live = (
            [GuardedSource(source, cache, deadline_s=config.live_deadline_s) for source in asked]
            if config.live_sources
            else []
        )
        yield CapabilityService(
            acquirer,
            matcher,
            registry_types=tuple(sorted(policy.allowed_registries)),
            live_sources=live,
        )
