from __future__ import annotations

import httpx
import pytest
from tests.discovery.conftest import npm_tarball

from vsm_mcp.discovery.tooldocs import (
    MAX_MARKDOWN_BYTES,
    linked_documents,
    markdown_in_tarball,
    tools_from_documents,
    tools_from_tarball,
)

TOOLS_PAGE = (
    "# Reference\n\n## Tools\n\n- `get_forecast`: Forecast for a place\n- `get_alerts`: Active alerts\n"
)
OTHER_PAGE = "# Guide\n\n## Tools\n\n- `install_plugin`: Installs a plugin of the host app\n"


def test_links_that_name_tools_or_features_are_documents_other_links_are_not() -> None:
    readme = """See the [Tool reference](./docs/tool-reference.md#all) and [Server Features](docs/features.md).
[Contributing](CONTRIBUTING.md) · [Changelog](CHANGELOG.md) · [tools online](https://example.org/tools.md)
[Shared tools](../other/tools.md)
"""
    assert linked_documents(readme) == ["docs/tool-reference.md", "docs/features.md"]


def test_the_linked_page_is_read_where_the_package_ships_it() -> None:
    files = {
        "README.md": "# Weather\n\nAll tools: [Tool reference](docs/tools-list.md).\n",
        "dist/docs/tools-list.md": TOOLS_PAGE,
        "node_modules/dep/TOOLS.md": OTHER_PAGE,
        "docs/guide.md": OTHER_PAGE,
    }
    assert tools_from_documents(markdown_in_tarball(npm_tarball(files))) == [
        ("get_forecast", "Forecast for a place"),
        ("get_alerts", "Active alerts"),
    ]


def test_a_page_named_for_its_tools_is_read_only_at_the_top_or_under_docs() -> None:
    assert tools_from_documents({"README.md": "# x\n", "TOOLS.md": TOOLS_PAGE})[0][0] == "get_forecast"
    assert (
        tools_from_documents({"README.md": "# x\n", "docs/capabilities.md": TOOLS_PAGE})[0][0]
        == "get_forecast"
    )
    bundled = {"README.md": "# x\n", "skills/agent/TOOLS.md": OTHER_PAGE, "docs/guide.md": OTHER_PAGE}
    assert tools_from_documents(bundled) == []


def test_a_cut_off_tarball_yields_the_pages_before_the_cut() -> None:
    data = npm_tarball({"TOOLS.md": TOOLS_PAGE, "big.md": "z" * 200_000})
    assert list(markdown_in_tarball(data[: len(data) // 2])) == ["TOOLS.md"]
    assert markdown_in_tarball(b"not a tarball") == {}


def test_a_tarball_that_unpacks_to_too_much_markdown_is_read_no_further() -> None:
    # 12 pages of 1.6 MB of one repeated letter: a few KB packed, 19 MB of markdown unpacked
    pages = {f"page{i:02d}.md": "z" * 1_600_000 for i in range(12)}
    data = npm_tarball({"TOOLS.md": TOOLS_PAGE, **pages})
    assert len(data) < 500_000
    kept = markdown_in_tarball(data)
    assert "TOOLS.md" in kept
    assert sum(len(text) for text in kept.values()) <= MAX_MARKDOWN_BYTES
    assert len(kept) < 1 + len(pages)


@pytest.mark.anyio
async def test_a_tarball_that_cannot_be_had_gives_no_tools() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("ok.tgz"):
            return httpx.Response(200, content=npm_tarball({"README.md": "# x\n", "TOOLS.md": TOOLS_PAGE}))
        return httpx.Response(404)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert [n for n, _ in await tools_from_tarball(client, "https://r.example/ok.tgz")] == [
            "get_forecast",
            "get_alerts",
        ]
        assert await tools_from_tarball(client, "https://r.example/gone.tgz") == []
