from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from vsm_mcp.discovery.catalog import Catalog, ServerEntry, ToolSpec, load_catalog
from vsm_mcp.discovery.matcher import Matcher, MatcherConfig
from vsm_mcp.discovery.outcomes import OutcomeLedger


def server(name: str, description: str, *tools: tuple[str, str]) -> ServerEntry:
    return ServerEntry(name, description, tuple(ToolSpec(n, d) for n, d in tools))


CATALOG = Catalog(
    (
        server(
            "Excel", "Read and write Excel workbooks", ("read_sheet", "Read a worksheet"), ("write_sheet", "")
        ),
        server(
            "Charts", "Generate charts", ("bar_chart", "Draw a bar chart"), ("pie_chart", "Draw a pie chart")
        ),
        server("Files", "Filesystem access", ("write_file", "Write a file"), ("read_file", "Read a file")),
        server("Weather", "Weather forecasts", ("get_forecast", "Forecast for a city")),
        server("Clock", "Current time and timezone conversion", ("get_current_time", "Current time")),
        server("Stocks", "Stock prices and market data", ("get_quote", "Latest stock quote")),
    )
)


def test_each_aspect_of_a_task_gets_its_server() -> None:
    result = Matcher(CATALOG).match(
        "Read /root/sales.xlsx, plot a bar chart and save it as /root/figs/sale.png"
    )
    top3 = {s.name for s in result.servers[:3]}
    assert top3 == {"Excel", "Charts", "Files"}
    assert result.tools[0].tool in {"bar_chart", "read_sheet", "write_file"}


def test_synonyms_and_implied_time() -> None:
    result = Matcher(CATALOG).match("weather tomorrow in Paris", top_k=2)
    assert {s.name for s in result.servers} == {"Weather", "Clock"}
    spreadsheet = Matcher(CATALOG).match("open the spreadsheet", top_k=1)
    assert spreadsheet.servers[0].name == "Excel"


def test_server_match_lists_best_tools_and_matched_terms() -> None:
    best = Matcher(CATALOG).match("pie chart", top_k=1).servers[0]
    assert best.name == "Charts"
    assert best.tools[0].tool == "pie_chart"
    assert best.matched_terms == ("pie", "chart")


def test_nothing_matches_gives_an_empty_result() -> None:
    assert Matcher(CATALOG).match("zzqx").servers == ()
    assert Matcher(Catalog(())).match("chart").servers == ()


def test_learned_outcomes_reorder_for_their_category_only() -> None:
    query = "stock quote and the current time"
    plain = Matcher(CATALOG, MatcherConfig(aspect_weight=0.0)).match(query, top_k=2)
    assert [s.name for s in plain.servers] == ["Stocks", "Clock"]
    ledger = OutcomeLedger()
    for _ in range(20):
        ledger.record("Clock", "finance", success=True)
        ledger.record("Stocks", "finance", success=False)
    learned = Matcher(CATALOG, MatcherConfig(aspect_weight=0.0), outcomes=ledger)
    assert [s.name for s in learned.match(query, top_k=2, category="finance").servers] == ["Clock", "Stocks"]
    assert [s.name for s in learned.match(query, top_k=2, category="travel").servers] == ["Stocks", "Clock"]


def test_ranking_is_deterministic() -> None:
    first = Matcher(CATALOG).rank("write a file with the forecast")
    assert Matcher(CATALOG).rank("write a file with the forecast") == first


def test_a_reconfigured_matcher_ranks_as_one_built_with_that_configuration() -> None:
    built = Matcher(CATALOG)
    for config in (
        MatcherConfig(tool_server_share=0.9, aspect_share=0.5),
        MatcherConfig(tool_level_share=0.7, semantic_weight=0.2, bridge_weight=0.0),
    ):
        query = "read the sheet, chart it and write the file with the forecast"
        shared = built.reconfigured(config)
        assert shared.config == config
        assert shared.match(query) == Matcher(CATALOG, config).match(query)
    assert built.config == MatcherConfig()  # the original keeps its own weights


def test_reconfiguring_a_weight_the_index_was_built_with_is_refused() -> None:
    built = Matcher(CATALOG)
    with pytest.raises(ValueError, match="name_weight"):
        built.reconfigured(MatcherConfig(name_weight=5.0))
    with pytest.raises(ValueError, match="semantic_weight"):
        built.reconfigured(MatcherConfig(semantic_weight=0.0))


def test_rarity_is_the_share_of_servers_without_the_word() -> None:
    matcher = Matcher(CATALOG)  # six servers; "read" and "write" in two each, "forecast" in one
    assert matcher.rarity("Forecasts") == pytest.approx(5 / 6)
    assert matcher.rarity("write") == pytest.approx(4 / 6)
    assert matcher.rarity("homestays") == 1.0
    assert matcher.rarity("the") == 0.0  # a stop word is no term


