"""Who is calling: every request but /health is authenticated here, before any route runs.

Once any API key is configured, a request needs one: `Authorization: Bearer <key>`, `X-API-Key: <key>`, or the
dashboard's cookie (set by POST /dashboard/login; HttpOnly, SameSite=Strict, so another site can neither read it
nor make the browser send it). The key decides the tenant. With no key configured the service is keyless and
serves one tenant, the default one, and says so at start-up.

This is a pure ASGI middleware rather than a route dependency so that nothing escapes it: the OpenAPI
document, the docs pages and unknown paths answer 401 too, and a caller without a key learns nothing.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from snapdex.keys import ApiKey, KeyStore

OPEN_PATHS = {"/health"}  # liveness probes carry no key
LOGIN_PATH = "/dashboard/login"
COOKIE = "snapdex_key"


@dataclass(frozen=True)
class Principal:
    tenant: str | None  # None: the operator
    key_id: str | None  # None: keyless
    scope: str = "admin"  # of a tenant's key: admin | service | user (snapdex/keys.py); keyless: admin
    user: str | None = None  # a user key's fixed principal
    groups: tuple[str, ...] = ()

    @property
    def operator(self) -> bool:
        return self.tenant is None

    @property
    def rate_key(self) -> str:
        """What a rate limit counts against: the key, or the tenant when keyless."""
        return f"key {self.key_id}" if self.key_id else f"tenant {self.tenant}"

    @classmethod
    def of(cls, key: ApiKey) -> "Principal":
        return cls(key.tenant, key.id, key.scope, key.user, key.groups)


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    if b"x-api-key" in headers:
        return headers[b"x-api-key"].decode("latin-1").strip() or None
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


class AuthMiddleware:
    def __init__(self, app, default_tenant: str) -> None:
        self.app = app
        self.default_tenant = default_tenant

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        keys: KeyStore = scope["app"].state.keys
        # An SQLite read at most every few seconds per key (KeyStore caches): cheap enough to stay inline.
        if not keys.required():
            principal = Principal(self.default_tenant, None)
        elif scope["path"] == LOGIN_PATH and scope["method"] == "POST":
            principal = None  # the login form checks the key it is given
        else:
            headers = dict(scope.get("headers") or [])
            key = presented_key(headers)
            found = keys.find(key) if key else None
            if found is None:
                return await _unauthorized(scope, send, "no API key" if key is None else "this API key is not valid")
            principal = Principal.of(found)
        scope.setdefault("state", {})["principal"] = principal
        return await self.app(scope, receive, send)


async def _unauthorized(scope, send, why: str) -> None:
    wants_page = scope["method"] == "GET" and scope["path"] == "/dashboard"
    if wants_page:  # a browser: the login form, which posts the key once and gets the cookie
        body, media = login_page(why if why != "no API key" else "").encode(), b"text/html; charset=utf-8"
    else:
        detail = (f"{why}: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
                  "(`snapdex keys create --tenant NAME` makes one)")
        body, media = json.dumps({"detail": detail}).encode(), b"application/json"
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="snapdex"'), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


def login_page(error: str = "") -> str:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>snapdex recall · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#1f2933}}
input{{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}}button{{margin-top:.75rem;padding:.5rem 1rem;font:inherit}}
.error{{color:#b42318}}</style></head>
<body><h1>snapdex recall</h1>{message}
<form method="post" action="{LOGIN_PATH}"><label for="key">Your tenant's API key</label>
<input id="key" name="key" type="password" autocomplete="off" required autofocus>
<button type="submit">Open the dashboard</button></form></body></html>"""
