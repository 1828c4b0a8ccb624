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
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from api.deps import RuntimeDep, SettingsDep, tenant_or_422
from api.routes.evaluation import overview
from api.schemas import errors
from snapdex.runtime import Runtime

router = APIRouter(tags=["dashboard"], responses=errors(404, 422))

# name -> media type; anything else is a 404 (no path from the request ever reaches the file system).
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8",
          "plotly.min.js": "text/javascript; charset=utf-8"}
LONG_CACHE = "public, max-age=31536000, immutable"  # the page asks for them with ?v=<version>


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


def render(rt: Runtime, tenant: str) -> str:
    # Inside <script type="application/json"> the only way out is "</script"; "<!--" could open a
    # double-escaped script state. JSON text can hold "<" only inside strings, where both escapes are valid.
    data = overview(rt, tenant).model_dump_json().replace("</", "<\\/").replace("<!--", "<\\u0021--")
    return _template().replace("{{tenant}}", tenant).replace("{{overview}}", data)


@router.get("/dashboard", response_class=HTMLResponse,
            summary="The recall dashboard: metrics per snapshot, gate verdicts, promote, per-query drill-down",
            responses={422: {"description": "invalid tenant name"}})
async def dashboard(rt: RuntimeDep, settings: SettingsDep,
                    tenant: Annotated[str | None, Query(description="default: the service's default tenant")] = None
                    ) -> HTMLResponse:
    html = await run_in_threadpool(render, rt, tenant_or_422(tenant, settings))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


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
