"""The seccomp filter of every sandbox: kernel interfaces no MCP server needs return an error.

bubblewrap loads it (``bwrap --seccomp FD``) as its last step, right before
it executes the server's first stage, so it binds every process of the
sandbox and can never be lifted. The filter is compiled here with libseccomp
(through the ``pyseccomp`` binding) into a classic BPF program and written to
a file that the launch preamble opens onto `SECCOMP_FD` (see
`vsm_mcp.sandbox.preamble`).

What it denies is `DENIED_SYSCALLS` (each with a reason), the namespace
flags of ``clone`` (`CLONE_NAMESPACE_FLAGS`) and ``personality`` values other
than `PERSONALITY_ALLOWED`, in the manner of Docker's default profile.

Invariants:

* the default action is ALLOW and a denied call fails with ``EPERM``, never
  a kill: programs that probe an interface (glibc, libuv, node) see an
  ordinary error and carry on; ``clone3`` alone fails with ``ENOSYS``, so
  glibc falls back to ``clone``, whose flags the filter can read (those of
  ``clone3`` sit in memory, out of a filter's reach);
* the filter covers the native architecture and the compatibility ABIs the
  kernel runs beside it (x86_64: i386 through ``int 0x80`` and x32), so a
  32-bit entry cannot bypass it; a call of any other architecture kills the
  process;
* `compile_filter` is deterministic (same rules, same libseccomp: same
  bytes), and `filter_file` names the file by its content hash: a file, once
  written, never changes, and concurrent writers produce the same file.

The file must stay where no server can write (the gateway's state directory,
which every sandbox hides, or a private temporary directory): whoever can
rewrite it chooses the next server's filter.
"""

from __future__ import annotations

import atexit
import errno
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vsm_mcp.errors import SandboxError

#: The descriptor the preamble opens the filter on, for ``bwrap --seccomp``. POSIX ``sh``
#: (dash) redirects single-digit descriptors only; 9 is the one least likely to be in use.
SECCOMP_FD = 9

#: Calls that fail with EPERM, whatever their arguments; grouped by why a server must not make them.
DENIED_SYSCALLS: tuple[str, ...] = (
    # Mounts and root changes: the sandbox's file system view is bwrap's to make, and a server
    # that could mount (in a namespace of its own) could rebuild a view around the hidden places.
    "mount", "umount2", "pivot_root", "chroot",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # Namespaces: a new user namespace hands back every capability (inside it) and with them the
    # kernel's least-audited code; joining one (setns) is a way out of the sandbox's own.
    "unshare", "setns",
    # Looking into other processes: reading or steering another process of the sandbox (which
    # may run a different program, such as node's helper processes) or comparing kernel objects.
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # Kernel keyrings: not namespaced; a server could read or plant keys of its uid on the host.
    "keyctl", "add_key", "request_key",
    # eBPF programs and performance counters: large kernel attack surface, and side channels.
    "bpf", "perf_event_open",
    # The machine itself: kernels, modules, reboot, swap, accounting, quotas, the kernel log,
    # port I/O, kernel profiling, the system clock. All need capabilities a server never has;
    # denied anyway, so a kernel bug in a capability check does not make them reachable.
    "kexec_load", "kexec_file_load", "reboot",
    "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "acct", "quotactl", "syslog", "iopl", "ioperm", "lookup_dcookie",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    # File handles bypass path lookup, hence the sandbox's view (the "shocker" escape).
    "open_by_handle_at", "name_to_handle_at",
    # userfaultfd stalls the kernel inside a copy at a time of the caller's choosing: the usual
    # building block of kernel exploits' races.
    "userfaultfd",
    # io_uring: a second system-call interface the filter cannot see into (its operations run
    # from a ring, not as calls), and a long record of kernel escapes; Docker's default profile
    # denies it too. libuv (node) and others fall back to their thread pools on EPERM.
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # Obsolete interfaces, kept by the kernel for old binaries only.
    "vhangup", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
)  # fmt: skip

#: ``clone`` with any of these flags fails with EPERM (plain forks and threads pass). CLONE_NEWTIME
#: is absent: in ``clone`` its bit is part of the exit signal, so it is reachable only through
#: ``unshare`` and ``clone3``, both denied.
CLONE_NAMESPACE_FLAGS: dict[str, int] = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

#: Calls that fail with ENOSYS: ``clone3`` (its flags are out of the filter's reach; glibc and
#: libuv fall back to ``clone`` on ENOSYS).
UNIMPLEMENTED_SYSCALLS: tuple[str, ...] = ("clone3",)

#: ``personality`` values that pass: PER_LINUX, PER_LINUX32, UNAME26 (alone and with PER_LINUX32)
#: and 0xffffffff (a query). Others can switch off address space randomisation
#: (ADDR_NO_RANDOMIZE) or make every readable page executable (READ_IMPLIES_EXEC).
PERSONALITY_ALLOWED: tuple[int, ...] = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
#: The flag bits the allowed values are made of (0xffffffff aside).
_PERSONALITY_BITS = 0x8 | 0x20000
_PERSONALITY_QUERY = 0xFFFFFFFF

