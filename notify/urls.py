"""Where the service may send a request on a tenant's behalf. A URL that resolves to loopback, link-local (cloud
metadata at 169.254.169.254), private or otherwise non-public addresses is refused unless the operator allows it:
the service would otherwise reach, on a tenant's request, into the network it runs in. Webhooks are checked when
they are registered and again before every attempt (DNS may change in between); sources (sources/) before every
request of a sync, each redirect included."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from errors import InvalidInput


def _split(url: str):
    try:
        return urlsplit(url)
    except ValueError as e:  # an unclosed [IPv6] host, a host that NFKC turns into a delimiter: said as urllib says it
        raise InvalidInput(str(e)) from e


def check_public_url(url: str, allow_private: bool, what: str, setting: str) -> str:
    """The URL if it may be reached; InvalidInput saying why not otherwise (`what` names the URL in the message,
    `setting` the operator's switch that allows private addresses)."""
    parts = _split(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{what} {url!r} must be an absolute http:// or https:// URL with a host")
    if allow_private:
        return url
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError) as e:
        raise InvalidInput(f"{what} host {parts.hostname!r} does not resolve: {e}") from e
    for *_, sockaddr in infos:
        addr = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not addr.is_global or addr.is_multicast:
            raise InvalidInput(f"{what} host {parts.hostname!r} resolves to {addr}, a loopback, link-local or "
                               f"private address; allowed: public addresses only (an operator may allow private "
                               f"ones with {setting}=true)")
    return url


def check_webhook_url(url: str, allow_private: bool) -> str:
    """The URL if it may be used; InvalidInput saying why not otherwise."""
    parts = _split(url)
    if parts.scheme in ("http", "https") and (parts.username or parts.password):
        raise InvalidInput("webhook url must not carry credentials (user:password@); authenticate receivers with the "
                           "signature instead")
    return check_public_url(url, allow_private, "webhook url", "SNAPDEX_WEBHOOK_ALLOW_PRIVATE")
