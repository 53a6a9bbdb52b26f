"""The egress sandbox proved on this host: a real one started, reaching out but not the host.

`probe` lives apart from `vsm_mcp.sandbox.egress` because it plans a launch
(`vsm_mcp.sandbox.launch`), which itself builds on the egress module.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
from pathlib import Path

from vsm_mcp.sandbox.egress import PROBE_TIMEOUT_S, SLIRP_GATEWAY, host_address
from vsm_mcp.sandbox.launch import Host, plan_launch
from vsm_mcp.sandbox.profile import SandboxProfile

#: Run inside the probe sandbox: connect to each ``HOST:PORT`` argument, print the outcomes as JSON.
_PROBE = """
import errno, json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        out[target] = "ok"
    except OSError as exc:
        out[target] = errno.errorcode.get(exc.errno or 0, str(exc))
print(json.dumps(out))
"""


def probe(host: Host) -> str:
    """Start a real egress sandbox here; "" when it reaches out but not the host, else why not.

    Inside, it connects to a listener on the host's own address (through the namespace: proves
    egress), to one on the host's 127.0.0.1 (directly and through slirp4netns's gateway) and to
    169.254.169.254: those three must fail, with ECONNREFUSED (its own loopback), ENETUNREACH
    and EACCES. A host without any outbound route skips the first check.
    """
    if host.bwrap is None:
        return f"no sandbox to probe: {host.bwrap_problem}"
    if host.egress is None:
        return host.egress_problem
    outward = host_address()
    with (
        tempfile.TemporaryDirectory(prefix="vsm-mcp-egress-probe-") as tmp,
        socket.create_server(("127.0.0.1", 0)) as loopback,
        socket.create_server((outward or "127.0.0.1", 0)) as reachable,
    ):
        # Listening is enough: the kernel completes a handshake without accept().
        port = loopback.getsockname()[1]
        expected = {
            f"127.0.0.1:{port}": "ECONNREFUSED",
            f"{SLIRP_GATEWAY}:{port}": "ENETUNREACH",
            "169.254.169.254:80": "EACCES",
        }
        if outward is not None:
            expected[f"{outward}:{reachable.getsockname()[1]}"] = "ok"
        Path(tmp).chmod(0o755)
        profile = SandboxProfile(prefix=Path(tmp), network=True)
        profile.home.mkdir()
        plan = plan_launch(host.egress.python, ["-I", "-S", "-c", _PROBE, *expected], {}, profile, host)
        try:
            proc = subprocess.run(
                plan.argv,
                env=dict(plan.env),
                cwd=plan.cwd,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the egress sandbox cannot run: {exc}"
    if proc.returncode != 0:
        return f"the egress sandbox failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}"
    try:
        seen = json.loads(proc.stdout)
    except ValueError:
        return f"the egress probe printed no verdict: {proc.stdout[:200]!r}"
    wrong = {target: got for target, got in seen.items() if got != expected.get(target)}
    if wrong:
        return "; ".join(f"{target}: {got} (expected {expected[target]})" for target, got in wrong.items())
    return ""
