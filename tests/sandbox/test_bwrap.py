"""The bwrap command line (pure): mount order, namespaces, environment hygiene."""

from __future__ import annotations

from pathlib import Path

from vsm_mcp.sandbox.bwrap import Mounts, SystemLink, bwrap_argv, mount_args, namespace_args

P = Path


def test_the_root_is_empty_and_only_the_allow_list_is_bound() -> None:
    mounts = Mounts(
        system=(P("/usr"), P("/etc/ssl")),
        links=(SystemLink(P("/bin"), "usr/bin"),),
        private_tmp=("/tmp", "/var/tmp"),
        read=(P("/srv/app"),),
        writable=(P("/srv/app/home"),),
    )
    assert mount_args(mounts) == [
        *("--symlink", "usr/bin", "/bin", "--dev", "/dev", "--proc", "/proc"),
        *("--perms", "1777", "--tmpfs", "/tmp"),
        # /var itself is made, empty and walkable, for the private /var/tmp: /var/lib stays absent
        *("--perms", "0755", "--dir", "/var", "--perms", "1777", "--tmpfs", "/var/tmp"),
        *("--ro-bind", "/usr", "/usr"),
        *("--perms", "0755", "--dir", "/etc", "--ro-bind", "/etc/ssl", "/etc/ssl"),
        *("--perms", "0755", "--dir", "/srv", "--ro-bind", "/srv/app", "/srv/app"),
        *("--bind", "/srv/app/home", "/srv/app/home"),
        # the root tmpfs ends read-only: nothing can be created beside the binds
        *("--remount-ro", "/"),
    ]


def test_deeper_mounts_cover_shallower_ones_and_hidden_places_end_read_only() -> None:
    mounts = Mounts(
        hidden=(P("/root/.local/state/vsm"),),
        read=(P("/root/.local"),),
        writable=(P("/root/.local/state/vsm/servers/a"),),
        private_tmp=("/tmp",),
    )
    assert mount_args(mounts) == [
        *("--dev", "/dev", "--proc", "/proc"),
        *("--perms", "1777", "--tmpfs", "/tmp"),
        *("--perms", "0755", "--dir", "/root"),
        *("--ro-bind", "/root/.local", "/root/.local"),
        # the bind of ~/.local showed the state dir: hidden again, deeper
        *("--perms", "0755", "--tmpfs", "/root/.local/state/vsm"),
        *("--perms", "0755", "--dir", "/root/.local/state/vsm/servers"),
        *("--bind", "/root/.local/state/vsm/servers/a", "/root/.local/state/vsm/servers/a"),
        *("--remount-ro", "/root/.local/state/vsm", "--remount-ro", "/"),
    ]


def test_a_path_both_hidden_and_bound_is_bound() -> None:
    args = mount_args(Mounts(hidden=(P("/srv"),), read=(), writable=(P("/srv"),), private_tmp=()))
    assert args[-5:] == ["--bind", "/srv", "/srv", "--remount-ro", "/"]
    assert args.count("--remount-ro") == 1


def test_namespaces_per_shape() -> None:
    assert namespace_args(network=False, privileged=False) == ["--unshare-all"]
    assert namespace_args(network=True, privileged=False) == ["--unshare-all", "--share-net"]
    root = namespace_args(network=False, privileged=True)
    assert root == [
        *("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net"),
        *("--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"),
        *("--cap-add", "CAP_SETPCAP"),
    ]
    assert "--unshare-net" not in namespace_args(network=True, privileged=True)


def test_argv_unsets_launcher_defaults_and_never_carries_env_values() -> None:
    argv = bwrap_argv(
        "/usr/bin/bwrap",
        Mounts(hidden=(), read=(), writable=(P("/p"),), private_tmp=()),
        network=False,
        privileged=False,
        chdir=P("/p"),
        env={"PATH": "/usr/bin", "HOME": "/p/home", "TOKEN": "s3cret"},
        command=["/usr/bin/server", "--flag"],
    )
    assert "s3cret" not in " ".join(argv)
    tail = argv[argv.index("--die-with-parent") :]
    assert tail == [
        "--die-with-parent",
        *("--unsetenv", "LOGNAME", "--unsetenv", "SHELL", "--unsetenv", "TERM", "--unsetenv", "USER"),
        *("--chdir", "/p", "--", "/usr/bin/server", "--flag"),
    ]
    assert "--new-session" not in argv


def test_every_directory_made_on_a_tmpfs_for_a_mount_point_is_walkable() -> None:
    args = mount_args(Mounts(read=(P("/root/.pyenv/versions/3.11"),), private_tmp=()))
    assert args[args.index("/proc") + 1 :] == [
        *("--perms", "0755", "--dir", "/root"),
        *("--perms", "0755", "--dir", "/root/.pyenv"),
        *("--perms", "0755", "--dir", "/root/.pyenv/versions"),
        *("--ro-bind", "/root/.pyenv/versions/3.11", "/root/.pyenv/versions/3.11"),
        *("--remount-ro", "/"),
    ]
