"""Per-server limits with cgroups: memory, process count and CPU of a server as a whole.

Rlimits (`vsm_mcp.sandbox.limits`) bound each *process*: three children of one
server could hold three times RLIMIT_DATA. A cgroup bounds the server: the
launch preamble (`vsm_mcp.sandbox.preamble`) joins it before bwrap starts, so
every process of the server is in it from its first instruction.

Where (`detect_cgroups`, once per gateway, for the gateway's uid):

* cgroup v2, when the gateway's own cgroup (``/proc/self/cgroup``) offers the
  memory, pids and cpu controllers and is delegated to its uid (writable: a
  ``systemd-run --user --scope -p Delegate=yes`` scope, or root);
* else every cgroup v1 hierarchy (memory, pids, cpu; cpuacct for CPU seconds)
  whose gateway cgroup the uid can write (root, or a delegated directory);
* else none: only the rlimits hold, and `CgroupBackend.problem` says why.

A backend is for one uid (`CgroupBackend.for_uid`): the preamble runs as the
gateway's uid, so the groups must be writable by it.

Layout: ``<the gateway's cgroup>/vsm-mcp/<gateway-id>/<server-key>`` (in each v1
hierarchy). The gateway id is ``<pid>-<start time>``: two gateways never share a
parent, and a dead gateway's groups are recognised and swept (empty ones only).
Under v2 a cgroup that enables controllers for its children holds no processes
("no internal processes"): the gateway is in its own cgroup, so on first use it
moves into the leaf ``<its cgroup>/vsm-mcp-gateway`` (as systemd documents for
delegated scopes), unless that cgroup already enables the controllers or is the
hierarchy's root. Groups of plans never run are removed at exit: a group left
behind would keep the gateway's own cgroup from being removed.

Invariants:

* servers nest under the gateway's own cgroup: no server escapes a limit put on the gateway;
* a launch whose backend works never proceeds without its group: `ServerCgroup.create`
  raises `SandboxError`, and the preamble fails closed when it cannot join;
* a server group belongs to one launch (its key ends in a per-gateway sequence number);
  `ServerCgroup.remove` kills what is left in it, then removes it;
* only directories are created: a limit file the kernel does not offer is an error
  (cgroupfs refuses to create files), never a silent no-op.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import errno
import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vsm_mcp.errors import SandboxError
from vsm_mcp.sandbox import _cgroupfs as fs
from vsm_mcp.sandbox.profile import CgroupLimits

#: The limits a server's cgroup enforces, by controller name (the same under v1 and v2).
LIMITED = ("memory", "pids", "cpu")
#: A v1 hierarchy joined for accounting only: CPU seconds (v1 ``cpu`` has no usage counter).
V1_ACCOUNTING = "cpuacct"
#: The CFS period: quota = cores * period. 100 ms is the kernel's default period.
CPU_PERIOD_US = 100_000
#: After SIGKILL, how long the processes of a group may take to leave it (exit is asynchronous).
REMOVE_TIMEOUT_S = 2.0
#: How often `ServerCgroup.remove` looks again at a group that is still populated.
REMOVE_POLL_S = 0.01
#: The directory under the gateway's cgroup holding every gateway's server groups.
GROUP_ROOT = "vsm-mcp"
#: Under v2, the leaf the gateway moves into so its own cgroup may enable controllers.
GATEWAY_LEAF = "vsm-mcp-gateway"
PROC_SELF = Path("/proc/self")
DELEGATE_HINT = (
    "run the gateway as root, or in a delegated systemd scope: "
    "systemd-run --user --scope -p Delegate=yes vsm-mcp serve"
)

_SEQUENCE = itertools.count(1)
_PREPARED: set[tuple[Path, ...]] = set()
_PREPARE_LOCK = threading.Lock()


class CgroupVersion(enum.StrEnum):
    V1 = "v1"
    V2 = "v2"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class CgroupUsage:
    """What a server's processes use right now (``None``: not accounted here)."""

    memory_bytes: int | None
    #: The most the group ever held (v2 ``memory.peak``, v1 ``memory.max_usage_in_bytes``).
    memory_peak_bytes: int | None
    pids: int | None
    cpu_seconds: float | None
    #: Processes the kernel's OOM killer killed in the group (its memory limit was reached).
    oom_kills: int | None = None
    #: Forks refused because the group was at its process limit.
    pids_refused: int | None = None


