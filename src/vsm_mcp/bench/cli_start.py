"""How fast the command line starts: each command a fresh process, beside Python's own floor.

Every target runs ``runs`` times in a fresh interpreter (the console script's
own entry point, ``-c "from vsm_mcp.cli.app import main; main()"``) against an
empty state directory, interleaved target by target so load drifts hit all
alike; the floors are the same interpreter doing nothing (``pass``) and
importing typer. Reported: median and 90th percentile wall seconds, and each
median against the 0.3 s a command line should start within.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: What a person waits for before a command shows anything, at most.
TARGET_S = 0.3
ENTRY = "from vsm_mcp.cli.app import main; main()"
#: name -> arguments after the interpreter.
TARGETS: dict[str, list[str]] = {
    "python -c pass (floor)": ["-c", "pass"],
    "import typer (floor)": ["-c", "import typer"],
    "vsm-mcp --help": ["-c", ENTRY, "--help"],
    "vsm-mcp status --help": ["-c", ENTRY, "status", "--help"],
    "vsm-mcp servers --help": ["-c", ENTRY, "servers", "--help"],
    "vsm-mcp status": ["-c", ENTRY, "status"],
}


def _once(args: list[str], state: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        env={"PATH": "/usr/bin:/bin", "HOME": str(state), "VSM_MCP_STATE_DIR": str(state), "COLUMNS": "100"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def run(runs: int = 10) -> dict[str, Any]:
    """Measure every target ``runs`` times; see the module docstring."""
    times: dict[str, list[float]] = {name: [] for name in TARGETS}
    with tempfile.TemporaryDirectory(prefix="vsm-mcp-bench-cli-") as tmp:
        state = Path(tmp)
        for args in TARGETS.values():
            _once(args, state)  # warm the file cache (and create the state database) once
        for _ in range(runs):
            for name, args in TARGETS.items():
                times[name].append(_once(args, state))
    rows = []
    for name, seen in times.items():
        ordered = sorted(seen)
        median = statistics.median(ordered)
        rows.append(
            {
                "target": name,
                "median_s": round(median, 4),
                "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 4),
                "vs_target": round(median / TARGET_S, 3),
            }
        )
    return {"runs": runs, "target_s": TARGET_S, "python": sys.version.split()[0], "rows": rows}
