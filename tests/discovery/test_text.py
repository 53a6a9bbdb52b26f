from __future__ import annotations

from vsm_mcp.discovery.text import analyze, analyze_plain, words


def test_identifiers_split_like_words() -> None:
    assert analyze("getWeatherForecast") == analyze("get_weather-forecast") == analyze("get weather forecast")
    assert words("getHTTPResponse") == ["get", "http", "response"]


def test_stemming_and_stop_words() -> None:
    assert analyze("Searching the charts with an MCP server") == ["search", "chart"]


def test_cjk_runs_become_bigrams() -> None:
    assert analyze("搜索天气") == ["搜索", "索天", "天气"]
    assert analyze("图 map") == ["图", "map"]


def test_plain_analyzer_keeps_everything() -> None:
    assert analyze_plain("The Charts of MCP") == ["the", "charts", "of", "mcp"]
