"""`vsm-mcp bench acquire`: from a detected gap to the first successful call, against doing it by hand.

For each case (a real catalog server and one of its tools) and each cache
state, two clocks:

* ``vsm_s``: S4 detects a sustained gap in the case's demand category (real
  `Intelligence` and hysteresis); the clock starts at `GapDetected` and stops
  when the first ``tools/call`` through the fleet succeeds. In between: the
  ranked plan, S5 vetting with live registry metadata, the install into a
  fresh prefix, the sandboxed launch and verification, integration into a
  running `Fleet`, and the call.
* ``by_hand_s``: what a person would run: ``uvx PKG==VER`` / ``npx -y
  PKG@VER`` added to a fleet, from the add to the first successful call.

``cold`` gives each side its own empty uv and npm cache (everything is
downloaded); ``warm`` runs again on the caches the cold run filled (but a
fresh VSM state directory, so the install itself is repeated). ``ratio`` is
``vsm_s / by_hand_s``. Every figure is measured here; nothing is estimated.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from vsm_mcp.acquisition.candidates import known_names
from vsm_mcp.acquisition.installer import PackageInstaller
from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.metadata import release_metadata
from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.service import CapabilityService, search_category
from vsm_mcp.acquisition.vetting import ReleaseMetadata, VettingPolicy
from vsm_mcp.core.hysteresis import GapDetected, GapDetector, HysteresisPolicy
from vsm_mcp.core.window import DemandWindow
from vsm_mcp.discovery.catalog import Catalog, load_shipped_catalog
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.fleet.confinement import SandboxPolicy
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.store import MemoryStore
from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.intelligence import Intelligence

#: One run (install included) must finish within this, or the case is reported failed.
RUN_TIMEOUT_S = 240.0
#: Demand events S4 must see before the gap counts as sustained in the bench.
PERSIST_EVENTS = 5


@dataclass(frozen=True, slots=True)
class Case:
    """One server to acquire, how to pick it, and a call that proves it works."""

    query: str
    server: str
    registry: str
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


CASES: tuple[Case, ...] = (
    Case(
        "current time in another timezone",
        "mcp-server-time",
        "pypi",
        "get_current_time",
        {"timezone": "Asia/Tokyo"},
    ),
    Case("current time in another timezone", "time-mcp", "npm", "current_time"),
)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One case in one cache state."""

    case: str
    cache: str
    vsm_s: float
    by_hand_s: float
    ratio: float
    vsm_steps_s: dict[str, float]
    gap_before: float
    gap_after: float
    sandbox: str


#: What a person's shell hands to ``uvx``/``npx`` besides the basics: certificate bundles and proxies
#: (without them, a registry behind a TLS-inspecting proxy is unreachable).
SHELL_PASSTHROUGH = re.compile(
    r"^(SSL_CERT_(FILE|DIR)|NODE_EXTRA_CA_CERTS|REQUESTS_CA_BUNDLE|(HTTPS?|NO|ALL)_PROXY)$", re.I
)


def _caches(root: Path) -> dict[str, str]:
    return {"UV_CACHE_DIR": str(root / "uv"), "npm_config_cache": str(root / "npm")}


def _shell_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if SHELL_PASSTHROUGH.match(k)}


