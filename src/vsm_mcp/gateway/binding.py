"""Where the HTTP face listens and which ``Host`` / ``Origin`` it answers: `HttpListen`.

Loopback by default. A bind beyond this machine (any address that is not
loopback, ``0.0.0.0`` and ``::`` included) needs ``public``: there the bearer
token is the only guard, and `HttpListen.notices` says so at start.

``Host`` and ``Origin`` are checked on every bind by the SDK's DNS-rebinding
protection (`TransportSecuritySettings`, built by `security_settings` for the
bound port; the SDK answers 421 to a foreign ``Host``, 403 to a foreign
``Origin``):

* ``Host``: the names this face is reached by, with any port or none: the
  loopback names (``127.0.0.1``, ``localhost``, ``[::1]``) when it listens on
  loopback or on every interface, the bound address itself, this machine's
  host name on a wildcard bind, and every ``allow_hosts`` name. The name is
  what a DNS-rebinding page cannot fake (its ``Host`` is its own domain);
  the port may differ behind a port forward;
* ``Origin``: absent (not a browser), the face's own origin (same scheme,
  one of those names, the bound port), or one listed in ``allow_origins``
  exactly. Anything else is a page of another site.

`bind_socket` binds before the app is built, so the settings know the port
(``HOST:0`` picks a free one) and a bind failure is a one-line `ConfigError`.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecuritySettings

from vsm_mcp.errors import ConfigError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARDS = ("0.0.0.0", "::", "")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authority(host: str) -> str:
    """A host as it appears in ``Host`` and origins: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True, slots=True)
class HttpListen:
    """The HTTP face's address, exposure and TLS (``serve --http`` / ``up`` flags)."""

    host: str
    port: int
    public: bool = False
    allow_hosts: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"

    @property
    def wildcard(self) -> bool:
        return self.host in _WILDCARDS

    def check(self) -> None:
        """Refuse what must not start, each with its one-line fix.

        Raises:
            ConfigError: a bind beyond loopback without ``public``; half a TLS pair or an unusable one;
                an ``allow_origins`` entry that is not ``scheme://host[:port]``.
        """
        where = f"{_authority(self.host) or '*'}:{self.port}"
        if not is_loopback(self.host) and not self.public:
            reach = "every interface" if self.wildcard else "beyond this machine"
            raise ConfigError(
                f"refusing to listen on {where} ({reach}) without --public: the bearer token would be the "
                f"only guard. Use 127.0.0.1:{self.port}, or add --public (and --allow-host NAME for each "
                "name clients use)"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together: give both, or neither")
        if self.tls_cert is not None and self.tls_key is not None:
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    self.tls_cert, self.tls_key
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"--tls-cert/--tls-key: cannot load {self.tls_cert} with {self.tls_key}: {exc}"
                ) from None
        for origin in self.allow_origins:
            parts = urlsplit(origin)
            if parts.scheme not in _DEFAULT_PORTS or not parts.netloc or parts.path not in ("", "/"):
                raise ConfigError(
                    f"--allow-origin expects scheme://host[:port] (e.g. https://app.example), got {origin!r}"
                )

    def host_names(self) -> list[str]:
        """The names accepted in ``Host`` (see the module docstring), without ports."""
        names: list[str] = []
        if is_loopback(self.host) or self.wildcard:
            names.extend(LOOPBACK_NAMES)
        if self.wildcard:
            names.append(socket.gethostname())
        elif self.host:
            names.append(_authority(self.host))
        names.extend(_authority(h) for h in self.allow_hosts)
        return list(dict.fromkeys(names))

    def security_settings(self, port: int) -> TransportSecuritySettings:
        """The SDK's DNS-rebinding settings for this face bound at ``port``."""
        names = self.host_names()
        own = [f"{self.scheme}://{name}:{port}" for name in names]
        if port == _DEFAULT_PORTS[self.scheme]:
            own.extend(f"{self.scheme}://{name}" for name in names)
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[pattern for name in names for pattern in (name, f"{name}:*")],
            allowed_origins=[*own, *(o.rstrip("/") for o in self.allow_origins)],
        )

    def notices(self, port: int) -> list[str]:
        """What an operator must know at start: a public face's only guard, clear text, accepted names."""
        if not self.public or is_loopback(self.host):
            return []
        lines = [
            f"PUBLIC: listening on {_authority(self.host) or '*'}:{port}; the bearer token is the only guard "
            "(`vsm-mcp token create NAME --scope call` for each client, `token revoke NAME` when one leaks)",
            f"  Host names accepted: {', '.join(self.host_names())} (--allow-host NAME adds one)",
        ]
        if self.tls_cert is None:
            lines.append("  no TLS: tokens cross the network in clear text (--tls-cert FILE --tls-key FILE)")
        return lines


def bind_socket(listen: HttpListen) -> socket.socket:
    """A listening-ready TCP socket at ``listen``'s address (port 0: a free one).

    Raises:
        ConfigError: the address cannot be bound (in use, not ours, unknown name).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            listen.host or None, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc} "
            "(another program has it? choose another with --http HOST:PORT; port 0 picks a free one)"
        ) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts rebind at once
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc} "
            "(another program has it? choose another with --http HOST:PORT; port 0 picks a free one)"
        ) from exc
    return sock
