"""HTTP calls to allow-listed hosts only, safe against server-side request forgery (SSRF).

A webhook URL is data (from settings or the API), so the call must not become a way to reach the
worker's neighbours: the metadata service at 169.254.169.254, an admin port on localhost, a
database on the private network. The rules:

* The host must match ``[webhooks].allowed_hosts``: an exact name (or IP literal), or a
  wildcard ``*.example.com`` (subdomains) or ``*`` (any host). Nothing else is even resolved.
* The host is resolved once and every address is checked. A host matched only by a wildcard
  must resolve to public addresses: private, loopback, link-local, multicast, reserved and
  unspecified addresses are refused (also when disguised as IPv4-mapped IPv6). A host listed by
  its exact name is trusted with internal addresses — that is how an internal service is allowed.
* The connection goes to the address that was checked (the socket is opened to the IP; Host
  header, SNI and certificate check still use the name), so a second DNS answer cannot swap in
  another address between check and use (DNS rebinding, a time-of-check/time-of-use race).
* Redirects are not followed: a 3xx is just a status, unexpected unless asked for.

5xx answers, timeouts and connection failures raise `WebhookUnavailable` (retried by the task);
other unexpected statuses raise `WebhookFailed`; a refused URL raises `WebhookRefused` before any
network traffic.
"""

from __future__ import annotations

import http.client
import ipaddress
import json as jsonlib
import socket
import ssl
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from scheduling.errors import WebhookFailed, WebhookRefused, WebhookUnavailable

__all__ = [
    "ALLOWED_METHODS",
    "Resolver",
    "WebhookResponse",
    "call",
    "check_address",
    "host_permission",
    "resolve_host",
]

ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
MAX_BODY_BYTES = 64 * 1024
"""How much of an answer is read (kept for the error message); the rest is discarded."""
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
IETF_PROTOCOL_ASSIGNMENTS = ipaddress.IPv4Network("192.0.0.0/24")
GLOBAL_PROTOCOL_ADDRESSES = frozenset(map(ipaddress.IPv4Address, ("192.0.0.9", "192.0.0.10")))
"""The only globally reachable addresses of 192.0.0.0/24 (IANA); Python 3.11 calls all global."""

