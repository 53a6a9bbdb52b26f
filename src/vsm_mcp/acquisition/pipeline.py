"""The acquisition pipeline: S5 vets and decides, then install -> verify -> integrate, or roll back.

`Acquirer.acquire` takes ranked candidates for one demand category and
acquires the first one. Steps, each recorded:

1. **budget** (S5): at most ``max_units`` servers in the fleet and
   ``max_installs_per_hour`` installs, counted from stored decisions;
2. **vet** (S5): exact-release metadata from the registry, then `vet`; the
   verdict is stored as a `Decision` with its inputs (query, category,
   candidate, metadata), the alternatives with their scores, the rule and
   the rationale; ``ask`` goes to the `Approver` and its answer is stored too;
3. **install** into ``<state>/servers/<unit>`` (`Installer`);
4. **sandbox**: the spec to store (the install's plain command plus a sandbox
   section, no environment values) and its launch plan on this host
   (`Launcher`), then **verify** exactly that plan: handshake, non-empty
   ``tools/list``, ping;
5. **integrate**: the launch pin and the verified tools as the definition pin
   (`vsm_mcp.fleet.definitions`) stored before any fleet starts the server,
   into the running `Fleet` (when given; its listing must match what was
   verified), persisted in the fleet registry (a running gateway picks it
   up), capabilities stored in the demand ``category``.

Invariants: a failure at any step undoes every earlier step in reverse order
(the unit removed from the fleet and its process group killed, the registry
entry, capabilities and both pins deleted, the prefix deleted), a ``rolled_back``
decision names the step and the reason, and `AcquisitionError` is raised.
A refusal (budget, vetting, operator) installs nothing and raises
`AcquisitionRefusedError`. Every outcome is a stored decision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from vsm_mcp.acquisition.installer import Installation, Installer
from vsm_mcp.acquisition.launch import Launch, Launcher, SandboxLauncher
from vsm_mcp.acquisition.verify import Verification, verify
from vsm_mcp.acquisition.vetting import Candidate, Outcome, ReleaseMetadata, Verdict, VettingPolicy, vet
from vsm_mcp.core.messages import Capability, Decision
from vsm_mcp.core.ports import Store
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.errors import AcquisitionError, AcquisitionRefusedError, ConfigError, UnknownUnitError, VsmError
from vsm_mcp.fleet import definitions
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.pins import forget as forget_pin
from vsm_mcp.fleet.pins import trust as trust_pin
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.sandbox import LaunchPlan

#: Stored installs: ``{unit: {ref, prefix, category, query, installed_at}}``.
INSTALLED_KEY = "acquisition.installed"
#: A unit added to a running fleet must be ready within this (it was just verified to start).
INTEGRATE_TIMEOUT_S = 60.0
#: Decisions read back when counting installs of the last hour.
BUDGET_LOOKBACK = 1000
SUBJECT_PREFIX = "acquire:"
#: Calls of a server for a category before S5's learnt trust in it counts (`Acquirer._trusted`).
TRUST_EVIDENCE = 10
#: Below this posterior success, S5 does not approve the server for that category by itself.
TRUST_FLOOR = 0.5

MetadataFetch = Callable[[str, str, str], Awaitable[ReleaseMetadata | None]]
#: Told as each step starts (``seconds`` None) and ends (its duration): budget, vet, install, sandbox,
#: verify, integrate. What ``vsm-mcp acquire`` and ``approvals approve`` show as they go.
StepProgress = Callable[[str, float | None], None]
Verifier = Callable[[ServerSpec, LaunchPlan], Awaitable[Verification]]


@dataclass(frozen=True, slots=True)
class AcquisitionPlan:
    """What S5 is asked to approve: one package, as which unit, for which demand."""

    candidate: Candidate
    unit: str
    prefix: Path
    query: str
    category: str
    alternatives: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class Acquired:
    """A server acquired and integrated, with what it took."""

    plan: AcquisitionPlan
    spec: ServerSpec
    installation: Installation
    verification: Verification
    launch: Launch
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """A person's answer to S5's question, with who gave it and the question as they saw it.

    ``approved`` is None when nobody could be asked; ``why_not`` then says why, when known.
    """

    approved: bool | None
    by: str = "operator"
    shown: str = ""
    why_not: str = ""


class Approver(Protocol):
    """A person's answer when vetting says ``ask``: True, False, or None (nobody can be asked).

    An `Answer` says the same and who answered; a bare bool or None is the operator's.
    """

    async def approve(self, plan: AcquisitionPlan, verdict: Verdict) -> bool | Answer | None: ...


@dataclass(frozen=True, slots=True)
class FixedAnswer:
    """An `Approver` with a standing answer: ``True`` for ``--yes``, ``None`` when nobody can be asked."""

    answer: bool | None
    by: str = "operator"

    async def approve(self, plan: AcquisitionPlan, verdict: Verdict) -> Answer:
        return Answer(self.answer, self.by)


def _silent(step: str, seconds: float | None) -> None:
    """No one is told (`StepProgress`)."""


def unit_name(identifier: str, taken: Collection[str]) -> str:
    """A short unit name for a package: scope and ``mcp``/``server`` affixes dropped, unique in ``taken``."""
    bare = identifier.rsplit("/", 1)[-1].lower()
    core = re.sub(
        r"^(mcp[-_]server[-_]|server[-_]|mcp[-_])|([-_]mcp[-_]server|[-_]mcp|[-_]server)$", "", bare
    )
    core = re.sub(r"[^a-z0-9_-]+", "-", core).strip("-_")[:40] or re.sub(r"[^a-z0-9]+", "-", bare)[:40]
    name, n = core, 1
    while name in taken:
        n += 1
        name = f"{core}-{n}"
    return name


def _candidate_json(c: Candidate) -> dict[str, Any]:
    return {
        "server": c.server,
        "package": c.ref,
        "score": c.score,
        "reasons": list(c.reasons),
        "in_catalog": c.in_catalog,
    }


class Acquirer:
    """Runs acquisitions against one state directory, store and fleet registry."""

    def __init__(
        self,
        *,
        store: Store,
        registry: FleetRegistry,
        installer: Installer,
        metadata: MetadataFetch,
        known_names: Collection[str],
        state_dir: Path,
        policy: VettingPolicy | None = None,
        approver: Approver | None = None,
        fleet: Fleet | None = None,
        launcher: Launcher | None = None,
        verifier: Verifier = verify,
        wall_clock: Callable[[], float] = time.time,
        outcomes: OutcomeLedger | None = None,
    ) -> None:
        #: The outcome ledger: each acquisition records the success it predicts from it (`prediction`).
        self.outcomes = outcomes
        self.store = store
        self.registry = registry
        self.installer = installer
        self.metadata = metadata
        self.known_names = frozenset(known_names)
        self.servers_dir = state_dir / "servers"
        self.policy = policy or VettingPolicy()
        self.approver = approver or FixedAnswer(None)
        self.fleet = fleet
        self.launcher = launcher or SandboxLauncher(state_dir)
        self.verifier = verifier
        self._wall_clock = wall_clock

    # -- planning ------------------------------------------------------------
    async def plan(self, candidates: Sequence[Candidate], *, query: str, category: str) -> AcquisitionPlan:
        """The plan for the first candidate: its unit name and prefix.

        Raises:
            AcquisitionRefusedError: there is no candidate.
        """
        if not candidates:
            raise AcquisitionRefusedError("no_candidate", f"no installable catalog server matches {query!r}")
        taken = set(await self.registry.desired())
        if self.fleet is not None:
            taken |= set(self.fleet.units)
        first = candidates[0]
        name = unit_name(first.identifier, taken)
        return AcquisitionPlan(first, name, self.servers_dir / name, query, category, tuple(candidates[1:]))

    async def installed_unit(self, candidate: Candidate) -> str | None:
        """The unit that already provides ``candidate``: one acquired as exactly this package and
        version, or one configured to launch the package itself (``uvx mcp-server-time``,
        ``npx -y @scope/server``, ``python -m mcp_server_time``), whatever version it runs."""
        installed = await self.store.kv_get(INSTALLED_KEY)
        desired = await self.registry.desired()
        if isinstance(installed, dict):
            for unit, record in installed.items():
                if isinstance(record, dict) and record.get("ref") == candidate.ref and unit in desired:
                    return str(unit)
        return next((name for name, spec in desired.items() if launches(spec, candidate)), None)

    # -- the pipeline ----------------------------------------------------------
    async def acquire(
        self,
        plan: AcquisitionPlan,
        *,
        auto_approve: bool | None = None,
        progress: StepProgress | None = None,
        approver: Approver | None = None,
    ) -> Acquired:
        """Vet, install, verify and integrate ``plan``; see the module docstring.

        ``auto_approve`` overrides the policy's rule for this acquisition (S5's rule in the loop);
        ``approver`` this acquirer's approver; ``progress`` hears each step start and end.

        Raises:
            AcquisitionRefusedError: S5 refused (budget, vetting, operator); nothing was installed.
            AcquisitionError: a later step failed; everything was rolled back.
        """
        timings: dict[str, float] = {}
        started = time.monotonic()
        policy = (
            self.policy
            if auto_approve is None
            else self.policy.model_copy(update={"auto_approve": auto_approve})
        )
        tell = progress or _silent
        step = "budget"
        t = time.monotonic()

        def begin(name: str) -> None:
            nonlocal step, t
            if name != step:
                tell(step, time.monotonic() - t)
            step, t = name, time.monotonic()
            tell(name, None)

        tell(step, None)
        await self._check_budget(plan, policy)
        begin("vet")
        verdict, metadata = await self._vet(plan, policy, approver or self.approver)
        timings["vet"] = time.monotonic() - started
        undo: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        try:
            begin("install")
            undo.append(("files", lambda: self.installer.remove(plan.prefix)))
            installation = await self.installer.install(plan.candidate, plan.prefix)
            timings["install"] = time.monotonic() - t
            begin("sandbox")
            launch = self.launcher.launch(plan.unit, installation, plan.category)
            spec = launch.spec
            begin("verify")
            verification = await self.verifier(spec, launch.plan)
            timings["verify"] = time.monotonic() - t
            begin("integrate")
            if launch.plan.pin is not None:
                # What was installed and verified is what every start must run (`vsm_mcp.fleet.pins`).
                undo.append(("launch pin", lambda: forget_pin(self.store, spec.name)))
                await trust_pin(self.store, spec.name, launch.plan.pin)
            # What was verified is what the server may list (`vsm_mcp.fleet.definitions`).
            undo.append(("definition pin", lambda: definitions.forget(self.store, spec.name)))
            verified = definitions.listed(verification.tools)
            await definitions.trust(
                self.store, spec.name, verified, by=definitions.VERIFICATION, now=self._wall_clock()
            )
            await self._integrate(plan, spec, verification, undo)
            timings["integrate"] = time.monotonic() - t
            tell(step, timings["integrate"])
        except (VsmError, OSError) as exc:
            reason = exc.reason if isinstance(exc, AcquisitionError) else f"{type(exc).__name__}: {exc}"
            with anyio.CancelScope(shield=True):
                undone = await self._roll_back(undo)
                await self._decide(plan, "rolled_back", step, f"{reason}; undone: {', '.join(undone)}")
            raise AcquisitionError(step, reason) from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                undone = await self._roll_back(undo)
                await self._decide(plan, "rolled_back", step, f"cancelled; undone: {', '.join(undone)}")
            raise
        timings["total"] = time.monotonic() - started
        await self._decide(
            plan,
            "acquired",
            verdict.rule,
            f"{plan.candidate.ref} runs as unit {plan.unit!r} with {len(verification.tools)} tools "
            f"({', '.join(sorted(verification.pins))}); answers demand {plan.category!r}",
            extra={
                **self.prediction(plan),
                "timings_s": {k: round(v, 4) for k, v in timings.items()},
                "tools": sorted(verification.pins),
                "server": f"{verification.server_name} {verification.server_version}",
                "license": metadata.license if metadata else None,
                "resumed_install": installation.resumed,
                "install_sandbox": installation.sandbox,
                "install_log_tail": installation.log_tail,
                "sandbox": launch.detail,
            },
        )
        return Acquired(plan, spec, installation, verification, launch, timings)

    def _trusted(self, verdict: Verdict, plan: AcquisitionPlan) -> Verdict:
        """S5's trust, learnt: a server that served this demand category badly before (at least
        `TRUST_EVIDENCE` calls, posterior success below `TRUST_FLOOR`) is not approved by itself:
        a person decides, shown the evidence."""
        if verdict.outcome is not Outcome.APPROVE or self.outcomes is None:
            return verdict
        key = (plan.candidate.server, plan.category)
        tally = self.outcomes.tallies.get(key)
        if tally is None or tally.successes + tally.failures < TRUST_EVIDENCE:
            return verdict
        trust = self.outcomes.posterior_mean(*key)
        if trust >= TRUST_FLOOR:
            return verdict
        return Verdict(
            Outcome.ASK,
            "trust",
            f"{verdict.rationale}; but {plan.candidate.server} served {plan.category!r} badly before "
            f"({tally.successes} of {tally.successes + tally.failures} calls succeeded; trust {trust:.2f} "
            f"< {TRUST_FLOOR:g}): a person decides",
            verdict.notes,
        )

    def prediction(self, plan: AcquisitionPlan) -> dict[str, Any]:
        """What this acquisition is expected to do, for reflection to check later: the chance that
        a call of the server for its category succeeds (the outcome ledger's posterior mean), and
        the ledger's tally for that pair now, so the calls after the decision can be told apart."""
        if self.outcomes is None:
            return {}
        key = (plan.candidate.server, plan.category)
        tally = self.outcomes.tallies.get(key)
        return {
            "predicted_success": round(self.outcomes.posterior_mean(*key), 6),
            "outcome_key": list(key),
            "tally_at_decision": [tally.successes, tally.failures] if tally is not None else [0, 0],
        }

    # -- S5 ------------------------------------------------------------------
    async def _check_budget(self, plan: AcquisitionPlan, policy: VettingPolicy) -> None:
        units = len(set(await self.registry.desired()) | (set(self.fleet.units) if self.fleet else set()))
        if units >= policy.max_units:
            await self._refuse(
                plan, "max_units", f"the fleet has {units} servers; the budget is {policy.max_units}"
            )
        since = self._wall_clock() - 3600.0
        recent = [
            d
            for d in await self.store.decisions(BUDGET_LOOKBACK)
            if d.at >= since
            and d.subject.startswith(SUBJECT_PREFIX)
            and d.choice in {"acquired", "rolled_back"}
        ]
        if len(recent) >= policy.max_installs_per_hour:
            await self._refuse(
                plan,
                "max_installs_per_hour",
                f"{len(recent)} installs in the last hour; the budget is {policy.max_installs_per_hour}",
            )

    async def _vet(
        self, plan: AcquisitionPlan, policy: VettingPolicy, approver: Approver
    ) -> tuple[Verdict, ReleaseMetadata | None]:
        c = plan.candidate
        metadata: ReleaseMetadata | None = None
        if c.registry_type in policy.allowed_registries:
            try:
                metadata = await self.metadata(c.registry_type, c.identifier, c.version)
            except VsmError as exc:
                await self._refuse(plan, "metadata", f"registry metadata unavailable: {exc}")
        verdict = self._trusted(vet(c, metadata, self.known_names, policy), plan)
        meta = dataclasses.asdict(metadata) if metadata is not None else None
        await self._decide(
            plan,
            verdict.outcome.value,
            verdict.rule,
            verdict.rationale,
            extra={"metadata": meta, "notes": list(verdict.notes)},
        )
        if verdict.outcome is Outcome.REFUSE:
            raise AcquisitionRefusedError(verdict.rule, verdict.rationale)
        if verdict.outcome is Outcome.ASK:
            given = await approver.approve(plan, verdict)
            answer = given if isinstance(given, Answer) else Answer(given)
            who = {"answered_by": answer.by, "shown": answer.shown}
            if answer.approved is None:
                why = answer.why_not or "non-interactive; pass --yes to accept"
                refusal = f"{verdict.rationale}, but nobody can be asked ({why})"
                await self._decide(plan, "refuse", "operator", refusal, extra=who)
                raise AcquisitionRefusedError("operator", refusal)
            choice = "approve" if answer.approved else "refuse"
            rationale = f"operator {'accepted' if answer.approved else 'declined'}: {verdict.rationale}"
            await self._decide(plan, choice, "operator", rationale, extra=who)
            if not answer.approved:
                raise AcquisitionRefusedError("operator", "the operator declined")
        return verdict, metadata

    async def _refuse(self, plan: AcquisitionPlan, rule: str, rationale: str) -> None:
        await self._decide(plan, "refuse", rule, rationale)
        raise AcquisitionRefusedError(rule, rationale)

    async def _decide(
        self,
        plan: AcquisitionPlan,
        choice: str,
        rule: str,
        rationale: str,
        *,
        extra: dict[str, Any] | None = None,
    ) -> int:
        inputs: dict[str, Any] = {
            "query": plan.query,
            "category": plan.category,
            "unit": plan.unit,
            "candidate": _candidate_json(plan.candidate),
            "policy": self.policy.model_dump(mode="json"),
        }
        inputs.update(extra or {})
        return await self.store.record_decision(
            Decision(
                at=self._wall_clock(),
                system="s5",
                subject=SUBJECT_PREFIX + plan.candidate.ref,
                choice=choice,
                rule=rule,
                rationale=rationale,
                inputs=inputs,
                alternatives=[_candidate_json(a) for a in plan.alternatives],
            )
        )

    # -- integration and rollback ------------------------------------------------
    async def _integrate(
        self,
        plan: AcquisitionPlan,
        spec: ServerSpec,
        verification: Verification,
        undo: list[tuple[str, Callable[[], Awaitable[None]]]],
    ) -> None:
        fleet = self.fleet
        if fleet is not None:
            undo.append(("process", lambda: _remove_unit(fleet, spec.name)))
            await fleet.add(spec)
            try:
                with anyio.fail_after(INTEGRATE_TIMEOUT_S):
                    unit = await fleet.wait_ready(spec.name)
            except TimeoutError:
                raise AcquisitionError(
                    "integrate", f"unit {spec.name!r} not ready within {INTEGRATE_TIMEOUT_S:g}s"
                ) from None
            changes = definitions.compare(
                definitions.listed(verification.tools), definitions.listed(unit.catalog.tools)
            )
            if changes:
                raise AcquisitionError(
                    "integrate",
                    "tool definitions changed since verification: "
                    + "; ".join(c.describe() for c in changes),
                )
        undo.append(("registration", lambda: _unregister(self.registry, spec.name)))
        await self.registry.add(spec)
        undo.append(("capabilities", lambda: self.store.put_capabilities(spec.name, [])))
        await self.store.put_capabilities(
            spec.name,
            [
                Capability(
                    spec.name, str(t.get("name")), plan.category, str(t.get("description") or "")[:500]
                )
                for t in verification.tools
            ],
        )
        undo.append(("install record", lambda: self._forget(spec.name)))
        await self._remember(
            INSTALLED_KEY,
            spec.name,
            {
                "ref": plan.candidate.ref,
                "server": plan.candidate.server,
                "prefix": str(plan.prefix),
                "category": plan.category,
                "query": plan.query,
                "installed_at": self._wall_clock(),
            },
        )

    async def _remember(self, key: str, unit: str, value: dict[str, Any]) -> None:
        current = await self.store.kv_get(key)
        data = dict(current) if isinstance(current, dict) else {}
        data[unit] = value
        await self.store.kv_put(key, data)

    async def _forget(self, unit: str) -> None:
        current = await self.store.kv_get(INSTALLED_KEY)
        if isinstance(current, dict) and unit in current:
            await self.store.kv_put(INSTALLED_KEY, {k: v for k, v in current.items() if k != unit})

    async def _roll_back(self, undo: list[tuple[str, Callable[[], Awaitable[None]]]]) -> list[str]:
        done: list[str] = []
        for what, action in reversed(undo):
            try:
                await action()
            except (VsmError, OSError) as exc:  # keep undoing the rest; say what could not be undone
                done.append(f"{what} FAILED ({exc})")
            else:
                done.append(what)
        return done


async def _remove_unit(fleet: Fleet, name: str) -> None:
    if name in fleet.units:
        await fleet.remove(name)


async def _unregister(registry: FleetRegistry, name: str) -> None:
    with contextlib.suppress(UnknownUnitError, ConfigError):
        await registry.remove(name)


#: Launchers that fetch and run a registry package named on their command line.
_PACKAGE_LAUNCHERS = {"pypi": ("uvx", "pipx", "uv"), "npm": ("npx", "pnpx", "bunx")}


def launches(spec: ServerSpec, candidate: Candidate) -> bool:
    """Whether ``spec`` runs ``candidate``'s package through a launcher (module `installed_unit`)."""
    if spec.command is None:
        return False
    words = [spec.command, *spec.args]
    launcher = Path(spec.command).name
    wanted = candidate.identifier.lower()
    if launcher in _PACKAGE_LAUNCHERS.get(candidate.registry_type, ()):
        rest = words[1:]
        if "--from" in rest[:-1]:  # uvx --from PACKAGE COMMAND: the package is named there
            rest = [rest[rest.index("--from") + 1]]
        for word in rest:
            if word.startswith("-") or word in ("run", "tool"):
                continue
            name = word.lower()
            if candidate.registry_type == "pypi":
                name = re.split(r"[=<>!~\[@]", name, maxsplit=1)[0]
            else:
                name = name.rsplit("@", 1)[0] if name.count("@") > name.startswith("@") else name
            return name == wanted
        return False
    if candidate.registry_type == "pypi" and "-m" in spec.args:
        module = spec.args[spec.args.index("-m") + 1] if spec.args.index("-m") + 1 < len(spec.args) else ""
        return module.lower() == re.sub(r"[-.]", "_", wanted)
    return False
