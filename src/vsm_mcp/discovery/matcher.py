"""Rank catalog servers and their tools for a task description, offline, without an LLM.

Method (each step is generic; nothing is tuned per query):
1. The query is analysed like the documents (identifier splitting, stemming,
   CJK bigrams, stop words) and expanded with the generic synonym lexicon at
   a reduced weight.
2. Two BM25F indexes score it: one over servers (name, description, tool
   names, tool descriptions as separately weighted fields) and one over
   individual tools (tool name, description, parameter text, owning server
   name). A server's relevance mixes its own score with its best tool's.
3. A task usually needs several servers, one per aspect ("read the xlsx",
   "plot a chart", "save as png"). The query is split into clauses, and each
   implied need (`aspects`) is one more aspect; every aspect is scored on its
   own, and a server's score is its whole-query relevance plus its best
   normalised aspect relevance, so the best server of each aspect rises even
   when another aspect dominates the wording.
4. Learned outcomes (`OutcomeBoost`) add a bounded bonus or malus for the
   demand category, so servers that served a category well rise for it.

Invariants: ranking is deterministic for a given catalog, config and
outcome state; scores are finite and servers appear at most once.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vsm_mcp.discovery.aspects import add_aspect_terms, implied_aspects
from vsm_mcp.discovery.bm25 import Bm25Index, FieldSpec, FloatArray, IntArray
from vsm_mcp.discovery.catalog import Catalog, ServerEntry, ToolSpec
from vsm_mcp.discovery.lexicon import expand
from vsm_mcp.discovery.text import analyze


@dataclass(frozen=True, slots=True)
class MatcherConfig:
    """Weights of the matcher; defaults are the benchmarked ones."""

    k1: float = 1.2
    name_weight: float = 2.0
    description_weight: float = 1.0
    tool_name_weight: float = 1.0
    tool_description_weight: float = 0.5
    parameter_weight: float = 0.2
    tool_level_share: float = 0.5  # share of a server's relevance coming from its best tool
    expansion_weight: float = 0.35
    aspect_weight: float = 0.8  # weight of implied needs (paths, relative dates, arithmetic)
    aspect_share: float = 1.0  # weight of the best per-aspect relevance against the whole query's
    tool_server_share: float = 0.5  # how much a tool's rank follows its server's relevance
    outcome_weight: float = 0.3


@dataclass(frozen=True, slots=True)
class ToolMatch:
    server: str
    tool: str
    score: float


@dataclass(frozen=True, slots=True)
class ServerMatch:
    name: str
    score: float
    tools: tuple[ToolMatch, ...]
    matched_terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MatchResult:
    query: str
    servers: tuple[ServerMatch, ...]
    tools: tuple[ToolMatch, ...]


# clause boundaries: punctuation (Latin and CJK) and the conjunctions that join steps of a task
_CLAUSE_BREAK = re.compile(
    "[.;:!?,\n\uff0c\u3002\uff1b\uff1a\uff01\uff1f]+|"
    r"\b(?:and|then|also|plus|after that|as well as|with)\b",
    re.I,
)


class OutcomeBoost(Protocol):
    """Learned preference of a server for a demand category, in [-1, 1]."""

    def boost(self, server: str, category: str) -> float: ...


def _parameter_text(tool: ToolSpec) -> str:
    properties: Any = tool.input_schema.get("properties")
    if not isinstance(properties, dict):
        return ""
    parts: list[str] = []
    for name, spec in properties.items():
        parts.append(str(name))
        if isinstance(spec, dict) and isinstance(spec.get("description"), str):
            parts.append(spec["description"])
    return " ".join(parts)


def _server_doc(entry: ServerEntry) -> dict[str, list[str]]:
    return {
        "name": analyze(entry.name),
        "description": analyze(entry.description),
        "tool_names": [term for tool in entry.tools for term in analyze(tool.name)],
        "tool_descriptions": [term for tool in entry.tools for term in analyze(tool.description)],
    }


def _tool_doc(entry: ServerEntry, tool: ToolSpec, server_name_terms: list[str]) -> dict[str, list[str]]:
    return {
        "name": analyze(tool.name),
        "description": analyze(tool.description),
        "parameters": analyze(_parameter_text(tool)),
        "server": server_name_terms,
    }


def _normalised(scores: FloatArray) -> FloatArray:
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0.0 else scores


class Matcher:
    """Ranks the servers of one catalog; build once, query many times."""

    def __init__(
        self, catalog: Catalog, config: MatcherConfig | None = None, outcomes: OutcomeBoost | None = None
    ) -> None:
        self.catalog = catalog
        self.config = config = config or MatcherConfig()
        self.outcomes = outcomes
        self._servers = [entry.name for entry in catalog]
        tool_owner: list[int] = []
        tool_docs: list[dict[str, list[str]]] = []
        server_docs: list[dict[str, list[str]]] = []
        self._tools: list[tuple[str, str]] = []
        self._first_tool = np.zeros(len(catalog) + 1, dtype=np.int64)
        for index, entry in enumerate(catalog):
            doc = _server_doc(entry)
            server_docs.append(doc)
            self._first_tool[index] = len(tool_docs)
            for tool in entry.tools:
                tool_docs.append(_tool_doc(entry, tool, doc["name"]))
                tool_owner.append(index)
                self._tools.append((entry.name, tool.name))
        self._first_tool[len(catalog)] = len(tool_docs)
        self._tool_owner: IntArray = np.asarray(tool_owner, dtype=np.int64)
        self._server_index = Bm25Index(
            server_docs,
            (
                FieldSpec("name", config.name_weight, 0.3),
                FieldSpec("description", config.description_weight, 0.75),
                FieldSpec("tool_names", config.tool_name_weight, 0.75),
                FieldSpec("tool_descriptions", config.tool_description_weight, 0.75),
            ),
            k1=config.k1,
        )
        self._tool_index = Bm25Index(
            tool_docs,
            (
                FieldSpec("name", 2.0, 0.3),
                FieldSpec("description", 1.0, 0.75),
                FieldSpec("parameters", config.parameter_weight, 0.75),
                FieldSpec("server", 0.5, 0.3),
            ),
            k1=config.k1,
        )

    def query_terms(self, query: str) -> dict[str, float]:
        """Weighted, expanded terms of ``query`` that occur somewhere in the catalog."""
        terms = {term: 1.0 for term in Counter(analyze(query))}
        terms = (
            add_aspect_terms(query, terms, self.config.aspect_weight) if self.config.aspect_weight else terms
        )
        expanded = expand(terms, self.config.expansion_weight)
        return {t: w for t, w in expanded.items() if t in self._server_index or t in self._tool_index}

    def aspect_terms(self, query: str) -> list[dict[str, float]]:
        """One weighted term set per clause of ``query`` and per implied need."""
        groups = [analyze(clause) for clause in _CLAUSE_BREAK.split(query)]
        if self.config.aspect_weight:
            groups.extend(list(aspect.terms) for aspect in implied_aspects(query))
        out: list[dict[str, float]] = []
        for group in groups:
            terms = expand(dict.fromkeys(group, 1.0), self.config.expansion_weight)
            known = {t: w for t, w in terms.items() if t in self._server_index or t in self._tool_index}
            if known:
                out.append(known)
        return out

    def _relevance(self, terms: dict[str, float]) -> tuple[FloatArray, FloatArray]:
        """Normalised server relevance and raw tool scores for one set of terms."""
        server_scores = _normalised(self._server_index.score(terms))
        tool_scores = self._tool_index.score(terms)
        best_tool = np.zeros(len(self._servers), dtype=np.float64)
        if tool_scores.size:
            np.maximum.at(best_tool, self._tool_owner, tool_scores)
        share = self.config.tool_level_share
        return _normalised((1.0 - share) * server_scores + share * _normalised(best_tool)), tool_scores

    def _outcome_bonus(self, category: str | None) -> FloatArray | None:
        if self.outcomes is None or category is None or not self.config.outcome_weight:
            return None
        boosts = (self.outcomes.boost(name, category) for name in self._servers)
        return self.config.outcome_weight * np.fromiter(boosts, np.float64, len(self._servers))

    def match(
        self, query: str, top_k: int = 5, category: str | None = None, tools_k: int = 10
    ) -> MatchResult:
        """The ``top_k`` servers and ``tools_k`` tools that best serve ``query``."""
        terms = self.query_terms(query)
        if not terms or not self._servers:
            return MatchResult(query, (), ())
        relevance, tool_scores = self._relevance(terms)
        tool_scores = _normalised(tool_scores)
        best_aspect = np.zeros_like(relevance)
        best_aspect_tool = np.zeros_like(tool_scores)
        for aspect in self.aspect_terms(query):
            aspect_relevance, aspect_tools = self._relevance(aspect)
            np.maximum(best_aspect, aspect_relevance, out=best_aspect)
            np.maximum(best_aspect_tool, _normalised(aspect_tools), out=best_aspect_tool)
        score = relevance + self.config.aspect_share * best_aspect
        tool_scores = 0.5 * (tool_scores + best_aspect_tool)
        bonus = self._outcome_bonus(category)
        if bonus is not None:
            score = score + bonus
        k = min(top_k, len(self._servers))
        top = np.argpartition(-score, k - 1)[:k]
        order = top[np.argsort(-score[top], kind="stable")]
        ranked_tools = self._rank_tools(score, tool_scores, tools_k)
        servers = tuple(self._server_match(int(i), score, tool_scores, terms) for i in order)
        return MatchResult(query, servers, ranked_tools)

    def _rank_tools(self, relevance: FloatArray, tool_scores: FloatArray, k: int) -> tuple[ToolMatch, ...]:
        if not tool_scores.size:
            return ()
        share = self.config.tool_server_share
        combined = (1.0 - share) * tool_scores + share * _normalised(relevance)[self._tool_owner]
        combined[tool_scores <= 0.0] = 0.0
        k = min(k, int(np.count_nonzero(combined)))
        if k == 0:
            return ()
        top = np.argpartition(-combined, k - 1)[:k]
        top = top[np.argsort(-combined[top], kind="stable")]
        return tuple(ToolMatch(self._tools[i][0], self._tools[i][1], float(combined[i])) for i in top)

    def _server_match(
        self, index: int, relevance: FloatArray, tool_scores: FloatArray, terms: dict[str, float]
    ) -> ServerMatch:
        first, last = int(self._first_tool[index]), int(self._first_tool[index + 1])
        own = tool_scores[first:last]
        best = np.argsort(-own, kind="stable")[:3]
        tools = tuple(
            ToolMatch(self._tools[first + i][0], self._tools[first + i][1], float(own[i]))
            for i in best
            if own[i] > 0.0
        )
        names = list(terms)
        hits = self._server_index.contributions(names, np.asarray([index], dtype=np.int64))[0]
        matched = tuple(
            name for name, hit in zip(names, hits, strict=True) if hit > 0.0 and terms[name] >= 1.0
        )
        return ServerMatch(self._servers[index], float(relevance[index]), tools, matched)

    def rank(self, query: str, top_k: int = 10) -> tuple[list[str], list[tuple[str, str]]]:
        """Server names and (server, tool) pairs, best first (the benchmark's interface)."""
        result = self.match(query, top_k=top_k, tools_k=top_k)
        return [s.name for s in result.servers], [(t.server, t.tool) for t in result.tools]

    def server_names(self) -> Sequence[str]:
        return self._servers