Resolver = Callable[[str, int], list[str]]
"""(host, port) → IP addresses as strings; injectable so tests can pretend DNS answers."""
Permission = Literal["exact", "wildcard"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    address: str
    elapsed: float
    body: bytes


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise WebhookUnavailable(f"cannot resolve {host!r}: {error.strerror}") from error
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def host_permission(host: str, allowed_hosts: Collection[str]) -> Permission | None:
    """How ``host`` is allowed: listed by its exact name, only by a wildcard, or not at all."""
    name = _normal_host(host)
    patterns = [_normal_host(pattern) for pattern in allowed_hosts]
    if name in patterns:
        return "exact"
    for pattern in patterns:
        if pattern == "*":
            return "wildcard"
        if pattern.startswith("*.") and name.endswith(pattern[1:]) and name != pattern[2:]:
            return "wildcard"
    return None


def _effective(address: IPAddress) -> IPAddress:
    """The IPv4 address hidden in an IPv4-mapped, 6to4 or NAT64 IPv6 address, else the address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64_PREFIX:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def check_address(address: str) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is)."""
    try:
        parsed = _effective(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return f"{address!r} is not an IP address"
    for label, flag in (
        ("unspecified", parsed.is_unspecified),
        ("loopback", parsed.is_loopback),
        ("link-local", parsed.is_link_local),
        ("multicast", parsed.is_multicast),
        ("private", parsed.is_private),
        ("reserved", parsed.is_reserved),
    ):
        if flag:
            return f"{parsed} is a {label} address"
    if not parsed.is_global or (
        parsed in IETF_PROTOCOL_ASSIGNMENTS and parsed not in GLOBAL_PROTOCOL_ADDRESSES
    ):
        return f"{parsed} is not a public address"
    return None


def _checked_addresses(
    host: str, port: int, permission: Permission, resolver: Resolver
) -> list[str]:
    try:
        literal: IPAddress | None = ipaddress.ip_address(_normal_host(host))
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else resolver(host, port)
    if not addresses:
        raise WebhookUnavailable(f"{host!r} resolved to no address")
    if permission == "wildcard":
        for address in addresses:
            problem = check_address(address)
            if problem is not None:
                raise WebhookRefused(
                    f"{host!r} resolves to {address}: {problem}; only hosts listed by their exact "
                    "name in [webhooks].allowed_hosts may have internal addresses"
                )
    return addresses


def _pinned(address: str) -> Callable[..., socket.socket]:
    """A replacement for ``socket.create_connection`` that ignores the host it is given."""

    def create_connection(
        host_port: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        return socket.create_connection((address, host_port[1]), timeout, source_address)

    return create_connection


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to one checked IP address while speaking to the host by name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        # http.client's own seam (an instance attribute, set in __init__) for the socket.
        self._create_connection = _pinned(address)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same for TLS: the socket goes to the address; SNI and the certificate use the name."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._create_connection = _pinned(address)


def call(
    url: str,
    *,
    allowed_hosts: Collection[str],
    method: str = "POST",
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    expect_status: Sequence[int] | None = None,
    resolver: Resolver = resolve_host,
    ssl_context: ssl.SSLContext | None = None,
) -> WebhookResponse:
    """Make one HTTP call under the rules above; return the response if its status is expected.

    ``expect_status`` None means any 2xx. ``timeout`` bounds the connect and each read.
    """
    method = method.upper()
    if method not in ALLOWED_METHODS:
        raise WebhookRefused(
            f"method {method!r} is not one of {', '.join(sorted(ALLOWED_METHODS))}"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"{url!r} is not an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("credentials in the URL are not allowed; send them in a header")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise WebhookRefused(f"{url!r}: {error}") from None
    permission = host_permission(host, allowed_hosts)
    if permission is None:
        raise WebhookRefused(f"host {host!r} is not in [webhooks].allowed_hosts")
    addresses = _checked_addresses(host, port, permission, resolver)

    body = None
    sent_headers = {"User-Agent": "periodic-webhook/1", **(headers or {})}
    if json is not None:
        body = jsonlib.dumps(json).encode()
        sent_headers.setdefault("Content-Type", "application/json")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query

    last_error: OSError | None = None
    for address in addresses:
        started = time.monotonic()
        connection = _connection(parts.scheme, host, port, address, timeout, ssl_context)
        try:
            try:
                connection.connect()
            except ssl.SSLError as error:
                raise WebhookFailed(f"TLS with {host} ({address}) failed: {error}") from error
            except OSError as error:  # refused, unreachable, connect timeout: try the next one
                last_error = error
                continue
            try:
                connection.request(method, target, body=body, headers=sent_headers)
                answer = connection.getresponse()
                content = answer.read(MAX_BODY_BYTES)
            except (OSError, http.client.HTTPException) as error:
                raise WebhookUnavailable(f"{method} {host} ({address}): {error!r}") from error
        finally:
            connection.close()
        response = WebhookResponse(answer.status, address, time.monotonic() - started, content)
        return _judge(response, method, host, expect_status)
    raise WebhookUnavailable(f"{method} {host}: no address accepted a connection ({last_error!r})")


def _connection(
    scheme: str,
    host: str,
    port: int,
    address: str,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> http.client.HTTPConnection:
    if scheme == "https":
        context = ssl_context or ssl.create_default_context()
        return _PinnedHTTPSConnection(host, port, address, timeout, context)
    return _PinnedHTTPConnection(host, port, address, timeout)


def _judge(
    response: WebhookResponse, method: str, host: str, expect_status: Sequence[int] | None
) -> WebhookResponse:
    expected = (
        200 <= response.status <= 299 if expect_status is None else response.status in expect_status
    )
    if expected:
        return response
    excerpt = response.body[:200].decode("utf-8", errors="replace")
    message = f"{method} {host} answered {response.status}: {excerpt!r}"
    if response.status >= 500:
        raise WebhookUnavailable(message)
    raise WebhookFailed(message)
