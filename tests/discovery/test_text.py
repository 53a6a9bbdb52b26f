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


def test_stemming_from_many_threads_agrees_with_one_thread() -> None:
    import threading

    from vsm_mcp.discovery import text

    words = [
        f"{w}{suffix}"
        for w in ("connect", "run", "search", "index", "translat")
        for suffix in ("ing", "ed", "s", "ion", "er")
    ]
    words = [f"{w}{i}x" for i in range(400) for w in words[:5]] + words
    expected = {w: text.stem.__wrapped__(w) for w in words}
    text.stem.cache_clear()
    results: list[dict[str, str]] = []

    def work() -> None:
        results.append({w: text.stem.__wrapped__(w) for w in words})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results)
