"""Variety operators (Beer's attenuators and amplifiers), with computed effect.

An operator maps a `DemandProfile` to the profile as it would be with the
operator in place; `effect` measures the gap before and after with the same
from-scratch definition (`DemandProfile.reading`), so a claimed benefit is
always computed, never asserted.

The amplifier the system runs is acquisition: S4 prices each proposal with
`AddCapability` for every unmatched category (`AcquisitionProposal.expected_gaps`)
and S5 records that expected gap with its decision, beside the gap it acts on.
The attenuators the system runs act before demand is counted and have no
operator here: a profile keeps a client's demand to its own tools, and tool
search folds many phrasings into the category of the tool that answers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vsm_mcp.core.variety import UNLIMITED, DemandProfile, VarietyReading


class VarietyOperator(Protocol):
    """Something that changes demand or capability variety."""

    @property
    def name(self) -> str:
        """Short label for logs and decisions."""
        ...

    def apply(self, profile: DemandProfile) -> DemandProfile:
        """Return the profile as it would be with this operator in place."""
        ...


@dataclass(frozen=True, slots=True)
class OperatorEffect:
    """Gap before and after one operator; negative ``delta_gap`` is better."""

    operator: str
    before: VarietyReading
    after: VarietyReading

    @property
    def delta_gap(self) -> float:
        """Change of the gap the operator causes."""
        return self.after.gap - self.before.gap


def effect(operator: VarietyOperator, profile: DemandProfile) -> OperatorEffect:
    """Measure what ``operator`` does to the gap of ``profile``."""
    return OperatorEffect(operator.name, profile.reading(), operator.apply(profile).reading())


# -- amplifiers ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddCapability:
    """A new unit answers ``category`` (unlimited capacity unless given)."""

    category: str
    capacity: int = UNLIMITED

    @property
    def name(self) -> str:
        return f"add_capability({self.category})"

    def apply(self, profile: DemandProfile) -> DemandProfile:
        capacity = dict(profile.capacity)
        capacity[self.category] = max(capacity.get(self.category, 0), 0) + self.capacity
        capacity[self.category] = min(capacity[self.category], UNLIMITED)
        return DemandProfile(counts=dict(profile.counts), capacity=capacity)
