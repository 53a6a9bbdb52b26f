from __future__ import annotations

from vsm_mcp.discovery.lexicon import expand, expansion_table


def test_expansion_is_symmetric_and_weighted() -> None:
    table = expansion_table()
    assert "xlsx" in table["spreadsheet"] and "spreadsheet" in table["xlsx"]
    expanded = expand({"spreadsheet": 1.0}, weight=0.5)
    assert expanded["spreadsheet"] == 1.0
    assert expanded["xlsx"] == 0.5


def test_a_written_word_keeps_its_weight() -> None:
    expanded = expand({"xlsx": 1.0, "spreadsheet": 1.0}, weight=0.5)
    assert expanded["xlsx"] == 1.0 and expanded["spreadsheet"] == 1.0


def test_english_reaches_chinese() -> None:
    assert "天气" in expand({"weather": 1.0})
