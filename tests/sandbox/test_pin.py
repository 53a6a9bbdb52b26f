"""Launch pins: what a start runs, as content, compared with what was pinned."""

from __future__ import annotations

import os
from pathlib import Path

from vsm_mcp.sandbox.pin import HASH_LIMIT_BYTES, LaunchPin, digest


def test_digests_name_content_links_and_absence(tmp_path: Path) -> None:
    script = tmp_path / "server"
    script.write_text("#!/usr/bin/python3\n")
    link = tmp_path / "python"
    link.symlink_to("/usr/bin/python3")
    assert digest(script) == "sha256:" + __import__("hashlib").sha256(b"#!/usr/bin/python3\n").hexdigest()
    assert digest(link) == "-> /usr/bin/python3"
    assert digest(tmp_path / "gone") == "missing"
    assert digest(tmp_path).startswith("not a file")


def test_a_big_binary_is_known_by_size_mtime_and_inode(tmp_path: Path) -> None:
    big = tmp_path / "node"
    with big.open("wb") as fh:
        fh.truncate(HASH_LIMIT_BYTES + 1)
    info = os.stat(big)
    assert digest(big) == f"stat:{HASH_LIMIT_BYTES + 1}:{info.st_mtime_ns}:{info.st_ino}"


def test_changes_name_every_file_that_differs_and_round_trip_through_json(tmp_path: Path) -> None:
    launcher, interpreter = tmp_path / "server", tmp_path / "python"
    launcher.write_text(f"#!{interpreter}\n")
    interpreter.write_text("binary")
    pinned = LaunchPin.of([launcher, interpreter, launcher])  # each file once
    assert [p for p, _ in pinned.files] == [str(launcher), str(interpreter)]
    assert LaunchPin.from_json(pinned.to_json()) == pinned
    assert pinned.changes(LaunchPin.of([launcher, interpreter])) == []
    launcher.write_text("#!/home/attacker/.hidden/sh\n")
    other = tmp_path / "sh"
    other.write_text("x")
    now = LaunchPin.of([launcher, other])
    before_digest, after_digest = dict(pinned.files)[str(launcher)], dict(now.files)[str(launcher)]
    assert pinned.changes(now) == [
        f"{launcher}: {before_digest} -> {after_digest}",
        f"{interpreter}: no longer run",
        f"{other}: newly run ({dict(now.files)[str(other)]})",
    ]


def test_a_stored_value_that_is_not_a_pin_is_none() -> None:
    assert LaunchPin.from_json(None) is None
    assert LaunchPin.from_json(["a"]) is None
    assert LaunchPin.from_json({"a": 1}) is None
