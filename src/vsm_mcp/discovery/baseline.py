"""The floor: plain BM25 over a server's name, description and tools.

One field per server holding its name, description, tool names and tool
descriptions, lower-cased word tokens without stemming or stop words,
``k1 = 1.5``, ``b = 0.75``. It exists to be reported beside the matcher so
every improvement is measured against the same honest baseline.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from vsm_mcp.discovery.bm25 import Bm25Index, FieldSpec
from vsm_mcp.discovery.catalog import Catalog, ServerEntry
from vsm_mcp.discovery.text import analyze_plain

BASELINE_K1 = 1.5
BASELINE_B = 0.75


def _server_text(entry: ServerEntry) -> str:
    parts = [entry.name, entry.description]
    for tool in entry.tools:
        parts.extend((tool.name, tool.description))
    return " ".join(parts)


class PlainBm25:
    """Rank servers and tools by plain BM25 (the benchmark floor)."""

    def __init__(self, catalog: Catalog) -> None:
        self._servers = [entry.name for entry in catalog]
        self._tools = [(entry.name, tool.name) for entry in catalog for tool in entry.tools]
        field = (FieldSpec("text", 1.0, BASELINE_B),)
        self._server_index = Bm25Index(
            [{"text": analyze_plain(_server_text(e))} for e in catalog], field, k1=BASELINE_K1
        )
        self._tool_index = Bm25Index(
            [{"text": analyze_plain(f"{t.name} {t.description}")} for e in catalog for t in e.tools],
            field,
            k1=BASELINE_K1,
        )

    def rank(self, query: str, top_k: int = 10) -> tuple[list[str], list[tuple[str, str]]]:
        """Top servers and top (server, tool) pairs for ``query``."""
        terms = {term: float(n) for term, n in Counter(analyze_plain(query)).items()}
        server_scores = self._server_index.score(terms)
        tool_scores = self._tool_index.score(terms)
        servers = [self._servers[i] for i in np.argsort(-server_scores, kind="stable")[:top_k]]
        tools = [self._tools[i] for i in np.argsort(-tool_scores, kind="stable")[:top_k]]
        return servers, tools
