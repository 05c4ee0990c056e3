"""Calls served without a key must not come from a web page: the Host and Origin checks.

In the ``loopback`` and ``open`` auth modes (and ``auto`` before the first key) the server answers
``/v1`` and ``/models`` calls that carry no key, trusting the network they come from. A browser on
that network is such a client too, on behalf of any page its user opens:

- DNS rebinding: a page on ``http://evil.example:8000`` points its own name at 127.0.0.1 and reads
  the answers as its own origin's. Its requests still name the page's host in ``Host``, so a call
  served without a key must name a host this server answers to: else 421 ``host_not_allowed``.
- Cross-site posts: a page on any origin may POST a form, a multipart form or a text/plain body
  without a CORS preflight. The browser sends it, and the model runs, even though the page cannot
  read the answer. So a POST, PUT, PATCH or DELETE served without a key must come from this
  server's own origin, or from one that ``cors_origins`` lets browsers call from: else 403
  ``cross_origin_refused``. Clients that send no ``Origin`` (curl, the SDKs) are not browsers.

Both checks guard the access that comes without a key, and only that. A page cannot make a browser
send a key, so calls with a valid key skip them, as does every call in ``keys`` mode (it is refused
401 first): reverse proxies that pass on their own public name and probes or scrapers that name a
pod by its IP keep working where keys are required. ``/health``, ``/ready``, ``/metrics`` and
``/openapi.json`` are never checked; they serve no model and read no usage.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, g, request

from ..errors import APIError
from ..settings import Settings
from ._common import state
from .admission import is_api_path

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A Host header as RFC 9110 allows it: a name or an IPv4 address, or an IPv6 address in brackets, and a port.
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9_.-]+))(?::(?P<port>[0-9]{1,5}))?")


@dataclass(frozen=True)
class HostPolicy:
    """The host names a call without a key may name, and the origins it may come from."""

    names: frozenset[str]  # exact names: the configured ones, the server's own address and hostname
    suffixes: tuple[str, ...]  # ".example.com" for a configured "*.example.com"
    any_host: bool  # "*" in allowed_hosts
    cors_origins: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        configured = settings.allowed_hosts
        names = {h for h in configured if not h.startswith("*")}
        names |= {settings.host.lower().strip("[]").rstrip("."), socket.gethostname().lower().rstrip(".")}
        return cls(names=frozenset(names), suffixes=tuple(h[1:] for h in configured if h.startswith("*.")),
                   any_host="*" in configured, cors_origins=settings.cors_origins)

    def allows_host(self, name: str) -> bool:
        """Whether a call without a key may name this host (a Host header's name, without its port).

        Loopback names and any IP address are allowed: a rebinding page reaches the server under its
        own domain name, while a browser that names an address got its page from that address.
        """
        if self.any_host or name == "localhost" or name in self.names or _is_ip(name):
            return True
        return any(name.endswith(suffix) for suffix in self.suffixes)

    def allows_origin(self, origin: str, host: str | None) -> bool:
        """Whether a browser on `origin` may change state here without a key: CORS lets it call, or
        it is the origin of the `host` the request names (the same scheme's port when Host has none)."""
        if "*" in self.cors_origins or origin in self.cors_origins:
            return True
        try:
            parts = urlsplit(origin)
            origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        target = _split_host(host or "")
        if parts.hostname is None or origin_port is None or target is None:
            return False  # "null" (a sandboxed frame, a file), or no Host to compare with
        name, port = target
        return parts.hostname.rstrip(".") == name and origin_port == (port or _DEFAULT_PORTS[parts.scheme])


def init_app(app: Flask, settings: Settings) -> None:
    """Check every call served without a key. Register it after accounting, whose hook says who called."""
    policy = HostPolicy.from_settings(settings)
    app.extensions["maas_browsers"] = policy
    app.before_request(lambda: check(policy))


def check(policy: HostPolicy) -> None:
    """421 for a foreign Host, 403 for a state change from another origin; only on calls served
    without a key (accounting's hook set `g.maas_account` to the valid key's record, or None)."""
    if request.method == "OPTIONS" or g.get("maas_account") is not None:
        return
    if not is_api_path(request.path, state().api_prefixes):
        return
    host = request.headers.get("Host")
    target = _split_host(host) if host is not None else None
    if host is not None and (target is None or not policy.allows_host(target[0])):
        raise APIError(f"this server does not answer calls without an API key for the host {host!r}: a web page "
                       "can point its own domain at this server (DNS rebinding). To serve calls without a key "
                       "under this name, add it to allowed_hosts (MAAS_ALLOWED_HOSTS, comma-separated; * for "
                       "any), or send an API key", status=421, code="host_not_allowed")
    if request.method not in STATE_CHANGING:
        return
    origin = request.headers.get("Origin")
    cross_site = request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"
    if (origin is not None and not policy.allows_origin(origin, host)) or (origin is None and cross_site):
        raise APIError(f"a web page on {origin or 'another site'} may not call this server without an API key "
                       "(a cross-site request). To let browsers on that origin call it, list the origin in "
                       "cors_origins (MAAS_CORS_ORIGINS), or send an API key", status=403,
                       code="cross_origin_refused")


def _split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header's name (lower case, no brackets or final dot) and port; None when it is malformed."""
    found = _HOST.fullmatch(value.strip().lower())
    if found is None:
        return None
    port = int(found["port"]) if found["port"] else None
    return (found["v6"] or found["name"]).rstrip("."), port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
