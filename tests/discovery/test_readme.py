from __future__ import annotations

from pathlib import Path

from vsm_mcp.discovery.readme import MAX_SUMMARY, MAX_TOOLS, summary_from_readme, tools_from_readme

READMES = Path(__file__).parent / "readmes"

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


def fixture(name: str) -> str:
    return (READMES / name).read_text(encoding="utf-8")


def test_tools_section_items_headings_and_tables() -> None:
    # the list under `read_file`'s heading documents read_file: it names no tools of its own
    assert tools_from_readme(README) == [("read_file", "Reads a file.")]
    without_heading = README.replace("### `read_file`\nReads a file.\n", "")
    assert tools_from_readme(without_heading) == [
        ("write_file", "Write a file to disk"),
        ("list_directory", "List a directory"),
        ("search_files", "Find files by glob"),
        ("create_sheet", ""),
        ("delete_sheet", ""),
    ]


def test_numbered_items_keep_their_description_not_their_inputs() -> None:
    assert tools_from_readme(fixture("numbered_items_with_inputs.md")) == [
        ("create_or_update_file", "Create or update a single file in a repository"),
        ("search_repositories", "Search for repositories"),
    ]


def test_bold_items_take_the_description_label_and_skip_input_lists() -> None:
    assert tools_from_readme(fixture("bold_items_with_nested_labels.md")) == [
        ("drive_search", "Search for files in the drive."),
        ("sheets_update_cell", "Update a cell value in a spreadsheet."),
    ]


def test_tool_headings_skip_parameter_tables_and_returned_fields() -> None:
    assert tools_from_readme(fixture("heading_tools_with_parameter_tables.md")) == [
        ("quotes_get_ticker_info", "Retrieve company info, financials and trading metrics."),
        ("quotes_get_rating_changes", "Fetch analyst upgrades and downgrades, newest first."),
    ]


def test_titled_headings_and_a_parameters_label_at_the_tools_level() -> None:
    assert tools_from_readme(fixture("titled_headings_with_parameters_label.md")) == [
        ("engine_web_search", "Performs web searches with rich result types."),
        ("engine_local_search", "Searches for local businesses and places."),
    ]


def test_tables_use_the_tool_column_and_groups_but_never_parameter_columns() -> None:
    assert tools_from_readme(fixture("tables_with_tool_and_group_columns.md")) == [
        ("games_get_scoreboard", "Final scores and live results"),
        ("teams_search", "Search athletes and teams by name"),
        ("search_schema", ""),
        ("describe_table", ""),
        ("read_data", ""),
        ("insert_data", ""),
    ]


def test_escaped_headings_are_read_and_code_blocks_are_not() -> None:
    assert tools_from_readme(fixture("escaped_headings_and_code.md")) == [
        ("get_checklist_items", "Get all items from a checklist by name."),
        ("add_checklist_item", "Add a new item to an existing checklist."),
    ]


def test_a_readme_wrapped_in_a_markdown_fence_is_read() -> None:
    assert tools_from_readme(fixture("wrapped_in_markdown_fence.md")) == [
        ("add", "Add two numbers together"),
        ("square_root", "Calculate the square root of a number"),
    ]


def test_camel_case_field_lists_are_not_tools() -> None:
    assert tools_from_readme(fixture("field_list_under_tools_heading.md")) == []


def test_names_in_a_style_the_tools_do_not_use_are_dropped() -> None:
    readme = """## Tools
- `push_text_message`: Push a text message
- `get_profile`: Get a profile
- `get_message_quota`: Get the quota
- `userId`: The user to send to
- `id`: QQ id
- `DESTINATION_USER_ID`: default user
- `search`: Search messages
"""
    assert [name for name, _ in tools_from_readme(readme)] == [
        "push_text_message",
        "get_profile",
        "get_message_quota",
        "search",
    ]


def test_no_tools_heading_means_no_tools() -> None:
    assert tools_from_readme("# x\n- `read_file`: read\n") == []


def test_the_title_naming_a_tool_is_not_a_tools_section() -> None:
    assert tools_from_readme("# Gemini MCP Tool\n- `ask_gemini`: ask\n") == []


def test_at_most_max_tools() -> None:
    lines = "\n".join(f"- `tool_{i}`: t" for i in range(MAX_TOOLS + 20))
    assert len(tools_from_readme(f"## Tools\n{lines}")) == MAX_TOOLS


def test_summary_is_plain_text_of_the_descriptive_sections() -> None:
    assert summary_from_readme(fixture("summary_shapes.md")) == (
        "A weather server for MCP clients: forecasts, alerts and historical observations. "
        "Forecasts for any location. Severe weather alerts."
    )


