"""Fleet test fixtures: ``both_loops``, the event loops the pipe tests run on."""

from __future__ import annotations

import pytest


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def both_loops(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """The standard event loop and uvloop (the gateway's default): pipes must behave alike on both.

    A module opts in by overriding ``anyio_backend`` to return it (see test_wire.py).
    """
    return request.param  # type: ignore[no-any-return]
