"""Where a webhook may point. A URL that resolves to loopback, link-local (cloud metadata at 169.254.169.254),
private or otherwise non-public addresses is refused unless the operator allows it: the service would otherwise
POST, on a tenant's request, into the network it runs in. Checked when the webhook is registered and again before
every attempt (DNS may change in between)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def check_webhook_url(url: str, allow_private: bool) -> str:
    """The URL if it may be used; ValueError saying why not otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook url {url!r} must be an absolute http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("webhook url must not carry credentials (user:password@); authenticate receivers with the "
                         "signature instead")
    if allow_private:
        return url
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError) as e:
        raise ValueError(f"webhook url host {parts.hostname!r} does not resolve: {e}") from e
    for *_, sockaddr in infos:
        addr = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not addr.is_global or addr.is_multicast:
            raise ValueError(f"webhook url host {parts.hostname!r} resolves to {addr}, a loopback, link-local or "
                             "private address; allowed: public addresses only (an operator may allow private "
                             "ones with SNAPDEX_WEBHOOK_ALLOW_PRIVATE=true)")
    return url
