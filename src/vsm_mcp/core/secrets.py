"""Secrets of downstream servers: their names, and how a server's spec refers to one.

A spec never holds a secret's value: an ``env`` or ``headers`` value holds a
reference, ``${secret:NAME}`` (alone or inside text, e.g. ``Bearer
${secret:TOKEN}``), and the value is looked up in the store at each launch
(`vsm_mcp.fleet.secrets`). Names are 1-64 letters, digits, ``_``, ``-`` or ``.``.
"""

from __future__ import annotations

import re

SECRET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: ``${secret:NAME}``; group 1 is the name.
SECRET_REFERENCE = re.compile(r"\$\{secret:([A-Za-z0-9_.-]{1,64})\}")


def check_secret_name(name: str) -> None:
    """Refuse a name a reference could not spell.

    Raises:
        ValueError: ``name`` is empty, longer than 64 or has other characters.
    """
    if not SECRET_NAME.fullmatch(name):
        raise ValueError(f"secret name {name!r} must be 1-64 letters, digits, '_', '-' or '.'")


def references(value: str) -> list[str]:
    """The secret names ``value`` refers to, in order (repeats kept)."""
    return SECRET_REFERENCE.findall(value)


#: Where a reference starts: anything from here that `SECRET_REFERENCE` does not match is malformed.
_REFERENCE_START = "${secret:"


def malformed_reference(value: str) -> str | None:
    """The first ``${secret:...`` in ``value`` that is not a valid reference, or None.

    A malformed one would otherwise reach the server as literal text (or, through a shell,
    as nothing at all) instead of the secret.
    """
    stripped = SECRET_REFERENCE.sub("", value)
    start = stripped.find(_REFERENCE_START)
    if start < 0:
        return None
    end = stripped.find("}", start)
    return stripped[start : end + 1 if end >= 0 else len(stripped)]
