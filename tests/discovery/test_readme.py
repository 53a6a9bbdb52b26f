from __future__ import annotations

from vsm_mcp.discovery.readme import MAX_TOOLS, tools_from_readme

README = """
# demo-mcp

## Installation
- `pip install demo-mcp`

## Available Tools

### `read_file`
Reads a file.

- `write_file`: Write a file to disk
  - `path` (string): where to write
- **list_directory** - List a directory

| Tool | Description |
|------|-------------|
| `search_files` | Find files by glob |
| Sheets | `create_sheet`, `delete_sheet` |

## License
- `not_a_tool`: MIT
"""


def test_tools_section_items_headings_and_tables() -> None:
    assert tools_from_readme(README) == [
        ("read_file", ""),
        ("write_file", "Write a file to disk"),
        ("list_directory", "List a directory"),
        ("search_files", "Find files by glob"),
        ("create_sheet", ""),
        ("delete_sheet", ""),
    ]


def test_no_tools_heading_means_no_tools() -> None:
    assert tools_from_readme("# x\n- `read_file`: read\n") == []


def test_at_most_max_tools() -> None:
    lines = "\n".join(f"- `tool_{i}`: t" for i in range(MAX_TOOLS + 20))
    assert len(tools_from_readme(f"## Tools\n{lines}")) == MAX_TOOLS