@dataclass(frozen=True, slots=True)
class CgroupBackend:
    """How this gateway (``uid``) puts its servers into cgroups, or why it cannot."""

    version: CgroupVersion
    uid: int
    gateway_id: str = ""
    #: Controller (and v1 ``cpuacct``) -> the gateway's own cgroup directory; v2: one directory.
    bases: Mapping[str, Path] = field(default_factory=dict)
    #: The limits written and held (a subset of `LIMITED`).
    enforced: frozenset[str] = frozenset()
    #: Why a limit is not enforced ("" when all of `LIMITED` are).
    problem: str = ""

    @classmethod
    def unavailable(cls, uid: int, why: str) -> CgroupBackend:
        return cls(CgroupVersion.NONE, uid, problem=f"cgroup limits not enforced: {why}")

    def describe(self) -> str:
        """One line: which limits hold and where, then what does not and why."""
        if not self.enforced:
            return self.problem
        names = ", ".join(c for c in LIMITED if c in self.enforced)
        places = ", ".join(str(p.parent) for p in self.parents())
        text = f"cgroup {self.version}: {names} enforced per server under {places}"
        return f"{text}; {self.problem}" if self.problem else text

    def parents(self) -> tuple[Path, ...]:
        """This gateway's group in every hierarchy it uses (v2: one)."""
        return tuple(dict.fromkeys(base / GROUP_ROOT / self.gateway_id for base in self.bases.values()))

    def for_uid(self, uid: int) -> CgroupBackend:
        """This backend when the gateway runs as ``uid``; another uid was not detected."""
        if uid == self.uid or self.version is CgroupVersion.NONE:
            return self
        return CgroupBackend.unavailable(uid, f"cgroups were detected for uid {self.uid}, not {uid}")

    def server_group(self, name: str) -> ServerCgroup:
        """The group of one launch of the server ``name`` (a value: `ServerCgroup.create` makes it)."""
        if not self.enforced:
            raise ValueError(f"no cgroup backend: {self.problem}")
        slug = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "server"
        return ServerCgroup(self, f"{slug}-{next(_SEQUENCE)}")


