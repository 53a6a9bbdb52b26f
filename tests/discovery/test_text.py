from __future__ import annotations

from vsm_mcp.discovery.text import analyze, analyze_plain, content_words, words


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


def test_encoded_data_pasted_into_a_query_gives_no_words() -> None:
    blob = "iVBORw0KGgoAAAANSUhEUgAAAgAAAAIACAYAAAD0eNT6AAAABHNCSVQICAgIfAhkiAAAAAlwSFlz"
    assert words(f"What does this base64 image mean?\n{blob}") == [
        "what",
        "does",
        "this",
        "base64",
        "image",
        "mean",
    ]
    assert analyze("commit 3f786850e387550fdab836ed7e6dc881de23001b") == ["commit"]
    # a long identifier without digits is a name, and is still split into its words
    assert analyze("getCurrentWeatherForecastForLocationByName") == [
        "get",
        "current",
        "weather",
        "forecast",
        "locat",
        "name",
    ]
    # a short token mixing letters and digits is kept (model names, versions, ids)
    assert words("gpt4o base64 2203.12277") == ["gpt4o", "base64", "2203", "12277"]


def test_content_words_drop_function_words_in_order() -> None:
    assert (
        content_words("Help me find homestays in Paris, I want to stay") == "find homestays paris want stay"
    )
    assert content_words("get_current_weather: the forecast") == "get current weather forecast"
    # nothing but function words: the text itself, so an embedding still has something to read
    assert content_words("what is it?") == "what is it?"
