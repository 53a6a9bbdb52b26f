"""Rank catalog servers and their tools for a task description, offline, without an LLM.

Method (each step is generic; nothing is tuned per query or fitted to a task set):
1. The query is analysed like the documents (identifier splitting, stemming,
   CJK bigrams, stop words) and expanded at reduced weight with the generic
   synonym lexicon (`lexicon`) and with vocabulary bridges mined from the
   catalog's own co-occurrences at build time (`bridges`).
2. Two BM25F indexes score it: one over servers (name, description, README
   summary, tool names, tool descriptions as separately weighted fields) and
   one over individual tools (tool name, description, parameter text, owning
   server name). Tool scores are aggregated per server (best tool plus a share
   of the second best: a task needs tools, not brands) and mixed with the
   server's own score. An entry whose tools are unknown is judged on its own
   text alone, so missing tool lists are not a penalty.
3. When the embedding model is installed (`embed`), the cosine between the
   query (and each need) and each server's text is mixed in, both reduced to
   their content words (`text.content_words`: an averaging model would
   otherwise place every "help me find ..." near every other)
   (``semantic_weight``), and so is the cosine with each tool of the best
   `TOOL_CANDIDATE_SERVERS` servers (catalogs of up to `MAX_EMBEDDED_TOOLS`
   tools), so wording the catalog never uses still finds its server and tools.
4. A task usually needs several servers, one per need ("read the xlsx", "plot
   a chart", "save as png"). The query is split into clauses (punctuation and
   the conjunctions that join steps), and each structural cue of an implied
   need (`aspects`: a path, a relative date, an arithmetic verb) is one more
   need; every need is scored on its own (lexical and semantic), and a
   server's score is its whole-query relevance plus its best normalised need
   relevance, so the best server of each need rises even when another need
   dominates the wording.
5. Learned outcomes (`OutcomeBoost`) add a bounded bonus or malus for the
   demand category, so servers that served a category well rise for it.

Invariants: ranking is deterministic for a given catalog, config, model and
outcome state (equal scores keep catalog order); scores are finite and
servers appear at most once; a query costs no more than a few BM25 lookups,
one embedding per need and a product with the server vectors, within 20 ms
at 10,000 servers.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from vsm_mcp.discovery.aspects import add_aspect_terms, implied_aspects
from vsm_mcp.discovery.bm25 import Bm25Index, FieldSpec, FloatArray, IntArray
from vsm_mcp.discovery.bridges import Bridges
from vsm_mcp.discovery.catalog import Catalog, ServerEntry, ToolSpec
from vsm_mcp.discovery.embed import MAX_EMBEDDED_TOOLS, Embedder, SemanticIndex, TextVectors, load_embedder
from vsm_mcp.discovery.lexicon import expand
from vsm_mcp.discovery.text import analyze, content_words


@dataclass(frozen=True, slots=True)
class MatcherConfig:
    """Weights of the matcher. The three that `vsm-mcp bench match` cross-validates (its
    ``CV_GRID``: ``tool_level_share``, ``aspect_share``, ``semantic_weight``) default to its
    ``chosen_on_all_tasks``; the others are set by reasoning, not fitted."""

    k1: float = 1.2
    name_weight: float = 2.0
    description_weight: float = 1.0
    tool_name_weight: float = 1.0
    tool_description_weight: float = 0.5
    parameter_weight: float = 0.2
    summary_weight: float = 0.5  # the README's first sections: informative, but longer and looser
    tool_level_share: float = 0.3  # share of a server's relevance coming from its tools
    second_tool_share: float = 0.3  # a server's second-best tool adds this share of its score
    expansion_weight: float = 0.35
    bridge_weight: float = 0.3  # bridges mined from the catalog's own co-occurrences (`bridges`)
    aspect_weight: float = 0.8  # weight of implied needs (paths, relative dates, arithmetic)
    aspect_share: float = 2.0  # weight of the best per-aspect relevance against the whole query's
    tool_server_share: float = 0.65  # how much a tool's rank follows its server's relevance
    semantic_weight: float = 0.5  # share of relevance from the embedding model (`embed`), when installed
    outcome_weight: float = 0.3


#: MatcherConfig fields an index is built with; every other field is read at query time only
INDEX_FIELDS = (
    "k1",
    "name_weight",
    "description_weight",
    "tool_name_weight",
    "tool_description_weight",
    "parameter_weight",
    "summary_weight",
)


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


TOOL_CANDIDATE_SERVERS = 10  # servers whose tools are compared with the query's meaning
_SUMMARY_CHARS = 600  # the README's opening says what the server is for; the rest is usage detail


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
        "summary": analyze(entry.summary),
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


def _server_text(entry: ServerEntry) -> str:
    """What the embedding model reads of a server (its content words, as for queries)."""
    tools = " ".join(tool.name for tool in entry.tools)
    return content_words(f"{entry.name}. {entry.description} {entry.summary[:_SUMMARY_CHARS]} {tools}")


def _tool_text(entry: ServerEntry, tool: ToolSpec) -> str:
    return content_words(f"{tool.name}: {tool.description} ({entry.name})")


def _normalised(scores: FloatArray) -> FloatArray:
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0.0 else scores


def _top(scores: FloatArray, k: int) -> IntArray:
    """Indices of the ``k`` best scores, best first; equal scores in catalog order."""
    top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    ordered: IntArray = top[np.lexsort((top, -scores[top]))]
    return ordered


class Matcher:
    """Ranks the servers of one catalog; build once, query many times."""

    def __init__(
        self,
        catalog: Catalog,
        config: MatcherConfig | None = None,
        outcomes: OutcomeBoost | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        """Index ``catalog``; ``embedder`` defaults to the installed model when ``semantic_weight`` > 0."""
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
        # an entry whose tools are unknown is judged on its own text, not on tools it may well have
        self._tools_known = np.diff(self._first_tool) > 0
        self._tool_starts: IntArray = self._first_tool[:-1][self._tools_known]
        # each tool's owner among the servers with tools (the rows of a per-server reduction)
        self._tool_group: IntArray = np.repeat(
            np.arange(len(self._tool_starts), dtype=np.int64), np.diff(self._first_tool)[self._tools_known]
        )
        self._bridges = Bridges(
            [
                *(doc["name"] + doc["description"] + doc["summary"] for doc in server_docs),
                *(doc["name"] + doc["description"] for doc in tool_docs),
            ]
        )
        if embedder is None and config.semantic_weight > 0.0:
            embedder = load_embedder()
        self._semantic: SemanticIndex | None = None
        self._tool_vectors: TextVectors | None = None
        if embedder is not None and config.semantic_weight > 0.0:
            self._semantic = SemanticIndex(embedder, [_server_text(entry) for entry in catalog])
            if len(self._tools) <= MAX_EMBEDDED_TOOLS:
                tool_texts = [_tool_text(entry, tool) for entry in catalog for tool in entry.tools]
                self._tool_vectors = TextVectors(embedder, tool_texts)
        self._server_index = Bm25Index(
            server_docs,
            (
                FieldSpec("name", config.name_weight, 0.3),
                FieldSpec("description", config.description_weight, 0.75),
                FieldSpec("summary", config.summary_weight, 0.75),
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

    def reconfigured(self, config: MatcherConfig) -> Matcher:
        """This matcher's indexes and vectors under another configuration of its query-time
        weights (what cross-validation varies), without building them again.

        Raises:
            ValueError: ``config`` differs in a field the indexes were built with (`INDEX_FIELDS`),
                or switches the embedding model on or off.
        """
        changed = [f for f in INDEX_FIELDS if getattr(config, f) != getattr(self.config, f)]
        if (config.semantic_weight > 0.0) != (self.config.semantic_weight > 0.0):
            changed.append("semantic_weight (on/off)")
        if changed:
            raise ValueError(f"a new index is needed for: {', '.join(changed)}")
        other = copy.copy(self)
        other.config = config
        return other

    def rarity(self, word: str) -> float:
        """Share of the catalog's servers whose text lacks ``word`` (1.0: none has it, 0.0: every
        one has it, or it is no term at all), a measure of how telling a word of a need is."""
        terms = analyze(word)
        if not terms or not self._servers:
            return 0.0
        held = max(self._server_index.document_frequency(term) for term in terms)
        return 1.0 - held / len(self._servers)

    def query_terms(self, query: str) -> dict[str, float]:
        """Weighted, expanded terms of ``query`` that occur somewhere in the catalog."""
        terms = {term: 1.0 for term in Counter(analyze(query))}
        terms = (
            add_aspect_terms(query, terms, self.config.aspect_weight) if self.config.aspect_weight else terms
        )
        expanded = self._expand(terms)
        return {t: w for t, w in expanded.items() if t in self._server_index or t in self._tool_index}

    def _expand(self, terms: dict[str, float]) -> dict[str, float]:
        lexical = expand(terms, self.config.expansion_weight)
        bridged = self._bridges.expand(terms, self.config.bridge_weight)
        for term, weight in bridged.items():  # in order: the query's words first, then what they add
            if lexical.get(term, 0.0) < weight:
                lexical[term] = weight
        return lexical

    def aspect_terms(self, query: str) -> list[dict[str, float]]:
        """One weighted term set per clause of ``query`` and per implied need."""
        return [terms for terms, _ in self._needs(query)]

    def _needs(self, query: str) -> list[tuple[dict[str, float], str]]:
        """Each need of ``query`` (a clause, an implied aspect): its known terms and its text."""
        texts = [clause for clause in _CLAUSE_BREAK.split(query) if clause and clause.strip()]
        if self.config.aspect_weight:
            texts.extend(aspect.text for aspect in implied_aspects(query))
        out: list[tuple[dict[str, float], str]] = []
        for text in texts:
            terms = self._expand(dict.fromkeys(analyze(text), 1.0))
            known = {t: w for t, w in terms.items() if t in self._server_index or t in self._tool_index}
            if known:
                out.append((known, text.strip()))
        return out

    def _relevance(
        self, terms: dict[str, float], dense: FloatArray | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Normalised server relevance and tool scores for one need (its terms, its cosines)."""
        tool_scores = _normalised(self._tool_index.score(terms))
        lexical = self._server_level(_normalised(self._server_index.score(terms)), tool_scores)
        if dense is None:
            return lexical, tool_scores
        weight = self.config.semantic_weight
        return _normalised((1.0 - weight) * lexical + weight * _normalised(dense)), tool_scores

    def _server_level(self, server_scores: FloatArray, tool_scores: FloatArray) -> FloatArray:
        tool_level = _normalised(self._aggregate_tools(tool_scores))
        share = self.config.tool_level_share
        mixed = (1.0 - share) * server_scores + share * tool_level
        return _normalised(np.where(self._tools_known, mixed, server_scores))

    def _aggregate_tools(self, tool_scores: FloatArray) -> FloatArray:
        """Per server: its best tool's score plus a share of its second best's (ties count twice)."""
        out = np.zeros(len(self._servers), dtype=np.float64)
        if not tool_scores.size:
            return out
        # a server's tools are contiguous, so each reduction is one pass over the tools
        starts = self._tool_starts
        best = np.maximum.reduceat(tool_scores, starts)
        at_best = tool_scores == best[self._tool_group]
        tied = np.add.reduceat(at_best.astype(np.int64), starts) >= 2
        second = np.where(tied, best, np.maximum.reduceat(np.where(at_best, 0.0, tool_scores), starts))
        out[self._tools_known] = best + self.config.second_tool_share * second
        return out

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
        needs = self._needs(query)
        texts = [content_words(query), *(content_words(text) for _, text in needs)]
        vectors = self._semantic.queries(texts) if self._semantic else None
        dense = None if vectors is None or self._semantic is None else self._semantic.similarity(vectors)
        relevance, tool_scores = self._relevance(terms, None if dense is None else dense[0])
        best_aspect = np.zeros_like(relevance)
        best_aspect_tool = np.zeros_like(tool_scores)
        for row, (aspect, _) in enumerate(needs, start=1):
            aspect_relevance, aspect_tools = self._relevance(aspect, None if dense is None else dense[row])
            np.maximum(best_aspect, aspect_relevance, out=best_aspect)
            np.maximum(best_aspect_tool, _normalised(aspect_tools), out=best_aspect_tool)
        score = relevance + self.config.aspect_share * best_aspect
        tool_scores = 0.5 * (tool_scores + best_aspect_tool)
        if vectors is not None:
            tool_scores = self._with_tool_semantics(tool_scores, score, vectors)
        bonus = self._outcome_bonus(category)
        if bonus is not None:
            score = score + bonus
        k = min(top_k, len(self._servers))
        order = _top(score, k)
        ranked_tools = self._rank_tools(score, tool_scores, tools_k)
        written = [name for name, weight in terms.items() if weight >= 1.0]  # the words the user wrote
        hits = self._server_index.contributions(written, order.astype(np.int64))
        servers = tuple(
            self._server_match(int(i), score, tool_scores, written, row)
            for i, row in zip(order, hits, strict=True)
        )
        return MatchResult(query, servers, ranked_tools)

    def _with_tool_semantics(
        self, tool_scores: FloatArray, score: FloatArray, vectors: npt.NDArray[np.float32]
    ) -> FloatArray:
        """Tool scores mixed with each tool's best cosine to the query or a need, for the tools of
        the best `TOOL_CANDIDATE_SERVERS` servers (the only ones a caller looks at)."""
        if self._tool_vectors is None or not tool_scores.size:
            return tool_scores
        servers = _top(score, min(TOOL_CANDIDATE_SERVERS, len(self._servers)))
        ids = np.concatenate(
            [np.arange(self._first_tool[i], self._first_tool[i + 1], dtype=np.int64) for i in servers]
        )
        weight = self.config.semantic_weight
        mixed = (1.0 - weight) * tool_scores
        if ids.size:
            dense = self._tool_vectors.similarity(vectors, ids).max(axis=0)
            mixed[ids] += weight * _normalised(dense)
        return mixed

    def _rank_tools(self, relevance: FloatArray, tool_scores: FloatArray, k: int) -> tuple[ToolMatch, ...]:
        if not tool_scores.size:
            return ()
        share = self.config.tool_server_share
        combined = (1.0 - share) * tool_scores + share * _normalised(relevance)[self._tool_owner]
        combined[tool_scores <= 0.0] = 0.0
        k = min(k, int(np.count_nonzero(combined)))
        if k == 0:
            return ()
        top = _top(combined, k)
        return tuple(ToolMatch(self._tools[i][0], self._tools[i][1], float(combined[i])) for i in top)

    def _server_match(
        self, index: int, relevance: FloatArray, tool_scores: FloatArray, written: list[str], hits: FloatArray
    ) -> ServerMatch:
        first, last = int(self._first_tool[index]), int(self._first_tool[index + 1])
        own = tool_scores[first:last]
        best = np.argsort(-own, kind="stable")[:3]
        tools = tuple(
            ToolMatch(self._tools[first + i][0], self._tools[first + i][1], float(own[i]))
            for i in best
            if own[i] > 0.0
        )
        matched = tuple(name for name, hit in zip(written, hits, strict=True) if hit > 0.0)
        return ServerMatch(self._servers[index], float(relevance[index]), tools, matched)

    def rank(self, query: str, top_k: int = 10) -> tuple[list[str], list[tuple[str, str]]]:
        """Server names and (server, tool) pairs, best first (the benchmark's interface)."""
        result = self.match(query, top_k=top_k, tools_k=top_k)
        return [s.name for s in result.servers], [(t.server, t.tool) for t in result.tools]

    def server_names(self) -> Sequence[str]:
        return self._servers
