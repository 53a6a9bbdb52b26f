"""The operator page in a real browser: Playwright drives Debian's chromium against `vsm-mcp up`.

One real downstream server (server-everything); the admin logs in with the
token, sees the unit, sees an alert appear without a reload when that
server's process is killed, and approves a pending acquisition from the page,
after which an MCP client calls the new server's tool. The screenshot is kept
(``VSM_MCP_SCREENSHOT=PATH`` also writes it there: the README's picture is made so).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.tokens import AdminTokenFile

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.external]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
START_TIMEOUT_S = 60.0
#: Installing mcp-server-time from PyPI in the install sandbox, then verifying and starting it.
ACQUIRE_TIMEOUT_S = 240.0
TIME_PACKAGE = "pypi:mcp-server-time@2026.10.19"


@asynccontextmanager
async def up(state: Path) -> AsyncIterator[tuple[anyio.abc.Process, str, list[str]]]:
    """`vsm-mcp up` on a free port: the process, the page's URL, and all it says on stderr (read
    as it comes, so the pipe never fills)."""
    process = await anyio.open_process(
        [sys.executable, "-c", "from vsm_mcp.cli.app import main; main()", "up", "--http", "127.0.0.1:0"],
        env={**os.environ, "VSM_MCP_STATE_DIR": str(state)},
    )
    said: list[str] = []
    started = anyio.Event()

    async def read() -> None:
        assert process.stderr is not None
        async for chunk in TextReceiveStream(process.stderr):
            said.append(chunk)
            if "MCP on " in "".join(said):
                started.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        try:
            with anyio.fail_after(START_TIMEOUT_S):
                await started.wait()
            url = "".join(said).split("MCP on ", 1)[1].split()[0]
            yield process, url.removesuffix("/mcp"), said
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            with anyio.CancelScope(shield=True), anyio.move_on_after(15):
                await process.wait()
            if process.returncode is None:
                process.kill()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test installs it)")
async def test_the_operator_sees_the_fleet_an_alert_live_and_approves_an_acquisition(
    tmp_path: Path, test_servers: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    everything = test_servers / "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text(
        "\n".join(
            [
                "[algedonic]",
                "window_s = 0.5",  # alerts of one kind are folded over half a second
                "[acquisition]",
                'registries = ["pypi"]',
                "auto_approve = false",  # S5 asks an operator
                "[servers.everything]",
                f"command = {json.dumps(shutil.which('node'))}",
                f"args = {json.dumps([str(everything), 'stdio'])}",
            ]
        )
        + "\n"
    )
    async with up(state) as (process, base, said):
        assert f"operator page: {base}/" in "".join(said)
        token = AdminTokenFile.in_state(state).read()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(base + "/")
            await expect(page.locator("#login-form")).to_be_visible()
            await page.fill("#token", token)
            await page.click("#login-form button[type=submit]")
            row = page.locator('#fleet tr[data-unit="everything"]')
            await expect(row).to_be_visible(timeout=START_TIMEOUT_S * 1000)
            await expect(row.locator("td").nth(1)).to_have_text("ready", timeout=START_TIMEOUT_S * 1000)
            assert token not in await page.content()

            # The server's process dies: the alert shows on the page, without a reload, within 2 s.
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
                units = (await api.get("/api/status")).json()["units"]
            pid = next(u["pid"] for u in units if u["name"] == "everything")
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            alert = page.locator('#alerts tr[data-kind="server_lost"]')
            await expect(alert).to_be_visible(timeout=2000)
            assert time.monotonic() - killed_at < 2.5
            await expect(alert).to_contain_text("unit:everything")
            await expect(page.locator("#sys-algedonic")).to_have_class("algedonic lit", timeout=1000)

            # A client asks for a capability it cannot approve itself: the question waits for an operator.
            async with bearer_client(base + "/mcp", token) as client:
                asked = await client.call_tool(
                    "vsm_acquire_capability",
                    {"query": "current time in a time zone", "package": TIME_PACKAGE},
                )
                assert "approval" in str(asked.content[0]).lower(), asked
                approval = page.locator("[data-approval]")
                await expect(approval).to_be_visible(timeout=10_000)
                await expect(approval).to_contain_text("mcp-server-time")
                shot = tmp_path / "operator-page.png"
                await page.screenshot(path=str(shot), full_page=True)
                if os.environ.get("VSM_MCP_SCREENSHOT"):
                    shutil.copy(shot, os.environ["VSM_MCP_SCREENSHOT"])
                assert shot.stat().st_size > 10_000
                await approval.get_by_role("button", name="Approve").click()
                await expect(page.locator("[data-approval]")).to_have_count(
                    0, timeout=ACQUIRE_TIMEOUT_S * 1000
                )

                # The new unit's tool answers an MCP client.
                with anyio.fail_after(60):
                    while not any(  # noqa: ASYNC110 - polls another process's fleet
                        t.name.endswith("get_current_time") for t in (await client.list_tools()).tools
                    ):
                        await anyio.sleep(0.2)
                name = next(
                    t.name for t in (await client.list_tools()).tools if t.name.endswith("get_current_time")
                )
                answer = await client.call_tool(name, {"timezone": "Asia/Tokyo"})
                assert answer.is_error is False and "Asia/Tokyo" in str(answer.content[0])
            assert token not in await page.content()

            # The gateway stops: the page says it cannot reach it.
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                await process.wait()
            await expect(page.locator("#banner")).to_be_visible(timeout=10_000)
            await expect(page.locator("#banner")).to_contain_text("unreachable")
            await browser.close()
        log = "".join(said)
        assert "server_lost" in log  # up tells alerts on stderr as they happen
        assert token not in log  # the token is in no log line
