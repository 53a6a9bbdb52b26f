from __future__ import annotations

from vsm_mcp.discovery.readmecode import tools_in_code


def test_a_tools_call_payload_names_its_tool() -> None:
    payload = '{\n  "name": "web_search",\n  "arguments": {"query": "weather", "count": 5}\n}'
    assert tools_in_code(payload) == [("web_search", "")]
    rpc = '{"method": "tools/call", "params": {"name": "get_page", "arguments": {}}}'
    assert tools_in_code(rpc) == [("get_page", "")]


def test_a_client_helper_names_its_tool_not_its_server() -> None:
    helper = (
        'await use_mcp_tool({\n  server_name: "answers",\n  tool_name: "deep_research",\n  arguments: {}\n});'
    )
    assert tools_in_code(helper) == [("deep_research", "")]


def test_top_level_signatures_with_a_docstring_are_tools() -> None:
    code = '''def get_packages() -> str:
    """
    Get all installed packages on the device.
    """

async def start_emulator(
    avd_name: str | None = None,
) -> dict:
    """Start an emulator."""
'''
    assert tools_in_code(code) == [
        ("get_packages", "Get all installed packages on the device."),
        ("start_emulator", "Start an emulator."),
    ]


def test_methods_private_and_undocumented_functions_are_not_tools() -> None:
    code = '''class Tools(Toolset):
    def add(self, a: int, b: int) -> int:
        """Add two numbers."""

def _helper():
    """Internal."""

def main():
    run()
'''
    assert tools_in_code(code) == []


def test_a_block_that_is_one_call_of_a_multi_word_name_is_a_tool() -> None:
    assert tools_in_code('searchFlights({\n  dep: "PEK",  // Beijing\n  date: "2024-03-20"\n})') == [
        ("searchFlights", "")
    ]
    assert tools_in_code('fetch("https://example.org")') == []  # one word: not distinctive
    assert tools_in_code("startServer({ port: 8080 })\nconsole.log('up')") == []  # a program, not one call


def test_configuration_and_shell_blocks_name_no_tools() -> None:
    config = '{"mcpServers": {"demo": {"command": "npx", "args": ["-y", "demo"], "env": {"KEY": "x"}}}}'
    assert tools_in_code(config) == []
    assert tools_in_code("npx -y demo-mcp --port 8080\nexport DEMO_KEY=secret") == []
    assert tools_in_code('{"name": "demo-server", "version": "1.0.0"}') == []  # no arguments: a manifest
