"""Implicit aspects of a task: needs the wording implies but does not name.

An agent asked to "write the summary into ~/out/notes.txt" needs a filesystem
tool although the request never says "file"; "book a table for next Friday"
needs the current date; "compute the monthly payment" needs arithmetic. Each detector is a
structural cue of the text (a path, a relative-time expression, an
arithmetic verb) and adds the generic terms of that capability to the query.

Invariants:
- detectors read only the query text; they are structural or general-language
  cues (a path, a relative-time expression, an arithmetic verb), never a
  server's niche or a task's words, and deterministic;
- each aspect adds its terms once, at ``ASPECT_WEIGHT``, never more than a
  word the user wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vsm_mcp.discovery.text import analyze

ASPECT_WEIGHT = 0.8  # an implied need is nearly as important as a stated one


@dataclass(frozen=True, slots=True)
class Aspect:
    """A capability a query implies, the cue that found it and the terms it adds."""

    name: str
    pattern: re.Pattern[str]
    text: str

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(analyze(self.text))


_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
ASPECTS: tuple[Aspect, ...] = (
    Aspect(
        "filesystem",
        # a POSIX, home or Windows path, or a file name with a common extension
        re.compile(
            r"(?:^|[\s'\"(])(?:~?/[\w.\-]+/[\w.\-/]*|[a-z]:\\[\w.\\\-]+)"
            r"|\b[\w\-]+\.(?:md|txt|csv|json|xlsx|xls|docx|doc|pptx|pdf|png|jpe?g|svg|html|py|js|wav|mp3)\b",
            re.IGNORECASE,
        ),
        "file write save directory",
    ),
    Aspect(
        "current-time",
        re.compile(
            rf"\b(?:today|tomorrow|yesterday|tonight|now|current(?:ly)?|this (?:week|month|year)|"
            rf"(?:next|last|past|coming) (?:\w+ )?(?:days?|weeks?|months?|years?|{_WEEKDAYS})|{_WEEKDAYS})\b"
            r"|今天|明天|昨天|现在|当前|本周|下周",
            re.IGNORECASE,
        ),
        "current time date",
    ),
    Aspect(
        "arithmetic",
        re.compile(
            r"\b(?:calculat\w*|comput\w*|sum|average|percent\w*|ratio|multiply|divide)\b|计算",
            re.IGNORECASE,
        ),
        "calculate math expression",
    ),
)


def implied_aspects(query: str) -> list[Aspect]:
    """Aspects whose cue occurs in ``query``, in declaration order."""
    return [aspect for aspect in ASPECTS if aspect.pattern.search(query)]


def add_aspect_terms(query: str, terms: dict[str, float], weight: float = ASPECT_WEIGHT) -> dict[str, float]:
    """``terms`` plus the terms of every implied aspect (keeping the larger weight)."""
    out = dict(terms)
    for aspect in implied_aspects(query):
        for term in aspect.terms:
            out[term] = max(out.get(term, 0.0), weight)
    return out