async def _vsm(
    case: Case, catalog: Catalog, caches: dict[str, str]
) -> tuple[float, dict[str, float], float, float, str]:
    """Gap detected -> first successful call, on a fresh state directory."""
    with tempfile.TemporaryDirectory(prefix="vsm-bench-state-") as tmp:
        state = Path(tmp)
        category = search_category(case.query)
        # The acquired spec carries its own sandbox section; the policy hides the state dir.
        policy = SandboxPolicy(servers_dir=state / "servers", state_dir=state)
        async with (
            MemoryStore.open() as store,
            Bus() as bus,
            httpx.AsyncClient() as client,
            Fleet(sandbox=policy) as fleet,
        ):
            s4 = Intelligence(
                bus.inbox("s4"),
                bus,
                store,
                window=DemandWindow(max_events=100),
                detector=GapDetector(HysteresisPolicy(persist_events=PERSIST_EVENTS, persist_s=0)),
            )
            event = None
            while not isinstance(event, GapDetected):
                event = s4.observe([category], time.time())
            started = time.monotonic()

            async def metadata(registry_type: str, name: str, version: str) -> ReleaseMetadata | None:
                return await release_metadata(client, registry_type, name, version)

            acquirer = Acquirer(
                store=store,
                registry=FleetRegistry(store),
                installer=PackageInstaller(env=caches),
                metadata=metadata,
                known_names=known_names(catalog),
                state_dir=state,
                policy=VettingPolicy(auto_approve=True, allowed_registries=frozenset({case.registry})),
                fleet=fleet,
                launcher=SandboxLauncher(state),
            )
            service = CapabilityService(acquirer, Matcher(catalog), registry_types=(case.registry,))
            plan = await service.plan(case.query, server=case.server)
            acquired = await service.acquire(plan)
            result = await fleet.call_tool(acquired.spec.public_name(case.tool), case.arguments)
            elapsed = time.monotonic() - started
            if result.get("isError"):
                raise RuntimeError(f"{case.server}: {case.tool} answered an error: {result}")
            s4.set_capacity({category: 1 << 62})
            steps = {k: round(v, 3) for k, v in acquired.timings_s.items()}
            steps["first_call"] = round(elapsed - acquired.timings_s["total"], 3)
            return elapsed, steps, event.reading.gap, s4.reading().gap, acquired.launch.detail


async def _by_hand(case: Case, catalog: Catalog, caches: dict[str, str]) -> float:
    """``uvx``/``npx`` of the same pinned package added to a fleet -> first successful call."""
    entry = catalog.get(case.server)
    assert entry is not None and entry.launch is not None
    beside = Path(sys.executable).parent / entry.launch.command
    command = str(beside) if beside.exists() else shutil.which(entry.launch.command)
    if command is None:
        raise RuntimeError(f"{entry.launch.command} is not installed")
    spec = ServerSpec(
        name="byhand",
        command=command,
        args=list(entry.launch.args),
        env=_shell_env() | caches,
        start_timeout_s=RUN_TIMEOUT_S,
    )
    async with Fleet() as fleet:
        started = time.monotonic()
        await fleet.add(spec)
        await fleet.wait_ready("byhand")
        result = await fleet.call_tool(spec.public_name(case.tool), case.arguments)
        elapsed = time.monotonic() - started
    if result.get("isError"):
        raise RuntimeError(f"by hand: {case.tool} answered an error: {result}")
    return elapsed


async def measure(cases: Sequence[Case] = CASES) -> list[Measurement]:
    """Cold then warm, for every case."""
    catalog = load_shipped_catalog()
    out: list[Measurement] = []
    for case in cases:
        entry = catalog.get(case.server)
        assert entry is not None
        ref = f"{case.registry}:{entry.packages[0].identifier}@{entry.packages[0].version}"
        with tempfile.TemporaryDirectory(prefix="vsm-bench-cache-") as tmp:
            vsm_caches, hand_caches = _caches(Path(tmp) / "vsm"), _caches(Path(tmp) / "hand")
            for cache in ("cold", "warm"):
                with anyio.fail_after(RUN_TIMEOUT_S):
                    vsm_s, steps, before, after, sandbox = await _vsm(case, catalog, vsm_caches)
                with anyio.fail_after(RUN_TIMEOUT_S):
                    hand_s = await _by_hand(case, catalog, hand_caches)
                out.append(
                    Measurement(
                        ref,
                        cache,
                        round(vsm_s, 3),
                        round(hand_s, 3),
                        round(vsm_s / hand_s, 3),
                        steps,
                        before,
                        after,
                        sandbox,
                    )
                )
    return out


def run(registries: Sequence[str] = ("pypi", "npm")) -> list[dict[str, Any]]:
    """Measure the cases of ``registries`` (npm only when npm is installed); JSON-ready rows."""
    cases = [c for c in CASES if c.registry in registries and (c.registry != "npm" or shutil.which("npm"))]
    return [asdict(m) for m in anyio.run(measure, cases)]
