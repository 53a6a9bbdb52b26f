"""Secret names and the ``${secret:NAME}`` references specs hold instead of values."""

from __future__ import annotations

import pytest

from vsm_mcp.core.secrets import check_secret_name, references


@pytest.mark.parametrize("name", ["A", "api_key", "github.token-2", "x" * 64])
def test_names_a_reference_can_spell_are_accepted(name: str) -> None:
    check_secret_name(name)
    assert references(f"${{secret:{name}}}") == [name]


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "a/b", "ä", "a}b"])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must be 1-64 letters"):
        check_secret_name(name)


def test_references_are_found_inside_text_in_order_and_malformed_ones_are_not() -> None:
    assert references("Bearer ${secret:tok} and ${secret:other}/${secret:tok}") == ["tok", "other", "tok"]
    assert references("${secret:} ${secret:a b} $secret:x ${SECRET:x} {secret:x} plain") == []