def test_summary_is_cut_at_a_word_boundary() -> None:
    long = "## About\n" + " ".join(f"word{i}" for i in range(400)) + "\n"
    summary = summary_from_readme(long)
    assert len(summary) <= MAX_SUMMARY + 1
    assert summary.endswith("…")
    assert summary[:-1].split()[-1].startswith("word")
    assert summary_from_readme(long, limit=20) == "word0 word1 word2…"


def test_summary_reads_restructuredtext_titles_as_headings() -> None:
    rst = "Demo\n====\n\nConverts units between systems.\n\nInstallation\n------------\n\npip install demo\n"
    assert summary_from_readme(rst) == "Converts units between systems."


def test_labelled_groups_of_code_names_and_headings_that_only_mention_tools() -> None:
    readme = """## Works with the tools you already use

| Client | Transport | Notes |
|---|---|---|
| [ChatGPT](#chatgpt) | https | Custom GPT actions |

## MCP tools

- **Content:** `note_write`, `note_read`
- **Search & discovery:** `note_search`, `note_list`
- [ListIndexTool](https://example.org/list-index): Lists all indices
"""
    assert tools_from_readme(readme) == [
        ("note_write", ""),
        ("note_read", ""),
        ("note_search", ""),
        ("note_list", ""),
        ("ListIndexTool", "Lists all indices"),
    ]


def test_summary_keeps_tool_descriptions_but_not_their_inputs() -> None:
    assert summary_from_readme(fixture("numbered_items_with_inputs.md")) == (
        "MCP server for a repository host API, enabling file operations and issue tracking. "
        "create_or_update_file. Create or update a single file in a repository. "
        "search_repositories. Search for repositories."
    )


def test_headings_in_list_items_and_one_word_tool_headings() -> None:
    readme = """## Tools

- ### company_search

  Search the company's content index.

### search

Search for files and folders.

Parameters:

- `query` (required): Search query string.
"""
    assert tools_from_readme(readme) == [
        ("company_search", "Search the company's content index."),
        ("search", "Search for files and folders."),
    ]


def test_feature_sections_are_read_only_when_no_tools_section_lists_any_and_they_read_as_operations() -> None:
    features = """## Features

- **KV Store**: `kv_get`, `kv_put`, `kv_list`
- Troubleshooting Prompt (`k8s-diagnose`)
"""
    assert [name for name, _ in tools_from_readme(features)] == ["kv_get", "kv_put", "kv_list"]
    prose = """## Features

- Results shortened to `ref_tokens` that `page_content` accepts
- **Formats**: `text`, `markdown`
"""
    assert tools_from_readme(prose) == []
    with_tools = features + "\n## Tools\n\n- `get_value`: Read a value\n"
    assert tools_from_readme(with_tools) == [("get_value", "Read a value")]


def test_a_sentence_announcing_tools_opens_a_list_up_to_the_next_other_heading() -> None:
    assert tools_from_readme(fixture("tools_introduced_by_a_sentence.md")) == [
        ("exchange_rate", "Fetches the exchange rate between two currencies.")
    ]


def test_tools_headings_and_labels_in_other_languages() -> None:
    readme = """## 🛠️ 可用工具

### 1. `room_book`

预订会议室。

**参数**:
- `room_id`: 会议室编号

## Outils disponibles

- `list_notes` : Liste les notes
"""
    assert tools_from_readme(readme) == [("room_book", "预订会议室。"), ("list_notes", "Liste les notes")]


def test_mcp_commands_are_tools_and_cli_commands_are_not() -> None:
    mcp = "## Available MCP Commands\n\n- `list-invoices`: Retrieve a list of invoices\n"
    assert tools_from_readme(mcp) == [("list-invoices", "Retrieve a list of invoices")]
    cli = "## Commands\n\n| Command | Description |\n|---|---|\n| `list-agents` | List agents |\n"
    assert tools_from_readme(cli) == []


def test_a_table_with_a_tool_column_is_read_under_any_heading_but_setup() -> None:
    readme = """## What can it do?

| Tool | Description |
|------|-------------|
| `readDocument` | Read a document as text |
| `appendText` | Append text to a document |

Other text after the table.

## Features

| Capability | CLI command | MCP Tool |
|---|---|---|
| Create a notebook | `nb create` | `notebook_create` |
"""
    assert tools_from_readme(readme) == [
        ("readDocument", "Read a document as text"),
        ("appendText", "Append text to a document"),
        ("notebook_create", "Create a notebook"),
    ]
    setup = "## Installation\n\n| Tool | Version |\n|---|---|\n| `uv-build` | 0.5 |\n"
    assert tools_from_readme(setup) == []
    env = "## Usage\n\n| Variable | Description |\n|---|---|\n| `api_key` | Your key |\n"
    assert tools_from_readme(env) == []


