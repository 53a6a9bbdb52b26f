from __future__ import annotations

import pytest
from pydantic import ValidationError

from vsm_mcp.fleet.spec import ServerSpec


def test_transport_is_derived_from_command_or_url() -> None:
    assert ServerSpec(name="time", command="uvx", args=["mcp-server-time"]).transport == "stdio"
    assert ServerSpec(name="web", url="http://127.0.0.1:9/mcp").transport == "http"


def test_exactly_one_of_command_and_url() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'command'"):
        ServerSpec(name="x")
    with pytest.raises(ValidationError, match="exactly one of 'command'"):
        ServerSpec(name="x", command="a", url="http://h/mcp")


@pytest.mark.parametrize("name", ["a__b", "", "-x", "x y", "n" * 49])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="server name"):
        ServerSpec(name=name, command="true")


def test_public_names_follow_the_namespace() -> None:
    assert ServerSpec(name="time", command="t").public_name("now") == "time__now"
    assert ServerSpec(name="time", command="t", namespace="clock").public_name("now") == "clock__now"
    assert ServerSpec(name="time", command="t", namespace="").public_name("now") == "now"


def test_idle_timeout_cannot_exceed_the_absolute_one() -> None:
    with pytest.raises(ValidationError, match="idle_timeout_s"):
        ServerSpec(name="x", command="t", idle_timeout_s=10, call_timeout_s=5)


def test_a_sandbox_section_is_for_stdio_servers_with_absolute_paths() -> None:
    with pytest.raises(ValidationError, match="a sandbox applies to stdio servers only"):
        ServerSpec(name="x", url="http://h/mcp", sandbox={"mode": "require"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="sandbox path 'data' must be absolute"):
        ServerSpec(name="x", command="t", sandbox={"data_dirs": ["data"]})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Input should be 'require', 'prefer' or 'off'"):
        ServerSpec(name="x", command="t", sandbox={"mode": "maybe"})  # type: ignore[arg-type]


def test_a_partial_limits_table_overrides_only_what_it_names() -> None:
    spec = ServerSpec.model_validate(
        {"name": "x", "command": "t", "sandbox": {"limits": {"nproc": 512}, "data_dirs": ["/srv/a/../b"]}}
    )
    assert spec.sandbox is not None
    assert (spec.sandbox.limits.nproc, spec.sandbox.limits.data_bytes) == (512, 4 * 1024**3)
    assert [str(p) for p in spec.sandbox.data_dirs] == ["/srv/b"]
    assert (spec.sandbox.mode, spec.sandbox.network, spec.sandbox.prefix) == (None, None, None)
    # What is stored names only what was chosen: the rest stays the policy's.
    assert spec.model_dump(mode="json", exclude_defaults=True)["sandbox"] == {
        "data_dirs": ["/srv/b"],
        "limits": {"nproc": 512},
    }


def test_a_malformed_secret_reference_is_refused_in_words() -> None:
    with pytest.raises(ValidationError) as info:
        ServerSpec(name="gh", command="x", env={"TOKEN": "Bearer ${secret:my token}"})
    assert (
        "server 'gh': env TOKEN = '${secret:my token}' is not a secret reference: write ${secret:NAME} with "
        "NAME of 1-64 letters, digits, '_', '-' or '.'"
    ) in str(info.value)
    with pytest.raises(ValidationError, match=r"headers Authorization = '\$\{secret:api' is not"):
        ServerSpec(name="web", url="http://127.0.0.1:9/mcp", headers={"Authorization": "${secret:api"})
    ok = ServerSpec(name="gh", command="x", env={"TOKEN": "${secret:gh.token} and ${secret:b}"})
    assert ok.env["TOKEN"] == "${secret:gh.token} and ${secret:b}"
