from __future__ import annotations

from vsm_mcp.fleet.routing import RoutingTable
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.unit import UnitCatalog


def _tools(*names: str) -> tuple[dict[str, object], ...]:
    return tuple({"name": n, "inputSchema": {"type": "object"}} for n in names)


def test_tools_are_namespaced_by_unit() -> None:
    table = RoutingTable.build(
        [
            (ServerSpec(name="time", command="t"), UnitCatalog(tools=_tools("now"))),
            (ServerSpec(name="fs", command="f"), UnitCatalog(tools=_tools("read", "now"))),
        ]
    )
    assert list(table.tools) == ["fs__read", "fs__now", "time__now"]
    route = table.tools["time__now"]
    assert (route.unit, route.name, route.definition["name"]) == ("time", "now", "time__now")
    assert table.collisions == 0


def test_bare_names_collide_and_fall_back_to_the_unit_prefix() -> None:
    table = RoutingTable.build(
        [
            (ServerSpec(name="b", command="t", namespace=""), UnitCatalog(tools=_tools("now", "vsm_status"))),
            (ServerSpec(name="a", command="t", namespace=""), UnitCatalog(tools=_tools("now"))),
        ],
        reserved={"vsm_status"},
    )
    assert sorted(table.tools) == ["b__now", "b__vsm_status", "now"]
    assert table.tools["now"].unit == "a"
    assert table.collisions == 2


def test_resources_route_by_uri_then_by_template() -> None:
    table = RoutingTable.build(
        [
            (
                ServerSpec(name="a", command="t"),
                UnitCatalog(
                    resources=({"uri": "test://static", "name": "s"},),
                    templates=({"uriTemplate": "test://item/{id}", "name": "item"},),
                ),
            ),
            (
                ServerSpec(name="b", command="t"),
                UnitCatalog(resources=({"uri": "test://static", "name": "dup"},)),
            ),
        ]
    )
    assert table.resource_unit("test://static") == "a"
    assert table.resource_unit("test://item/42") == "a"
    assert table.resource_unit("test://nothing") is None
    assert [r["name"] for r in table.resource_list] == ["s"]
    assert table.collisions == 1


def test_retry_safety_comes_from_annotations() -> None:
    table = RoutingTable.build(
        [
            (
                ServerSpec(name="a", command="t"),
                UnitCatalog(
                    tools=(
                        {"name": "r", "annotations": {"readOnlyHint": True}},
                        {"name": "i", "annotations": {"idempotentHint": True}},
                        {"name": "w"},
                    )
                ),
            )
        ]
    )
    assert [table.tools[n].retry_safe for n in ("a__r", "a__i", "a__w")] == [True, True, False]
