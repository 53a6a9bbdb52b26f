from __future__ import annotations

from vsm_mcp.discovery.aspects import add_aspect_terms, implied_aspects


def names(query: str) -> list[str]:
    return [aspect.name for aspect in implied_aspects(query)]


def test_paths_imply_the_filesystem() -> None:
    assert names("save it to /root/markdown/report.md") == ["filesystem"]
    assert names("write notes.txt please") == ["filesystem"]


def test_relative_dates_imply_the_current_time() -> None:
    assert names("train tickets for next Wednesday") == ["current-time"]
    assert names("what happened yesterday") == ["current-time"]


def test_arithmetic_cues() -> None:
    assert names("calculate the total") == ["arithmetic"]


def test_plain_request_implies_nothing() -> None:
    assert names("draw a flowchart of quicksort") == []
    assert add_aspect_terms("draw a flowchart", {"draw": 1.0}) == {"draw": 1.0}


def test_aspect_terms_never_lower_a_written_word() -> None:
    terms = add_aspect_terms("save to /tmp/a/b.md", {"file": 1.0}, weight=0.8)
    assert terms["file"] == 1.0
    assert terms["write"] == 0.8
