"""The recall dashboard: one HTML page per tenant with the overview embedded, and its static assets.

Everything the page needs is served from here, including the plotly.min.js bundled with the `plotly` package:
the dashboard works offline, with no CDN and no request leaving the service.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated

import plotly
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import COOKIE, LOGIN_PATH, login_page
from api.deps import PrincipalDep, RuntimeDep, tenant_of
from api.routes.evaluation import overview
from api.schemas.common import errors, json_errors
from api.strict import StrictRoute
from snapdex.runtime import Runtime

router = APIRouter(tags=["dashboard"], responses=errors(404, 422), route_class=StrictRoute)

# name -> media type; anything else is a 404 (no path from the request ever reaches the file system).
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8",
          "plotly.min.js": "text/javascript; charset=utf-8"}
LONG_CACHE = "public, max-age=31536000, immutable"  # the page asks for them with ?v=<version>
SIGN_IN = {"description": "no valid API key: the sign-in form", "content": {"text/html": {"schema": {"type": "string"}}}}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    media_type: str


def _source(name: str):
    if name == "plotly.min.js":
        return resources.files("plotly") / "package_data" / "plotly.min.js"
    return resources.files("api") / "dashboard" / name


@lru_cache(maxsize=None)
def _asset(name: str) -> Asset:
    """Read and gzip once per process: plotly.min.js is ~4.8 MB, ~1.4 MB compressed."""
    body = _source(name).read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:16]
    return Asset(body, gzip.compress(body, compresslevel=6, mtime=0), f'"{digest}"', ASSETS[name])


@lru_cache(maxsize=None)
def _template() -> str:
    """index.html with its asset versions filled in: plotly's by its package version, ours by content."""
    html = (resources.files("api") / "dashboard" / "index.html").read_text(encoding="utf-8")
    return (html.replace("{{plotly_version}}", plotly.__version__)
            .replace("{{js_version}}", _asset("dashboard.js").etag.strip('"'))
            .replace("{{css_version}}", _asset("dashboard.css").etag.strip('"')))


def render(rt: Runtime, tenant: str, viewer: str = "admin") -> str:
    # Inside <script type="application/json"> the only way out is "</script"; "<!--" could open a
    # double-escaped script state. JSON text can hold "<" only inside strings, where both escapes are valid.
    data = overview(rt, tenant, viewer).model_dump_json().replace("</", "<\\/").replace("<!--", "<\\u0021--")
    return _template().replace("{{tenant}}", tenant).replace("{{overview}}", data)


@router.get("/dashboard", response_class=HTMLResponse,
            summary="The recall dashboard: metrics per snapshot, gate verdicts, promote, per-query drill-down",
            responses={**json_errors(403, 404, 422), 401: SIGN_IN})
async def dashboard(rt: RuntimeDep, principal: PrincipalDep,
                    tenant: Annotated[str | None, Query(description="default: the API key's tenant")] = None
                    ) -> HTMLResponse:
    # Admin keys, and user keys: the same aggregates, a drill-down naming only what the user may read, and none of
    # the admin's actions or cards (promote, profiles, webhooks).
    html = await run_in_threadpool(render, rt, tenant_of(principal, tenant, scopes=("admin", "user")),
                                   principal.scope)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.post(LOGIN_PATH, response_class=HTMLResponse, summary="Sign in to the dashboard with an API key (sets a cookie)",
             responses={**json_errors(400, 403, 404, 422), 303: {"description": "signed in: to the dashboard"}, 401: SIGN_IN})
async def login(request: Request, key: Annotated[str, Form(max_length=512)]) -> Response:
    keys = request.app.state.keys
    if not keys.required():  # keyless: nothing to sign in to
        return RedirectResponse("/dashboard", status_code=303)
    found = keys.find(key.strip())
    if found is None or found.operator:
        page = login_page("That key is not valid." if found is None else "An operator key has no dashboard.")
        return HTMLResponse(page, status_code=401, headers={"Cache-Control": "no-store"})
    # HttpOnly: no script reads it; SameSite=Strict: no other site makes the browser send it (no CSRF).
    r = RedirectResponse("/dashboard", status_code=303)
    r.set_cookie(COOKIE, key.strip(), httponly=True, samesite="strict", secure=request.url.scheme == "https",
                 max_age=8 * 3600)
    return r


@router.post("/dashboard/logout", summary="Sign out of the dashboard (clears the cookie)",
             responses={303: {"description": "signed out"}})
async def logout() -> Response:
    r = RedirectResponse("/dashboard", status_code=303)
    r.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return r


@router.get("/dashboard/assets/{name}", summary="The dashboard's script, style sheet and plotly.min.js",
            responses={404: {"description": "no such asset"}})
async def asset(name: str, request: Request) -> Response:
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail=f"no dashboard asset {name!r}")
    a = await run_in_threadpool(_asset, name)
    headers = {"Cache-Control": LONG_CACHE, "ETag": a.etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == a.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(a.gzipped, media_type=a.media_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(a.body, media_type=a.media_type, headers=headers)
