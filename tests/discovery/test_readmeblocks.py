from __future__ import annotations

from vsm_mcp.discovery.readmeblocks import CodeBlock, SummaryHeading, lines, units, with_summaries


def test_code_blocks_come_whole_in_place_and_a_markdown_wrapper_is_read() -> None:
    readme = '# x\n```json\n{"a": 1}\n```\nafter \\_escaped\n```markdown\n## Tools\n```py\nrun()\n```\n```\n'
    assert list(units(readme)) == [
        "# x",
        CodeBlock('{"a": 1}'),
        "after _escaped",
        "## Tools",
        CodeBlock("run()"),
    ]
    assert list(lines(readme)) == ["# x", "after _escaped", "## Tools"]


def test_a_summary_is_a_heading_above_the_block_s_headings_or_below_the_one_it_is_under() -> None:
    def names_tools(text: str) -> bool:
        return "tool" in text.lower()

    readme = [
        "## Setup",
        "<details><summary><b>Cursor</b></summary>",
        "- config",
        "</details>",
        "<details>",
        "<summary>Tools</summary>",
        "### search",
        "</details>",
        "<details>",
        "<summary>Resources</summary>",
        "### status://now",
        "</details>",
    ]
    result = with_summaries(list(readme), names_tools)
    assert result[1] == "### Cursor" and isinstance(result[1], SummaryHeading)
    assert result[3] == "### "
    assert result[5] == "## Tools" and result[7] == "## "
    # no room under "## Setup" and not about tools: left as it is
    assert result[9:] == readme[9:]