def test_what_was_learned_ranks_the_same_after_a_restart(tmp_path: Path) -> None:
    import anyio

    from vsm_mcp.store import SqliteStore

    query = "stock quote and the current time"
    ledger = OutcomeLedger()
    for _ in range(20):
        ledger.record("Clock", "finance", success=True)
        ledger.record("Stocks", "finance", success=False)

    async def save_then_reload() -> OutcomeLedger:
        async with SqliteStore.open(tmp_path / "state.db") as store:
            await ledger.save(store)
        async with SqliteStore.open(tmp_path / "state.db") as reopened:  # a new process would do this
            return await OutcomeLedger.load(reopened)

    reloaded = anyio.run(save_then_reload)
    assert reloaded.tallies == ledger.tallies
    learned = Matcher(CATALOG, MatcherConfig(aspect_weight=0.0), outcomes=reloaded)
    assert [s.name for s in learned.match(query, top_k=2, category="finance").servers] == ["Clock", "Stocks"]


def test_a_server_with_two_fitting_tools_beats_one_with_a_single_equal_tool() -> None:
    catalog = Catalog(
        (
            server("One", "Utilities", ("convert_units", "Convert units"), ("ping_host", "Ping host")),
            server(
                "Two", "Utilities", ("convert_units", "Convert units"), ("convert_sizes", "Convert sizes")
            ),
        )
    )
    tools_only = MatcherConfig(semantic_weight=0.0, tool_level_share=1.0)
    best_only = replace(tools_only, second_tool_share=0.0)
    assert Matcher(catalog, best_only).rank("convert")[0] == ["One", "Two"]  # a tie: catalog order
    assert Matcher(catalog, tools_only).rank("convert")[0] == ["Two", "One"]


def test_an_entry_with_unknown_tools_is_judged_on_its_description_and_summary() -> None:
    catalog = Catalog(
        (
            server("Listed", "Podcast tools", ("list_episodes", "List the episodes of a feed")),
            ServerEntry("Unlisted", "Podcast search", summary="Search podcast episodes by topic."),
        )
    )
    ranked = Matcher(catalog, MatcherConfig(semantic_weight=0.0)).rank("search podcast episodes")[0]
    assert ranked == ["Unlisted", "Listed"]


def test_the_readme_summary_is_indexed() -> None:
    catalog = Catalog(
        (
            ServerEntry("Alpha", "A toolkit", summary="Transcribes voice memos into text."),
            ServerEntry("Beta", "A toolkit", summary="Resizes photos."),
        )
    )
    assert (
        Matcher(catalog, MatcherConfig(semantic_weight=0.0)).rank("transcribe voice memos")[0][0] == "Alpha"
    )


def test_each_need_of_a_multi_step_task_gets_its_server_in_the_top_three() -> None:
    catalog = Catalog(
        (
            server("Weather", "Weather forecasts", ("get_forecast", "Forecast for a city")),
            server("Mail", "Email", ("send_email", "Send an email message")),
            server("Notes", "Notes and notebooks", ("create_note", "Create a note"), ("list_notes", "")),
            server("Stocks", "Stock prices and market data", ("get_quote", "Latest stock quote")),
            server("Files", "Filesystem access", ("write_file", "Write a file")),
        )
    )
    result = Matcher(catalog, MatcherConfig(semantic_weight=0.0)).match(
        "Get the forecast for Oslo and email it to my team, then create a note about it", top_k=3
    )
    assert {s.name for s in result.servers} == {"Weather", "Mail", "Notes"}


SHIPPED = Path(__file__).resolve().parents[2] / "src" / "vsm_mcp" / "discovery" / "data" / "catalog.json"


@pytest.mark.parametrize(
    ("need", "topic"),
    [
        ("what will the temperature be this weekend where I live", "weather"),
        ("post a note to our team's Slack channel", "slack"),
        ("list the open pull requests of my GitHub repository", "github"),
    ],
)
def test_on_the_shipped_catalog_a_fitting_server_is_first(need: str, topic: str) -> None:
    matcher = Matcher(load_catalog(SHIPPED))
    first = matcher.match(need, top_k=1).servers[0].name
    entry = next(e for e in matcher.catalog if e.name == first)
    assert topic in f"{entry.name} {entry.description}".lower(), f"{need!r} -> {first}: {entry.description}"


def test_ranking_and_scores_do_not_depend_on_the_hash_seed() -> None:
    script = (
        "from tests.discovery.test_matcher import CATALOG, server;"
        "from vsm_mcp.discovery.catalog import Catalog;"
        "from vsm_mcp.discovery.matcher import Matcher, MatcherConfig;"
        "sheets = server('Sheets', 'xls csv csv excel workbook workbook worksheet sheet table', ('tabular', ''));"
        "m = Matcher(Catalog((*CATALOG, sheets)), MatcherConfig(semantic_weight=0.0));"
        "print(repr(m.match('open the spreadsheet, plot a pie chart and save it to /tmp/a/b.png')))"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1 and "Charts" in next(iter(outputs))
