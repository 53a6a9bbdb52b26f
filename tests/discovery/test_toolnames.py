from __future__ import annotations

import pytest

from vsm_mcp.discovery.toolnames import looks_like_tool_list, looks_like_tool_name, name_words, naming_style


@pytest.mark.parametrize(
    ("name", "style", "tool"),
    [
        ("get_forecast", "snake", True),
        ("slack-post-message", "kebab", True),
        ("searchIssues", "camel", True),
        ("query", "word", True),
        ("GradeDate", "pascal", False),
        ("perPage", "camel", False),
        ("max_rows", "snake", False),
        ("DESTINATION_USER_ID", "upper", False),
        ("message.contents", "dotted", False),
    ],
)
def test_naming_style_and_action_verbs(name: str, style: str, tool: bool) -> None:
    assert naming_style(name) == style
    assert looks_like_tool_name(name) is tool


def test_a_tool_list_needs_half_its_names_to_be_operations() -> None:
    assert looks_like_tool_list(["yfinance_get_ticker_info", "GradeDate", "Firm", "Raises"]) is False
    assert looks_like_tool_list(["get_forecast", "sequential_thinking"]) is True
    assert looks_like_tool_list([]) is False


def test_name_words_split_every_naming_style() -> None:
    assert name_words("slack_postMessage-v2.send") == ["slack", "post", "message", "v", "2", "send"]
    assert name_words("HTTPRequestTool") == ["http", "request", "tool"]