@dataclass(frozen=True, slots=True)
class ServerCgroup:
    """One launch's cgroup (per v1 hierarchy, or one v2 directory)."""

    backend: CgroupBackend
    key: str

    @property
    def dirs(self) -> dict[str, Path]:
        """Controller -> the server's directory in the hierarchy holding it."""
        return {
            c: base / GROUP_ROOT / self.backend.gateway_id / self.key
            for c, base in self.backend.bases.items()
        }

    @property
    def directories(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys(self.dirs.values()))

    @property
    def procs_files(self) -> tuple[Path, ...]:
        """What the preamble writes ``0`` into to join (one per hierarchy)."""
        return tuple(d / "cgroup.procs" for d in self.directories)

    @property
    def problem(self) -> str:
        return self.backend.problem

    def create(self, limits: CgroupLimits) -> None:
        """Make the group and write its limits; a partly made group is removed again.

        Raises:
            SandboxError: the group cannot be made or a limit cannot be written.
        """
        try:
            _prepare_parents(self.backend)
            for directory in self.directories:
                directory.mkdir()
                if os.geteuid() != self.backend.uid:
                    # The gateway's uid joins it from the preamble: the group is delegated to it,
                    # as if it had made the group itself.
                    fs.hand_over(directory, self.backend.uid)
            if self.backend.version is CgroupVersion.V2:
                self._write_v2(limits)
            else:
                self._write_v1(limits)
        except OSError as exc:
            for directory in self.directories:
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise SandboxError(
                f"cannot set up the cgroup of server {self.key}: {exc.filename}: {exc.strerror}"
            ) from exc

    def _write_v2(self, limits: CgroupLimits) -> None:
        group = self.directories[0]
        enforced = self.backend.enforced
        if "memory" in enforced:
            fs.write_value(group / "memory.max", _or_max(limits.memory_bytes))
            if (group / "memory.swap.max").exists():
                fs.write_value(group / "memory.swap.max", "0")
        if "pids" in enforced:
            fs.write_value(group / "pids.max", _or_max(limits.pids))
        if "cpu" in enforced:
            fs.write_value(group / "cpu.max", f"{_or_max(_quota_us(limits.cpu_cores))} {CPU_PERIOD_US}")

    def _write_v1(self, limits: CgroupLimits) -> None:
        dirs, enforced = self.dirs, self.backend.enforced
        if "memory" in enforced:
            value = str(limits.memory_bytes) if limits.memory_bytes is not None else "-1"
            fs.write_value(dirs["memory"] / "memory.limit_in_bytes", value)
            # memory+swap no larger than memory: no swap. Written second (memsw >= memory always).
            if (dirs["memory"] / "memory.memsw.limit_in_bytes").exists():
                fs.write_value(dirs["memory"] / "memory.memsw.limit_in_bytes", value)
        if "pids" in enforced:
            fs.write_value(dirs["pids"] / "pids.max", _or_max(limits.pids))
        if "cpu" in enforced:
            quota = _quota_us(limits.cpu_cores)
            fs.write_value(dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            fs.write_value(dirs["cpu"] / "cpu.cfs_quota_us", str(quota) if quota is not None else "-1")

    def pids(self) -> set[int]:
        """Every process in the group (host pids); empty once it is gone."""
        found: set[int] = set()
        for path in self.procs_files:
            found |= fs.read_pids(path)
        return found

    def usage(self) -> CgroupUsage:
        """Current memory, process count and CPU seconds of the server (for S3 and listings)."""
        dirs = self.dirs
        if self.backend.version is CgroupVersion.V2:
            group = self.directories[0]
            usec = fs.read_keyed(group / "cpu.stat").get("usage_usec")
            return CgroupUsage(
                memory_bytes=fs.read_int(group / "memory.current"),
                memory_peak_bytes=fs.read_int(group / "memory.peak"),
                pids=fs.read_int(group / "pids.current"),
                cpu_seconds=usec / 1e6 if usec is not None else None,
                oom_kills=fs.read_keyed(group / "memory.events").get("oom_kill"),
                pids_refused=fs.read_keyed(group / "pids.events").get("max"),
            )
        memory, pids, acct = dirs.get("memory"), dirs.get("pids"), dirs.get(V1_ACCOUNTING)
        nsec = fs.read_int(acct / "cpuacct.usage") if acct is not None else None
        return CgroupUsage(
            memory_bytes=fs.read_int(memory / "memory.usage_in_bytes") if memory else None,
            memory_peak_bytes=fs.read_int(memory / "memory.max_usage_in_bytes") if memory else None,
            pids=fs.read_int(pids / "pids.current") if pids else None,
            cpu_seconds=nsec / 1e9 if nsec is not None else None,
            oom_kills=fs.read_keyed(memory / "memory.oom_control").get("oom_kill") if memory else None,
            pids_refused=fs.read_keyed(pids / "pids.events").get("max") if pids else None,
        )

    def remove(self, timeout_s: float = REMOVE_TIMEOUT_S) -> None:
        """Kill every process left in the group, then remove it (blocking; idempotent).

        Raises:
            SandboxError: a process outlived SIGKILL for ``timeout_s`` (the group is left).
        """
        deadline = time.monotonic() + timeout_s
        self._kill()
        for directory in self.directories:
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                        raise SandboxError(
                            f"cannot remove the cgroup {directory}: {exc.strerror} "
                            f"(still in it: {sorted(self.pids()) or 'nothing'})"
                        ) from exc
                self._kill()
                time.sleep(REMOVE_POLL_S)

    def _kill(self) -> None:
        kill = self.directories[0] / "cgroup.kill"
        if self.backend.version is CgroupVersion.V2 and kill.exists():
            # Linux >= 5.14: the kernel kills the whole group, forks in flight included.
            with contextlib.suppress(FileNotFoundError):
                fs.write_value(kill, "1")
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def detect_cgroups(
    uid: int | None = None, *, proc: Path = PROC_SELF, gateway_id: str | None = None
) -> CgroupBackend:
    """Which cgroup backend works for a gateway of ``uid`` (default: this process's) living where
    ``proc``'s ``cgroup`` and ``mountinfo`` say. Reads only; nothing is created."""
    uid = os.geteuid() if uid is None else uid
    try:
        mounts = fs.cgroup_mounts((proc / "mountinfo").read_text())
        own = fs.own_cgroups((proc / "cgroup").read_text())
    except OSError as exc:
        return CgroupBackend.unavailable(uid, f"cannot read {exc.filename}: {exc.strerror}")
    gateway_id = gateway_id or fs.gateway_id(os.getpid())
    v2, v2_why = _detect_v2(uid, mounts, own)
    if v2:
        return CgroupBackend(CgroupVersion.V2, uid, gateway_id, v2, frozenset(v2), _missing(v2, v2_why))
    v1, v1_why = _detect_v1(uid, mounts, own)
    enforced = frozenset(c for c in LIMITED if c in v1)
    if enforced:
        return CgroupBackend(CgroupVersion.V1, uid, gateway_id, v1, enforced, _missing(enforced, v1_why))
    why = "; ".join(dict.fromkeys(v1_why[c] for c in LIMITED))
    return CgroupBackend.unavailable(uid, f"cgroup v2: {v2_why.get('', 'unusable')}; cgroup v1: {why}")


def _missing(enforced: Iterable[str], why: Mapping[str, str]) -> str:
    absent = [c for c in LIMITED if c not in set(enforced)]
    if not absent:
        return ""
    reasons = "; ".join(dict.fromkeys(why.get(c, why.get("", "unavailable")) for c in absent))
    return f"cgroup {', '.join(absent)} limit{'s' if len(absent) > 1 else ''} not enforced: {reasons}"


def _base(mount: fs.Mount, path: str) -> Path | None:
    """The directory of cgroup ``path`` under ``mount``, None when the mount does not show it."""
    root = mount.root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None
    base = mount.point / path[len(root) :].lstrip("/")
    return base.parent if base.name == GATEWAY_LEAF else base


def _detect_v2(
    uid: int, mounts: list[fs.Mount], own: Mapping[str, str]
) -> tuple[dict[str, Path], dict[str, str]]:
    """The v2 controllers usable for ``uid`` -> its base, and why (``""``: all) the others are not."""
    mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if mount is None or "" not in own:
        return {}, {"": "no cgroup2 hierarchy mounted"}
    base = _base(mount, own[""])
    if base is None:
        return {}, {"": f"the gateway's cgroup {own['']} is outside the mounted part {mount.root}"}
    if "ro" in mount.options:
        return {}, {"": f"{mount.point} is mounted read-only"}
    available = set(fs.read_words(base / "cgroup.controllers"))
    usable = [c for c in LIMITED if c in available]
    if not usable:
        offered = " ".join(sorted(available)) or "none"
        return {}, {
            "": f"{base} offers none of memory, pids, cpu (its controllers: {offered}; on a hybrid host they are cgroup v1)"
        }
    files = (base, base / "cgroup.subtree_control", base / "cgroup.procs")
    if not all(fs.writable_by(path, uid) for path in files):
        return {}, {"": f"{base} is not delegated to uid {uid} (not writable)"}
    if not set(usable) <= set(fs.read_words(base / "cgroup.subtree_control")) and not _is_root(base):
        others = fs.read_pids(base / "cgroup.procs") - {os.getpid()}
        if others:
            return {}, {
                "": f"{base} holds other processes ({len(others)}), so it cannot enable controllers for "
                "child groups (no internal processes): start the gateway in a cgroup of its own"
            }
    why = {c: f"{base} does not offer the {c} controller" for c in LIMITED if c not in usable}
    return {c: base for c in usable}, why


def _detect_v1(
    uid: int, mounts: list[fs.Mount], own: Mapping[str, str]
) -> tuple[dict[str, Path], dict[str, str]]:
    """The v1 hierarchies usable for ``uid`` -> their base, and why the others are not."""
    bases: dict[str, Path] = {}
    why: dict[str, str] = {}
    for controller in (*LIMITED, V1_ACCOUNTING):
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        if mount is None or controller not in own:
            why[controller] = f"no {controller} hierarchy mounted"
            continue
        base = _base(mount, own[controller])
        if base is None:
            why[controller] = f"the gateway's {controller} cgroup is outside the mounted part"
        elif "ro" in mount.options:
            why[controller] = f"{mount.point} is mounted read-only"
        elif not fs.writable_by(base, uid):
            why[controller] = f"{base} is not writable by uid {uid}"
        else:
            bases[controller] = base
    return bases, why


def _is_root(group: Path) -> bool:
    """The hierarchy's real root (exempt from "no internal processes"); a cgroup namespace's
    root is not, and like every other non-root group it has a ``cgroup.type``."""
    return not (group / "cgroup.type").exists()


def _prepare_parents(backend: CgroupBackend) -> None:
    """Make this gateway's groups (once per process), sweeping those of dead gateways."""
    parents = backend.parents()
    with _PREPARE_LOCK:
        if parents in _PREPARED:
            return
        if backend.version is CgroupVersion.V2:
            _prepare_v2(parents[0], backend.enforced)
        else:
            for parent in parents:
                fs.make_dirs(parent)
        for parent in parents:
            fs.sweep(parent.parent, keep=backend.gateway_id)
        _PREPARED.add(parents)
        atexit.register(_remove_at_exit, parents)


def _remove_at_exit(parents: tuple[Path, ...]) -> None:
    """What a server's stop did not remove (a plan never run), and ``vsm-mcp/`` when it is empty:
    a group left behind would keep the gateway's own cgroup from being removed."""
    fs.remove_empty(parents)
    for parent in parents:
        with contextlib.suppress(OSError):
            parent.parent.rmdir()


def _prepare_v2(parent: Path, controllers: frozenset[str]) -> None:
    """Enable the controllers from the gateway's cgroup down to ``parent`` (its ``vsm-mcp/<id>``)."""
    base = parent.parent.parent
    enable = " ".join(f"+{c}" for c in LIMITED if c in controllers)
    if not controllers <= set(fs.read_words(base / "cgroup.subtree_control")):
        if not _is_root(base) and os.getpid() in fs.read_pids(base / "cgroup.procs"):
            # No internal processes: the gateway leaves its cgroup for a leaf of its own.
            leaf = base / GATEWAY_LEAF
            leaf.mkdir(exist_ok=True)
            fs.write_value(leaf / "cgroup.procs", str(os.getpid()))
        fs.write_value(base / "cgroup.subtree_control", enable)
    for level in (parent.parent, parent):
        fs.make_dirs(level)
        fs.write_value(level / "cgroup.subtree_control", enable)


def _quota_us(cores: float | None) -> int | None:
    return None if cores is None else max(1000, round(cores * CPU_PERIOD_US))


def _or_max(value: int | None) -> str:
    return "max" if value is None else str(value)
