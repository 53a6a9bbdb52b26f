"""Learned outcomes: which server served which demand category well.

Each (server, category) pair counts successes ``s`` and failures ``f``. With a
Beta(``alpha``, ``beta``) prior the posterior mean is
``m = (s + alpha) / (s + f + alpha + beta)``, and the ranking boost is
``(m - m0) / max(m0, 1 - m0)`` with ``m0 = alpha / (alpha + beta)``: 0 with no
evidence, toward +1 after many successes, toward -1 after many failures, so
one lucky call moves a server only a little.

Invariants:
- boosts lie in [-1, 1] and are 0 for pairs never seen;
- `save` then `load` through any `KeyValue` gives the same counts;
- a malformed persisted record is ignored entry by entry, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vsm_mcp.core.ports import JsonValue, KeyValue

LEDGER_KEY = "discovery:outcome-ledger"
#: Categories of this prefix are one tool's own record (``tool:<downstream name>``): what routing
#: between tools that answer the same need learns from, beside the demand categories.
TOOL_KEY_PREFIX = "tool:"
PRIOR_ALPHA = 2.0  # a weak prior: two imagined successes ...
PRIOR_BETA = 2.0  # ... and two imagined failures per pair


def tool_key(tool: str) -> str:
    """The ledger category of one tool's own record."""
    return f"{TOOL_KEY_PREFIX}{tool}"


@dataclass(slots=True)
class Tally:
    successes: int = 0
    failures: int = 0


@dataclass(slots=True)
class OutcomeLedger:
    """Successes and failures per (server, demand category), with a Beta prior."""

    alpha: float = PRIOR_ALPHA
    beta: float = PRIOR_BETA
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)

    def record(self, server: str, category: str, success: bool) -> None:
        tally = self.tallies.get((server, category))
        if tally is None:  # (not setdefault: that builds a Tally on every call of the hot path)
            tally = self.tallies[(server, category)] = Tally()
        if success:
            tally.successes += 1
        else:
            tally.failures += 1

    def posterior_mean(self, server: str, category: str) -> float:
        tally = self.tallies.get((server, category), Tally())
        return (tally.successes + self.alpha) / (tally.successes + tally.failures + self.alpha + self.beta)

    def boost(self, server: str, category: str) -> float:
        """Ranking boost in [-1, 1] (see module docstring)."""
        if (server, category) not in self.tallies:
            return 0.0
        prior = self.alpha / (self.alpha + self.beta)
        return (self.posterior_mean(server, category) - prior) / max(prior, 1.0 - prior)

    def to_json(self) -> JsonValue:
        return [[s, c, t.successes, t.failures] for (s, c), t in sorted(self.tallies.items())]

    async def save(self, store: KeyValue) -> None:
        await store.kv_put(LEDGER_KEY, self.to_json())

    @classmethod
    async def load(
        cls, store: KeyValue, alpha: float = PRIOR_ALPHA, beta: float = PRIOR_BETA
    ) -> OutcomeLedger:
        ledger = cls(alpha, beta)
        raw = await store.kv_get(LEDGER_KEY)
        if not isinstance(raw, list):
            return ledger
        for item in raw:
            if (
                isinstance(item, list)
                and len(item) == 4
                and isinstance(item[0], str)
                and isinstance(item[1], str)
                and isinstance(item[2], int)
                and isinstance(item[3], int)
                and item[2] >= 0
                and item[3] >= 0
            ):
                ledger.tallies[(item[0], item[1])] = Tally(item[2], item[3])
        return ledger