def test_details_blocks_are_sections_named_by_their_summary() -> None:
    readme = """# Browser server

## Supported browsers

- Chrome

<details>
<summary><strong>Tools</strong></summary>

### start_browser
Launches a browser session.

### take_screenshot
Captures the page.

</details>

<details>
<summary><strong>Resources</strong></summary>

### browser-status://current
The session's status.

</details>
"""
    assert tools_from_readme(readme) == [
        ("start_browser", "Launches a browser session."),
        ("take_screenshot", "Captures the page."),
    ]


def test_a_summary_word_is_a_group_and_a_summary_in_code_names_a_tool() -> None:
    groups = """## Tools

<details>
<summary>config</summary>

- **view_config** - Show the configuration

</details>
"""
    assert tools_from_readme(groups) == [("view_config", "Show the configuration")]
    reference = """## Tool Reference

<details>
<summary><code>make_image</code> parameters</summary>

| Parameter | Type | Description |
|-----------|------|-------------|
| `prompt` | string | What to draw |

</details>
"""
    assert tools_from_readme(reference) == [("make_image", "")]


def test_tools_shown_only_in_code_under_a_tools_section() -> None:
    readme = """## Tools

### 1. Search (fast model)

Quick answers to simple questions.

```javascript
const result = await use_mcp_tool({
  server_name: "answers",
  tool_name: "search",
  arguments: { query: "capital of France" }
});
```

### 2. Get flight status

```typescript
getFlightStatus({
  number: "AB123",
})
```

### Device tools

```python
def list_devices() -> dict:
    \"\"\"List all connected devices.\"\"\"
```
"""
    assert tools_from_readme(readme) == [
        ("search", "Quick answers to simple questions."),
        ("getFlightStatus", ""),
        ("list_devices", "List all connected devices."),
    ]


def test_configuration_cli_and_environment_code_blocks_name_no_tools() -> None:
    readme = """## Tools

Configure the server:

```json
{"mcpServers": {"demo": {"command": "npx", "args": ["-y", "demo-mcp"], "env": {"DEMO_KEY": "x"}}}}
```

```bash
demo-mcp --list-tools --port 8080
export DEMO_KEY=secret
```

```
DEMO_KEY=secret
DEMO_REGION=eu
```
"""
    assert tools_from_readme(readme) == []
    outside = '## Usage\n\n```json\n{"name": "search", "arguments": {"q": "x"}}\n```\n'
    assert tools_from_readme(outside) == []


def test_a_tool_heading_titled_items_and_source_paths() -> None:
    heading = (
        "## Reference\n\n### `read_pdf` Tool\n\nReads PDF files.\n\n#### Parameters\n\n- `sources`: files\n"
    )
    assert tools_from_readme(heading) == [("read_pdf", "Reads PDF files.")]
    titled = "## Forecast Tools\n\n- **Flood Forecast** (`flood_forecast`) - River discharge forecasts\n"
    assert tools_from_readme(titled) == [("flood_forecast", "River discharge forecasts")]
    paths = "## Tools\n\n- `echo` (tools/echo.ts): Echoes the message\n- `get-sum` (tools/get-sum.ts): Adds\n"
    assert tools_from_readme(paths) == [("echo", "Echoes the message"), ("get-sum", "Adds")]


def test_lists_of_changed_tools_are_not_tool_lists() -> None:
    readme = """## Removed tools

- `post-database-query` - replaced by `query-data-source`

## 工具差异对照

| 旧工具 | 新工具 |
|---|---|
| `sls_old_query` | `sls_execute_sql` |
"""
    assert tools_from_readme(readme) == []


def test_an_intro_counting_its_tools_and_an_intro_that_ends_at_another_list() -> None:
    counted = """## What it exposes

Three tools, backed by [the docs toolkit](../toolkit/):

- `useDocs(sources)` : returns the docs catalog for a package
- `fetchDocs(urls)` : fetches the content of docs pages
"""
    assert [name for name, _ in tools_from_readme(counted)] == ["useDocs", "fetchDocs"]
    fields = """## Labels

The server provides a complete set of tools for managing mail labels:

- **Create Labels**: Create new labels

Label visibility settings include:
- `messageVisibility`: Whether the label shows in the message list
"""
    assert tools_from_readme(fields) == []


def test_a_tool_named_in_a_sentence_and_features_done_with_a_tool() -> None:
    sentence = """## Available Tools

The server provides a `send-email` tool with the following parameters:

- `to` (required): Recipient address
- `subject` (required): Subject line
"""
    assert tools_from_readme(sentence) == [("send-email", "")]
    features = """## Features

- [x] Manage a cluster
  - Get or list resources with `kube_get`
  - Delete resources with `kube_delete`
  - Configure with `settings.yaml`
"""
    assert tools_from_readme(features) == [
        ("kube_get", "Get or list resources"),
        ("kube_delete", "Delete resources"),
    ]
