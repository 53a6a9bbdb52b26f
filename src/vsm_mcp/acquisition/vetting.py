"""S5 vetting of one candidate package: pure policy, no I/O.

`vet` looks at a `Candidate` (what the ranking proposes), the registry's
`ReleaseMetadata` of exactly that version (``None`` when the package does
not exist) and the names of well-known packages (the shipped catalog), and
returns a `Verdict`: ``approve``, ``ask`` (a person decides) or ``refuse``,
with the rule that decided and a rationale a person can read.

Rules, in the order they are applied (the first that refuses decides):

1. the registry type is allowed (``npm``, ``pypi`` by default);
2. the package is not on the deny-list;
3. the version is exact (``1.2.3``, ``2026.10.19``): no range, tag or wildcard;
4. typosquat: a name that is not itself well known but lies within
   ``typosquat_distance`` (Damerau-Levenshtein, case-insensitive, scope
   ignored) of a well-known name is refused (or asked, by policy);
5. the package exists, the version exists and is not yanked, and the release
   is not deprecated;
6. a licence is recorded (else ask, by policy).

A candidate that passes every rule is approved when ``auto_approve`` is set
and it comes from the catalog (or ``auto_approve_unlisted``), else asked.
Invariants: `vet` is deterministic and total; ``refuse`` is never turned
into ``approve`` by an operator (only ``ask`` is).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Outcome(enum.StrEnum):
    """What S5 does with a candidate."""

    APPROVE = "approve"
    ASK = "ask"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One package proposed to answer a demand, with why it was ranked there."""

    server: str  # catalog entry name (or the identifier for an explicit package)
    registry_type: str
    identifier: str
    version: str
    score: float = 0.0
    reasons: tuple[str, ...] = ()
    in_catalog: bool = False

    @property
    def ref(self) -> str:
        """``registry:identifier@version``, the way the CLI spells a package."""
        return f"{self.registry_type}:{self.identifier}@{self.version}"


@dataclass(frozen=True, slots=True)
class ReleaseMetadata:
    """What the registry says about one exact release."""

    registry_type: str
    identifier: str
    version: str
    version_exists: bool
    deprecated: bool = False
    yanked: bool = False
    license: str | None = None
    install_scripts: tuple[str, ...] = ()  # npm lifecycle scripts that run at install
    versions_known: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """S5's vetting result: the outcome, the deciding rule and why."""

    outcome: Outcome
    rule: str
    rationale: str
    notes: tuple[str, ...] = field(default=())


