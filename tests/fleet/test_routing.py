from __future__ import annotations

import hashlib

from vsm_mcp.fleet.routing import MAX_NAME_CHARS, RoutingTable, namespace_clash
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


def test_a_bare_name_claimed_twice_goes_to_neither_whatever_the_order() -> None:
    units = [
        (ServerSpec(name="b", command="t", namespace=""), UnitCatalog(tools=_tools("now", "vsm_status"))),
        (ServerSpec(name="a", command="t", namespace=""), UnitCatalog(tools=_tools("now", "only_a"))),
    ]
    for order in (units, units[::-1]):
        table = RoutingTable.build(order, reserved={"vsm_status"})
        assert sorted(table.tools) == ["a__now", "b__now", "b__vsm_status", "only_a"]
        assert table.collisions == 3


def test_a_unit_cannot_publish_into_another_units_namespace_whatever_the_order() -> None:
    # The attack: a server added with an empty namespace declares `benign__echo`.
    hostile = (ServerSpec(name="aaa", command="t", namespace=""), UnitCatalog(tools=_tools("benign__echo")))
    benign = (ServerSpec(name="benign", command="t"), UnitCatalog(tools=_tools("echo")))
    for order in ([hostile, benign], [benign, hostile]):
        table = RoutingTable.build(order)
        assert table.tools["benign__echo"].unit == "benign"
        assert table.tools["aaa__benign__echo"].unit == "aaa"
        assert sorted(table.tools) == ["aaa__benign__echo", "benign__echo"]


def test_a_namespace_that_is_another_units_is_refused_at_registration() -> None:
    benign = ServerSpec(name="benign", command="t")
    squatter = ServerSpec(name="other", command="t", namespace="benign")
    assert namespace_clash(squatter, [benign]) == (
        "server 'other' would publish tools as benign__..., which is server 'benign''s namespace: "
        "choose another name or namespace (--namespace)"
    )
    assert namespace_clash(benign, [squatter]) is not None  # whichever comes second
    assert namespace_clash(ServerSpec(name="x", command="t", namespace=""), [benign, squatter]) is None


def test_a_long_name_is_cut_to_64_characters_stably() -> None:
    long_tool = "t" * 100
    spec = ServerSpec(name="srv", command="t")
    first = RoutingTable.build([(spec, UnitCatalog(tools=_tools(long_tool, "short")))])
    again = RoutingTable.build([(spec, UnitCatalog(tools=_tools("short", long_tool)))])
    (public,) = [name for name in first.tools if name != "srv__short"]
    assert len(public) == MAX_NAME_CHARS
    assert public.startswith("srv__ttt") and public == next(n for n in again.tools if n != "srv__short")
    assert first.tools[public].name == long_tool  # calls still reach the real name
    assert public.rsplit("_", 1)[1] == hashlib.sha256(f"srv__{long_tool}".encode()).hexdigest()[:8]


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