#: Architectures the kernel runs beside the native one: each gets the same rules.
_COMPAT_ARCHES: dict[str, tuple[str, ...]] = {
    "X86_64": ("X86", "X32"),
    "AARCH64": ("ARM",),
    "S390X": ("S390",),
}
#: Where ``clone`` takes its flags: the first argument, except on s390 (the second).
_CLONE_FLAGS_ARG: dict[str, int] = {"S390X": 1, "S390": 1}


def _binding() -> Any:
    """The ``pyseccomp`` module (it loads libseccomp when imported).

    Raises:
        SandboxError: the binding or libseccomp is missing or unusable.
    """
    try:
        import pyseccomp
    except ImportError as exc:
        raise SandboxError(f"the seccomp binding is not installed (pip install pyseccomp): {exc}") from exc
    except (OSError, RuntimeError, AttributeError) as exc:
        raise SandboxError(f"libseccomp cannot be loaded (apt-get install libseccomp2): {exc}") from exc
    return pyseccomp


def _arch_name(seccomp: Any, arch: int) -> str:
    names = [name for name, value in vars(seccomp.Arch).items() if value == arch and name != "NATIVE"]
    return names[0] if names else f"0x{arch:x}"


@functools.cache
def compile_filter() -> bytes:
    """The filter as a BPF program (``struct sock_filter`` array), as ``bwrap --seccomp`` reads it.

    Raises:
        SandboxError: no binding or libseccomp, or libseccomp rejects a rule (an unknown call).
    """
    seccomp = _binding()
    try:
        syscalls = seccomp.SyscallFilter(seccomp.ALLOW)
        native = _arch_name(seccomp, seccomp.system_arch())
        syscalls.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
        for compat in _COMPAT_ARCHES.get(native, ()):
            syscalls.add_arch(getattr(seccomp.Arch, compat))
        eperm, enosys = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
        for name in DENIED_SYSCALLS:
            _add(seccomp, syscalls, eperm, name)
        for name in UNIMPLEMENTED_SYSCALLS:
            _add(seccomp, syscalls, enosys, name)
        flags_arg = _CLONE_FLAGS_ARG.get(native, 0)
        for flag in CLONE_NAMESPACE_FLAGS.values():
            _add(seccomp, syscalls, eperm, "clone", seccomp.Arg(flags_arg, seccomp.MASKED_EQ, flag, flag))
        for rule in _personality_rules(seccomp):
            _add(seccomp, syscalls, eperm, "personality", rule)
        with tempfile.TemporaryFile() as out:
            syscalls.export_bpf(out)
            out.seek(0)
            program = bytes(out.read())
    except OSError as exc:
        raise SandboxError(f"libseccomp cannot build the sandbox's filter: {exc}") from exc
    return program


def _add(seccomp: Any, syscalls: Any, action: int, name: str, *args: Any) -> None:
    if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) == -1:  # __NR_SCMP_ERROR
        raise SandboxError(f"libseccomp does not know the system call {name!r} (too old a libseccomp?)")
    syscalls.add_rule(action, name, *args)


def _personality_rules(seccomp: Any) -> list[Any]:
    """Conditions (one per rule) that together match every value not in `PERSONALITY_ALLOWED`.

    A rule may test an argument once, so "not one of five values" is spelt in bits: above 32
    bits; bit 31 clear and a bit other than the allowed flags set; bit 31 set and any lower bit
    clear (every value from 0x80000000 up but the query 0xffffffff).
    """
    top = 1 << 31
    rules = [seccomp.Arg(0, seccomp.GT, _PERSONALITY_QUERY)]
    for bit in (1 << i for i in range(31)):
        if not bit & _PERSONALITY_BITS:
            rules.append(seccomp.Arg(0, seccomp.MASKED_EQ, top | bit, bit))
        rules.append(seccomp.Arg(0, seccomp.MASKED_EQ, top | bit, top))
    return rules


def filter_file(directory: Path) -> Path:
    """Write the filter into ``directory`` (once; atomically) and return the file's path.

    The directory is created if needed and made 0755, the file 0644: the
    process that opens it (the launch preamble) may run as another uid than
    the gateway, and a filter is no secret.

    Raises:
        SandboxError: the filter cannot be compiled or written.
    """
    program = compile_filter()
    path = directory / f"seccomp-{hashlib.sha256(program).hexdigest()[:16]}.bpf"
    try:
        if path.is_file() and path.read_bytes() == program and path.stat().st_mode & 0o777 == 0o644:
            return path
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        fd, temporary = tempfile.mkstemp(prefix=".seccomp-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(program)
                os.fchmod(out.fileno(), 0o644)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise SandboxError(f"cannot write the seccomp filter into {directory}: {exc}") from exc
    return path


@functools.cache
def private_directory() -> Path:
    """A directory of this process's own for the filter when there is no state directory.

    Created once per process (0755, under the system's temporary directory) and removed at exit.
    """
    directory = Path(tempfile.mkdtemp(prefix="vsm-mcp-seccomp-"))
    directory.chmod(0o755)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def seccomp_problem() -> str:
    """``""`` when the binding and libseccomp load and the filter compiles, else why not."""
    try:
        compile_filter()
    except SandboxError as exc:
        return str(exc)
    return ""
