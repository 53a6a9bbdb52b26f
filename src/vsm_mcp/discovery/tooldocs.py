"""Tool lists that an npm package keeps in a document beside its README, in the same tarball.

Some READMEs do not list their tools but point to a page that does: a
relative link such as ``[Tool reference](docs/tool-reference.md)`` or
``[Server Features](docs/features.md)``, or a file named for its tools
(``TOOLS.md``, ``docs/tools.md``, ``CAPABILITIES.md``). When the package's
release tarball ships that page, it is read like a README (`readme`).

Invariants:
- only the package's own tarball is read (``dist.tarball`` of the release
  the catalog pins), never a repository or another host;
- a linked page counts only when its link text or path names tools, features,
  capabilities or a reference; a named page only at the top level or under
  ``docs/``; other markdown in the tarball (bundled docs of dependencies,
  changelogs, agent prompts) is never read;
- a download stops at `packages.MAX_TARBALL_BYTES`; a tarball that cannot be
  had or read gives no tools, never an error.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
import zlib

import anyio
import httpx

from vsm_mcp.discovery.packages import MAX_TARBALL_BYTES, bounded_get, open_tarball
from vsm_mcp.discovery.readme import tools_from_readme

MAX_DOCUMENT_CHARS = 400_000  # a tools reference longer than this is not one page of tools
#: markdown kept from one tarball in all: a small compressed archive can unpack to far more
MAX_MARKDOWN_BYTES = 16_000_000

_LINK = re.compile(
    r"\[([^\]]{1,200})\]\(\s*(?!https?:|mailto:|#)([^)\s#]+\.md)(?:#[^)]*)?\s*\)", re.IGNORECASE
)
_ABOUT_TOOLS = re.compile(r"tool|feature|capabilit|reference|documentation", re.IGNORECASE)
_NAMED = re.compile(
    r"(?:docs?/)?(?:tools?|tool[-_ ]?reference|tool[-_ ]?list|toolsets?|capabilities)\.md", re.IGNORECASE
)
_README = re.compile(r"readme(?:\.(?:md|markdown))?", re.IGNORECASE)


def linked_documents(readme: str) -> list[str]:
    """Relative ``.md`` paths the README links to whose link text or path names tools (see module doc)."""
    found = [
        posixpath.normpath(target.removeprefix("./"))
        for text, target in _LINK.findall(readme)
        if _ABOUT_TOOLS.search(text) or _ABOUT_TOOLS.search(target)
    ]
    return [path for path in dict.fromkeys(found) if not path.startswith("..")]


def markdown_in_tarball(data: bytes) -> dict[str, str]:
    """The markdown files of an npm tarball by path inside the package (``package/`` dropped),
    read as a stream so a cut-off tarball still yields what came before the cut."""
    files: dict[str, str] = {}
    kept = 0
    try:
        with open_tarball(data) as archive:
            for member in archive:
                path = member.name.split("/", 1)[-1]
                if not member.isfile() or "node_modules/" in path or not path.lower().endswith(".md"):
                    continue
                content = archive.extractfile(member)
                if content is not None:
                    raw = content.read(MAX_DOCUMENT_CHARS * 4)
                    kept += len(raw)
                    if kept > MAX_MARKDOWN_BYTES:
                        break  # an archive that unpacks to this much markdown is not read further
                    files[path] = raw.decode("utf-8", "replace")
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        pass  # a truncated or odd archive: what was read so far stands
    return files


def tools_from_documents(files: dict[str, str]) -> list[tuple[str, str]]:
    """Tools listed by the page the package's README points to, else by a page named for its tools.

    ``files`` are a tarball's markdown files (`markdown_in_tarball`); the README is the top-level one.
    """
    readme = next((text for path, text in files.items() if _README.fullmatch(path)), "")
    candidates: list[str] = []
    for target in linked_documents(readme):
        # a page is shipped where it is linked, or built into a folder such as dist/
        candidates += [path for path in files if path == target or path.endswith("/" + target)]
    candidates += [path for path in files if _NAMED.fullmatch(path)]
    for path in dict.fromkeys(candidates):
        tools = tools_from_readme(files[path][:MAX_DOCUMENT_CHARS])
        if tools:
            return tools
    return []


async def tools_from_tarball(client: httpx.AsyncClient, url: str) -> list[tuple[str, str]]:
    """Tools listed by a tools document in the tarball at ``url`` (see `tools_from_documents`);
    [] when the tarball cannot be had or has none. Never raises for a download or archive fault."""
    try:
        body = await bounded_get(client, url, MAX_TARBALL_BYTES)
    except httpx.HTTPError:
        return []
    if body is None:
        return []
    # a tarball cut at the limit still yields the pages before the cut (`markdown_in_tarball`)
    files = await anyio.to_thread.run_sync(markdown_in_tarball, body[0])
    return tools_from_documents(files)