class VettingPolicy(BaseModel):
    """The configurable rules of `vet` (S5 policy for acquisitions)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_registries: frozenset[str] = frozenset({"npm", "pypi"})
    deny: frozenset[str] = frozenset()
    typosquat_distance: int = Field(2, ge=0)
    typosquat_action: Literal["refuse", "ask"] = "refuse"
    missing_license_action: Literal["ask", "refuse", "allow"] = "ask"
    allow_deprecated: bool = False
    auto_approve: bool = False
    auto_approve_unlisted: bool = False
    npm_ignore_scripts: bool = True
    max_units: int = Field(20, ge=0)
    max_installs_per_hour: int = Field(10, ge=0)


# An exact version: digits and dots, optionally a pre-release/local/build suffix, never a range.
_EXACT_VERSION = re.compile(r"^v?\d+(\.\d+)*([.+-]?[A-Za-z0-9]+([.+-][A-Za-z0-9]+)*)?$")
_RANGE_CHARS = set("^~*<>=| ,")


def is_exact_version(version: str) -> bool:
    """True for a pinned version such as ``1.2.3`` or ``2026.10.19``; false for ranges and tags."""
    if not version or _RANGE_CHARS & set(version) or version.lower() in {"latest", "next", "x"}:
        return False
    return bool(_EXACT_VERSION.match(version)) and not re.search(r"(^|\.)[xX](\.|$)", version)


def damerau_levenshtein(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment)."""
    if a == b:
        return 0
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(row[j - 1] + 1, rows[i - 1][j] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _bare(name: str) -> str:
    return name.lower().rsplit("/", 1)[-1].replace("_", "-")


def typosquat_of(identifier: str, known_names: Collection[str], max_distance: int) -> str | None:
    """The well-known name ``identifier`` imitates, or None (also None when it is well known itself)."""
    if max_distance <= 0 or identifier in known_names:
        return None
    lowered = {n.lower() for n in known_names}
    if identifier.lower() in lowered:
        return None
    bare = _bare(identifier)
    best: tuple[int, str] | None = None
    for name in sorted(known_names):
        other = _bare(name)
        if abs(len(other) - len(bare)) > max_distance:
            continue
        distance = damerau_levenshtein(bare, other)
        if 0 < distance <= max_distance and (best is None or distance < best[0]):
            best = (distance, name)
        elif distance == 0 and name.lower() != identifier.lower():
            best = (0, name)  # same bare name under another scope: imitation of a known package
    return None if best is None else best[1]


def vet(
    candidate: Candidate,
    metadata: ReleaseMetadata | None,
    known_names: Collection[str],
    policy: VettingPolicy,
) -> Verdict:
    """Judge ``candidate``; see the module docstring for the rules and their order."""
    c = candidate
    if c.registry_type not in policy.allowed_registries:
        allowed = ", ".join(sorted(policy.allowed_registries)) or "none"
        return Verdict(
            Outcome.REFUSE,
            "registry_type",
            f"registry type {c.registry_type!r} is not allowed (allowed: {allowed})",
        )
    if c.identifier in policy.deny or c.server in policy.deny:
        return Verdict(Outcome.REFUSE, "deny_list", f"{c.identifier} is on the deny-list")
    if not is_exact_version(c.version):
        return Verdict(
            Outcome.REFUSE, "exact_version", f"version {c.version!r} is not an exact pin (no ranges or tags)"
        )
    imitated = typosquat_of(c.identifier, known_names, policy.typosquat_distance)
    if imitated is not None:
        distance = damerau_levenshtein(_bare(c.identifier), _bare(imitated))
        return Verdict(
            Outcome(policy.typosquat_action),
            "typosquat",
            f"{c.identifier!r} is {distance} edit(s) from the well-known {imitated!r}: possible typosquat",
        )
    if metadata is None:
        return Verdict(Outcome.REFUSE, "exists", f"{c.registry_type} package {c.identifier!r} does not exist")
    if not metadata.version_exists:
        return Verdict(
            Outcome.REFUSE,
            "version_exists",
            f"{c.identifier} has no version {c.version} on {c.registry_type}"
            + (f" ({metadata.versions_known} versions published)" if metadata.versions_known else ""),
        )
    if metadata.yanked:
        return Verdict(Outcome.REFUSE, "not_yanked", f"{c.identifier}=={c.version} was yanked")
    if metadata.deprecated and not policy.allow_deprecated:
        return Verdict(Outcome.REFUSE, "not_deprecated", f"{c.identifier}@{c.version} is deprecated")
    notes: list[str] = []
    if metadata.install_scripts:
        scripts = ", ".join(metadata.install_scripts)
        notes.append(
            f"install scripts ({scripts}) are {'disabled' if policy.npm_ignore_scripts else 'ENABLED'}"
        )
    if not metadata.license:
        if policy.missing_license_action == "refuse":
            return Verdict(Outcome.REFUSE, "license", f"{c.identifier} records no licence", tuple(notes))
        if policy.missing_license_action == "ask":
            return Verdict(
                Outcome.ASK, "license", f"{c.identifier} records no licence: a person decides", tuple(notes)
            )
        notes.append("no licence recorded")
    else:
        notes.append(f"licence {metadata.license}")
    listed = "listed in the catalog" if c.in_catalog else "not in the catalog"
    if policy.auto_approve and (c.in_catalog or policy.auto_approve_unlisted):
        return Verdict(
            Outcome.APPROVE, "auto_approve", f"every check passed; {listed}; auto-approve is on", tuple(notes)
        )
    why = "auto-approve is off" if not policy.auto_approve else "auto-approve covers catalog packages only"
    return Verdict(
        Outcome.ASK, "operator", f"every check passed; {listed}; {why}: a person decides", tuple(notes)
    )
