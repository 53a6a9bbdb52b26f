from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vsm_mcp.discovery import embed
from vsm_mcp.discovery.bm25 import FloatArray
from vsm_mcp.discovery.catalog import Catalog, ServerEntry, ToolSpec
from vsm_mcp.discovery.embed import SemanticIndex, load_embedder
from vsm_mcp.discovery.matcher import Matcher, MatcherConfig


class KeywordEmbedder:
    """Axis 0 for texts about rain, skies or weather, axis 1 for messages, axis 2 for anything else."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> FloatArray:
        self.calls += 1
        rows = []
        for text in texts:
            lower = text.lower()
            if any(word in lower for word in ("rain", "skies", "weather")):
                rows.append([1.0, 0.0, 0.0, 0.0])
            elif "message" in lower:
                rows.append([0.0, 0.6, 0.0, 0.8])
            else:
                rows.append([0.0, 0.0, 1.0, 0.0])
        return np.asarray(rows, dtype=np.float64)


def test_similarity_is_the_cosine_of_the_kept_prefix() -> None:
    index = SemanticIndex(KeywordEmbedder(), ["Weather service", "Message relay", "Clock"], dims=2)
    cosines = index.similarity(index.queries(["rain tomorrow?", "a message"]))
    # the message vector (0, .6, 0, .8) cut to 2 dims and renormalised is (0, 1)
    assert cosines.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_a_catalogs_vectors_are_computed_once() -> None:
    embedder = KeywordEmbedder()
    texts = ["Weather service", "Message relay unique to this test"]
    SemanticIndex(embedder, texts)
    SemanticIndex(embedder, texts)
    assert embedder.calls == 1


CATALOG = Catalog(
    (
        ServerEntry("Alerts", "Send alerts", (ToolSpec("notify", "Send an alert"),)),
        ServerEntry("Skies", "Weather alerts and outlook", (ToolSpec("outlook", "Outlook of the skies"),)),
    )
)


def test_the_model_ranks_a_server_the_words_alone_do_not() -> None:
    query = "alerts about rain"
    lexical = Matcher(CATALOG, MatcherConfig(semantic_weight=0.0)).rank(query)[0]
    assert lexical == ["Alerts", "Skies"]
    semantic = Matcher(CATALOG, MatcherConfig(semantic_weight=0.5), embedder=KeywordEmbedder()).rank(query)[0]
    assert semantic == ["Skies", "Alerts"]


def test_without_the_package_matching_is_lexical(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr(embed, "_loaded", [])
    monkeypatch.setattr(embed.importlib, "import_module", absent)
    assert load_embedder() is None
    ranked = Matcher(CATALOG, MatcherConfig(semantic_weight=0.5)).rank("alerts about rain")[0]
    assert ranked == ["Alerts", "Skies"]


def test_the_shipped_model_loads_from_its_wheel_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = pytest.importorskip("requests", reason="wordllama's downloader needs requests")

    def no_network(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(embed, "_loaded", [])
    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(requests.Session, "request", no_network)
    model = load_embedder()
    assert model is not None, "wordllama is a dependency: its model must load from the installed wheel"
    rain, forecast, email = model.embed(["will it rain tomorrow", "weather forecast", "send an email"])
    assert float(rain @ forecast) > float(rain @ email) + 0.1
    assert float(np.linalg.norm(rain)) == pytest.approx(1.0, abs=1e-5)


def test_text_vectors_are_compared_by_id() -> None:
    embedder = KeywordEmbedder()
    vectors = embed.TextVectors(embedder, ["rain gauge", "message queue", "clock face"], dims=4)
    query = embed.SemanticIndex(embedder, ["x"], dims=4).queries(["weather"])
    assert vectors.similarity(query, np.asarray([0, 2])).tolist() == [[1.0, 0.0]]
    assert vectors.similarity(query, np.asarray([2, 0])).tolist() == [[0.0, 1.0]]


def test_a_tool_the_words_miss_is_found_by_its_meaning() -> None:
    catalog = Catalog(
        (
            ServerEntry(
                "Skies",
                "Alerts and outlook",
                (ToolSpec("outlook", "Outlook of the skies"), ToolSpec("alerts", "Alerts")),
            ),
        )
    )
    query = "alerts about the weather"
    lexical = Matcher(catalog, MatcherConfig(semantic_weight=0.0)).match(query)
    assert [t.tool for t in lexical.tools] == ["alerts"]
    semantic = Matcher(catalog, MatcherConfig(semantic_weight=0.5), embedder=KeywordEmbedder()).match(query)
    assert [t.tool for t in semantic.tools] == ["alerts", "outlook"]


def test_a_catalog_with_too_many_tools_ranks_its_tools_by_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from vsm_mcp.discovery import matcher

    monkeypatch.setattr(matcher, "MAX_EMBEDDED_TOOLS", 1)
    catalog = Catalog(
        (
            ServerEntry(
                "Skies",
                "Alerts and outlook",
                (ToolSpec("outlook", "Outlook of the skies"), ToolSpec("alerts", "Alerts")),
            ),
        )
    )
    found = Matcher(catalog, MatcherConfig(semantic_weight=0.5), embedder=KeywordEmbedder())
    assert [t.tool for t in found.match("alerts about the weather").tools] == ["alerts"]
