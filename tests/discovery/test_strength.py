"""Match strength: the share of a query's content terms its best match covers."""

from __future__ import annotations

from vsm_mcp.discovery.catalog import Catalog, ServerEntry, ToolSpec
from vsm_mcp.discovery.matcher import Matcher, ServerMatch, ToolMatch
from vsm_mcp.discovery.strength import WEAK_COVERAGE, match_strength

CATALOG = Catalog(
    (
        ServerEntry(
            "weather-server",
            "Weather forecasts for any city",
            (ToolSpec("get_forecast", "The weather forecast for a city"),),
        ),
        ServerEntry(
            "git-server", "Git repositories", (ToolSpec("git_log", "Show the commits of a repository"),)
        ),
        ServerEntry("pdf-viewer", "View PDF files", (ToolSpec("view_pdf", "Show one page of a PDF"),)),
    )
)
MATCHER = Matcher(CATALOG)


def _best(query: str) -> ServerMatch | None:
    servers = MATCHER.match(query, top_k=1).servers
    return servers[0] if servers else None


def test_a_query_the_best_server_fully_covers_is_strong() -> None:
    strength = match_strength("weather forecast for Paris", _best("weather forecast for Paris"), CATALOG)
    assert strength.server == "weather-server"
    assert (strength.covered, strength.missing) == (("weather", "forecast"), ("pari",))
    assert strength.coverage == 2 / 3
    assert not strength.weak


def test_a_query_of_words_no_entry_has_is_weak() -> None:
    query = "dim the philips hue lamps"
    strength = match_strength(query, _best(query), CATALOG)
    assert (strength.server, strength.coverage, strength.covered) == (None, 0.0, ())
    assert strength.missing == ("dim", "philip", "hue", "lamp")
    assert strength.weak


def test_a_best_match_that_covers_one_word_of_three_is_weak() -> None:
    query = "merge pdf documents"
    strength = match_strength(query, _best(query), CATALOG)
    assert strength.server == "pdf-viewer"
    assert (strength.covered, strength.missing) == (("pdf",), ("merg", "document"))
    assert strength.coverage < WEAK_COVERAGE
    assert strength.weak


def test_half_the_terms_is_the_threshold_and_is_strong() -> None:
    best = ServerMatch("git-server", 1.0, (), ("git",))
    strength = match_strength("git kubernetes", best)
    assert (strength.coverage, strength.weak) == (0.5, False)
    assert match_strength("git kubernetes helm", best).weak  # 1 of 3


def test_the_best_tool_s_name_and_description_count_as_covered() -> None:
    # The matcher said it matched only "pdf"; its best tool's description has the other words.
    catalog = Catalog(
        (ServerEntry("pdf-kit", "PDF", (ToolSpec("merge_pdfs", "Merge several documents into one PDF"),)),)
    )
    best = ServerMatch("pdf-kit", 1.0, (ToolMatch("pdf-kit", "merge_pdfs", 1.0),), ("pdf",))
    strength = match_strength("merge pdf documents", best, catalog)
    assert (strength.coverage, strength.missing) == (1.0, ())
    # Without the catalog only the tool's name counts: "merge" and "pdf", not "documents".
    assert match_strength("merge pdf documents", best).missing == ("document",)


def test_a_query_without_content_terms_is_not_weak() -> None:
    for query in ("", "   ", "the and of it"):
        strength = match_strength(query, None)
        assert (strength.coverage, strength.weak, strength.missing) == (1.0, False, ())


def test_json_names_what_is_missing() -> None:
    best = ServerMatch("git-server", 1.0, (), ("git",))
    assert match_strength("git kubernetes helm", best).json() == {
        "server": "git-server",
        "coverage": 0.333,
        "weak": True,
        "covered": ["git"],
        "missing": ["kubernet", "helm"],
    }
