"""The calling client's model as an optional reranker of capability candidates.

When the MCP client that called ``vsm_find_capability`` (or
``vsm_acquire_capability`` without a server or package) declared the sampling
capability, one short ``sampling/createMessage`` request shows its model the
need and the top candidates (name, a one-line description, the best tools) and
asks for the number of the one that fits best. The chosen candidate moves to
first place; the others keep their offline order.

Invariants:

* at most one request per tool call, over at most `MAX_CANDIDATES` candidates,
  every part of the prompt truncated (the whole stays under
  `PROMPT_MAX_CHARS`), with a small token budget and a deadline;
* the answer is read strictly: a candidate's number in range or its exact name
  (surrounding whitespace and one final period aside); anything else changes
  nothing;
* the order is never changed silently: every `Ranking` says what produced it
  (``client-sampling`` with the model the client named, or ``offline`` with
  the reason the client's model was not used);
* a client's failure (no sampling capability, an error, a refusal, the
  deadline, an answer naming no candidate) is a reason, never an exception:
  the offline order stands.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import anyio

from vsm_mcp.acquisition.vetting import Candidate

#: The most candidates shown to the client's model: enough to correct the offline top few, short
#: enough that the prompt stays small and the answer a single digit.
MAX_CANDIDATES = 5
#: A sampling request is answered by a model, maybe after a person approves it in the client:
#: long enough for both, short enough that a tool call never hangs on it.
DEADLINE_S = 20.0
#: The answer is one number or one name.
MAX_TOKENS = 64

_QUERY_CHARS = 300
_NAME_CHARS = 60
_DESCRIPTION_CHARS = 160
_TOOL_CHARS = 40
_TOOLS = 3
#: An upper bound of the user message: the query, the fixed text and `MAX_CANDIDATES` full lines.
PROMPT_MAX_CHARS = 2400

SYSTEM_PROMPT = (
    "You choose which MCP server best fits a user's need, from a numbered list of candidates. "
    "Answer with the number of the best candidate only, nothing else."
)

CLIENT_SAMPLING: Final = "client-sampling"
OFFLINE: Final = "offline"


@dataclass(frozen=True, slots=True)
class RerankPolicy:
    """Whether and how to ask the client's model (``[acquisition] rerank_*`` settings)."""

    enabled: bool = True
    max_candidates: int = MAX_CANDIDATES
    deadline_s: float = DEADLINE_S
    max_tokens: int = MAX_TOKENS


@dataclass(frozen=True, slots=True)
class Reply:
    """What the client's model answered (``text``, by ``model``), or why there is no answer (``failure``)."""

    text: str = ""
    model: str = ""
    failure: str = ""


#: Ask the client's model once: system prompt, user message, token budget.
Sample = Callable[[str, str, int], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class ClientModel:
    """How to ask the calling client's model; ``sample`` None: it cannot be asked, ``why_not`` says why."""

    sample: Sample | None
    why_not: str = ""


@dataclass(frozen=True, slots=True)
class Summary:
    """What the client's model is shown of one candidate."""

    name: str
    description: str = ""
    tools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ranking:
    """Candidates in the order to use, and what produced that order."""

    candidates: tuple[Candidate, ...]
    by: Literal["client-sampling", "offline"] = OFFLINE
    model: str = ""
    #: The chosen candidate's place in the offline order (1-based), when the client's model chose.
    chosen: int | None = None
    reason: str = ""

    def json(self) -> dict[str, Any]:
        """The ranking's provenance as a capability tool reports it."""
        detail: dict[str, Any] = {"reason": self.reason}
        if self.by == CLIENT_SAMPLING:
            detail = {"model": self.model, "chosen": self.chosen, **detail}
        return {"reranked_by": self.by, "rerank": detail}


def _clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def build_prompt(query: str, summaries: Sequence[Summary]) -> str:
    """The user message: the need and the numbered candidates, every part truncated."""
    shown = summaries[:MAX_CANDIDATES]
    lines = [f"Need: {_clip(query, _QUERY_CHARS)}", "", "Candidates:"]
    for number, summary in enumerate(shown, start=1):
        line = f"{number}. {_clip(summary.name, _NAME_CHARS)}"
        if summary.description:
            line += f": {_clip(summary.description, _DESCRIPTION_CHARS)}"
        if summary.tools:
            line += " (tools: " + ", ".join(_clip(t, _TOOL_CHARS) for t in summary.tools[:_TOOLS]) + ")"
        lines.append(line)
    lines += ["", f"Which candidate fits the need best? Answer with its number (1-{len(shown)}) only."]
    return "\n".join(lines)


_NUMBER = re.compile(r"\d{1,2}")


def parse_choice(text: str, names: Sequence[str]) -> int | None:
    """The 0-based index the answer names: a number from 1 to ``len(names)`` or one exact name."""
    answer = text.strip()
    answer = answer[:-1].rstrip() if answer.endswith(".") else answer
    if _NUMBER.fullmatch(answer):
        number = int(answer)
        return number - 1 if 1 <= number <= len(names) else None
    matches = [i for i, name in enumerate(names) if name == answer]
    return matches[0] if len(matches) == 1 else None


def _offline(candidates: Sequence[Candidate], reason: str) -> Ranking:
    return Ranking(tuple(candidates), OFFLINE, reason=reason)


async def rerank(
    query: str,
    candidates: Sequence[Candidate],
    model: ClientModel | None,
    policy: RerankPolicy,
    summarize: Callable[[Candidate], Summary],
) -> Ranking:
    """``candidates`` with the one the client's model chose among the top few first, or as they are.

    ``model`` None: no client is calling (the CLI, the autonomous loop). Never raises for the
    client's failures; the returned `Ranking` says what happened.
    """
    if not policy.enabled:
        return _offline(
            candidates, "reranking by the client's model is off ([acquisition] rerank_with_client)"
        )
    if model is None:
        return _offline(candidates, "no MCP client is calling")
    if model.sample is None:
        return _offline(candidates, model.why_not or "the client's model cannot be asked")
    top = list(candidates[: min(policy.max_candidates, MAX_CANDIDATES)])
    if len(top) < 2:
        return _offline(candidates, "fewer than two candidates: nothing to choose")
    summaries = [summarize(c) for c in top]
    prompt = build_prompt(query, summaries)
    reply: Reply | None = None
    with anyio.move_on_after(policy.deadline_s):
        reply = await model.sample(SYSTEM_PROMPT, prompt, policy.max_tokens)
    if reply is None:
        return _offline(candidates, f"the client's model did not answer within {policy.deadline_s:g} s")
    if reply.failure:
        return _offline(candidates, reply.failure)
    index = parse_choice(reply.text, [s.name for s in summaries])
    if index is None:
        return _offline(
            candidates,
            f"the client's model ({reply.model or 'unnamed'}) answered {_clip(reply.text, 40)!r}, "
            f"not a candidate's number from 1 to {len(top)} or its exact name",
        )
    chosen = candidates[index]
    noted = dataclasses.replace(
        chosen,
        reasons=(
            *chosen.reasons,
            f"chosen by the client's model ({reply.model or 'unnamed'}) among the top {len(top)}, "
            f"offline rank {index + 1}",
        ),
    )
    rest = [c for i, c in enumerate(candidates) if i != index]
    return Ranking(
        (noted, *rest),
        CLIENT_SAMPLING,
        model=reply.model,
        chosen=index + 1,
        reason=f"the client's model chose candidate {index + 1} of {len(top)}",
    )
