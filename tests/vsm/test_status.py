"""Recursive status: the whole and every unit have the same S1..S5 shape, at any depth."""

from __future__ import annotations

import json

import pytest

from vsm_mcp.vsm.status import SYSTEMS, SystemStatus, ViableStatus


def _keys(d: dict[str, object]) -> set[str]:
    return set(d)


def test_a_gateway_of_gateways_has_the_same_shape_at_every_level_and_round_trips_json() -> None:
    leaf = ViableStatus("fs", s1=SystemStatus("ok", {"calls": 3, "errors": 0}))
    inner = ViableStatus("inner-gw", s3=SystemStatus("over_budget", {"rss_bytes": 1200}), units=(leaf,))
    whole = ViableStatus("outer-gw", s5=SystemStatus("attention", {"attention": 1}), units=(inner,))

    doc = whole.to_dict()
    shape = {"name", *SYSTEMS, "units"}
    assert _keys(doc) == _keys(doc["units"][0]) == _keys(doc["units"][0]["units"][0]) == shape
    assert doc["units"][0]["units"][0]["s1"] == {"state": "ok", "metrics": {"calls": 3, "errors": 0}}
    assert ViableStatus.from_dict(json.loads(json.dumps(doc))) == whole
    assert whole.depth() == 3
    assert whole.unit("inner-gw").unit("fs").s1.metrics["calls"] == 3


def test_from_dict_rejects_what_is_not_a_viable_status() -> None:
    with pytest.raises(ValueError, match="not a viable status"):
        ViableStatus.from_dict({"units": []})
    with pytest.raises(ValueError, match="not a system status"):
        ViableStatus.from_dict({"name": "x", "s1": {"metrics": {}}})
