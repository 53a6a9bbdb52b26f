"""The sandbox of downstream MCP servers: bubblewrap, resource limits, a scrubbed environment.

    profile = SandboxProfile(prefix=server_dir, network=False)
    plan = Sandbox(profile, Host.detect(state_dir)).wrap(command, args, env)
    # launch plan.argv with env=plan.env, cwd=plan.cwd, start_new_session=True;
    # when the server has stopped: plan.cgroup.remove() (if plan.cgroup)

See `vsm_mcp.sandbox.bwrap` (what the server sees) and `vsm_mcp.sandbox.limits`
(why limits are argv stages and not a preexec function) and
`vsm_mcp.sandbox.cgroups` (limits of a server as a whole).
"""

from __future__ import annotations

from vsm_mcp.sandbox.cgroups import CgroupBackend, CgroupUsage, ServerCgroup, detect_cgroups
from vsm_mcp.sandbox.launch import Host, LaunchPlan, bwrap_available, plan_launch, probe
from vsm_mcp.sandbox.profile import CgroupLimits, Rlimits, SandboxProfile
from vsm_mcp.sandbox.sandbox import Sandbox

__all__ = [
    "CgroupBackend",
    "CgroupLimits",
    "CgroupUsage",
    "Host",
    "LaunchPlan",
    "Rlimits",
    "Sandbox",
    "SandboxProfile",
    "ServerCgroup",
    "bwrap_available",
    "detect_cgroups",
    "plan_launch",
    "probe",
]
