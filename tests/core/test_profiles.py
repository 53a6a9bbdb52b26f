"""Profiles' rules: which servers and tools one admits, what it refuses to be, its stored form."""

from __future__ import annotations

import pytest

from vsm_mcp.core.profiles import Profile, ToolOverride


def test_an_empty_profile_admits_everything() -> None:
    everything = Profile("all")
    assert everything.admits_server("github")
    assert everything.admits_tool("github", "github__create_issue")
    assert everything.admits_own("vsm_status")


def test_server_and_tool_rules_combine_and_deny_wins() -> None:
    profile = Profile(
        "dev",
        servers=("git*", "fs"),
        deny_servers=("gitlab",),
        tools=("github__*", "fs__read_*"),
        deny_tools=("github__delete_*", "vsm_acquire_*"),
    )
    assert profile.admits_server("github") and profile.admits_server("fs")
    assert not profile.admits_server("gitlab")  # allowed by git*, denied by name
    assert not profile.admits_server("slack")
    assert profile.admits_tool("github", "github__create_issue")
    assert not profile.admits_tool("github", "github__delete_repo")
    assert profile.admits_tool("fs", "fs__read_file")
    assert not profile.admits_tool("fs", "fs__write_file")  # its server is in, the tool is not
    assert not profile.admits_tool("slack", "github__create_issue")  # a tool of a server outside
    # Own tools: allow lists do not apply, deny does.
    assert profile.admits_own("vsm_search_tools")
    assert not profile.admits_own("vsm_acquire_capability")


def test_patterns_are_case_sensitive_globs() -> None:
    profile = Profile("p", servers=("Git",))
    assert profile.admits_server("Git") and not profile.admits_server("git")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Profile("bad name"), "profile name"),
        (lambda: Profile(""), "profile name"),
        (lambda: Profile("x" * 65), "profile name"),
        (lambda: Profile("p", servers=("a b",)), "servers pattern"),
        (lambda: Profile("p", deny_tools=("x;y",)), "deny_tools pattern"),
        (lambda: Profile("p", overrides={"a__x": ToolOverride()}), "changes nothing"),
        (lambda: Profile("p", overrides={"a__x": ToolOverride(name="has space")}), "a tool name is"),
        (lambda: Profile("p", overrides={"a__x": ToolOverride(name="y" * 65)}), "a tool name is"),
        (lambda: Profile("p", overrides={"a__x": ToolOverride(name="vsm_status")}), "gateway's own"),
        (lambda: Profile("p", overrides={"vsm_status": ToolOverride(name="s")}), "gateway's own"),
        (
            lambda: Profile("p", overrides={"a__x": ToolOverride(name="z"), "a__y": ToolOverride(name="z")}),
            "both renamed to 'z'",
        ),
        (lambda: Profile("p", description="d" * 5000), "description over"),
    ],
)
def test_a_profile_that_cannot_work_is_refused_with_the_reason(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_the_stored_form_reads_back_the_same_profile() -> None:
    profile = Profile(
        "dev",
        description="the IDE's tools",
        servers=("github",),
        deny_servers=("x",),
        tools=("github__*",),
        deny_tools=("github__delete_*",),
        overrides={
            "github__create_issue": ToolOverride(name="new_issue", description="File a bug."),
            "github__search": ToolOverride(description="Search code."),
        },
    )
    assert Profile.from_json(profile.to_json()) == profile


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"description": "no name"},
        {"name": "p", "servers": "github"},
        {"name": "p", "tools": [1]},
        {"name": "p", "overrides": []},
        {"name": "p", "overrides": {"a": {"name": 5}}},
        {"name": "p", "overrides": {"a": "b"}},
    ],
)
def test_a_malformed_stored_form_is_refused(data: object) -> None:
    with pytest.raises(ValueError):
        Profile.from_json(data)
