"""The FastAPI application. `snapdex serve` runs it; with the embedded default the Celery worker runs in
this same process, because the embedded vector engine allows one process per data folder."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.enqueue import enqueue, run_here
from notify.delivery import Sweeper
from prometheus_client import CollectorRegistry

from api.metrics import HttpMetrics, RequestMetricsMiddleware, registry_for
from api.auth import AuthMiddleware
from api.document_paths import DocumentPaths
from api import errors as domain_errors
from errors import DomainError
from api.mcp_server.http import McpEndpoint
from api.ratelimit import RateLimits
from api.schemas.common import errors
from api.strict import refusal, shown
from api.routes import (benchmarks, dashboard, documents, evaluation, health, ingest, jobs, metrics, retrieve,
                        rollouts, snapshots, sources, tuning, usage, webhooks)
from snapdex.keys import KeyStore
from snapdex.runtime import Runtime, set_runtime
from snapdex.settings import Settings, get_settings
from workers.celery_app import EmbeddedBeat, EmbeddedWorker, configure

log = logging.getLogger("snapdex")
WEBHOOK_THREADS = 2  # embedded: deliveries at once (each bounded by SNAPDEX_WEBHOOK_TIMEOUT_S)


def _after_start(rt: Runtime) -> None:
    # Serving needs the model and the live collections; the parser loads with the first file or Markdown to
    # parse (JSON plain text never needs it), so a process that only serves never holds it.
    rt.warm_up(ingest=False)
    # A service whose config differs from a live snapshot's keeps serving that snapshot and builds a new one;
    # the switch happens only when the new one is promoted.
    for tenant, parts in rt.config_drift().items():
        log.warning("CONFIG DRIFT for tenant %s: %s differ from the live snapshot's; serving the live snapshot, "
                    "rebuilding", tenant, ", ".join(parts))
        live = rt.manifest.live(tenant)
        try:  # once per (live snapshot, differing parts): a restart that finds the same drift says nothing new
            rt.webhooks.emit(tenant, "config.drift", {"live": live.hash if live else None, "parts": parts},
                             dedupe=f"{live.hash if live else ''}:{','.join(parts)}")
        except Exception:
            log.exception("could not record the config.drift event of %s", tenant)
        try:
            enqueue("build_snapshot", tenant, True)
        except Exception:
            log.exception("could not enqueue the rebuild of %s", tenant)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own 422, except for what strict JSON cannot carry (NaN, Infinity, lone surrogates), should an error
    quote it back: the default answer would be a 500. (Bodies are read by api/strict.py, which refuses them.)
    A schema's check that raised a domain error (the grammar of `filters`) answers as a route raising it would, or,
    beside other refusals, as a refusal whose message is the error's own."""
    errors = exc.errors()
    if (raised := domain_errors.schema_domain_error(errors)) is not None:
        return await domain_errors.domain_error(request, raised)
    errors = [refusal(e["loc"], e["type"], str(r)) if isinstance(r := (e.get("ctx") or {}).get("error"), DomainError)
              else e for e in errors]
    return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(errors))})


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt = runtime or Runtime(settings)
        # The retrieval stages are checked now: a default that names an unconfigured stage (rewrite=llm with no
        # endpoint, a missing cross-encoder folder) stops the start-up with its reason, not the first request.
        rt.searcher  # noqa: B018
        set_runtime(rt)
        app.state.runtime = rt
        app.state.keys = KeyStore(rt.db, settings.api_keys)
        if not app.state.keys.required():
            log.warning("KEYLESS: no API key is configured, so every request is tenant %r and needs no key. "
                        "`snapdex keys create --tenant NAME` (or SNAPDEX_API_KEYS) makes keys required.",
                        settings.default_tenant)
        registry_for(rt, app.state.metrics)
        configure(settings)
        # Models load once per process, in the background: /health answers at once, /ready turns true
        # once the first request or job would no longer pay for the load.
        threading.Thread(target=_after_start, args=(rt,), name="warm-up", daemon=True).start()
        worker = EmbeddedWorker(settings.worker_concurrency) if settings.embedded_worker else None
        if worker:
            # The memory:// broker forgets on exit; the job table does not. Enqueue what a crash left behind.
            for job_id in rt.recover():
                log.warning("re-enqueueing job %s left unsettled by an earlier run", job_id)
                enqueue("ingest_job", job_id)
            for sync_id in rt.syncer.interrupted():
                log.warning("re-enqueueing source sync %s left running by an earlier run: it resumes", sync_id)
                enqueue("sync_source", sync_id)
        # The sources' schedule: Celery beat, here when the worker is (`snapdex beat` runs it beside Redis workers).
        beat = EmbeddedBeat() if worker else None
        # Webhook deliveries that are due go to their queue (a Celery task each; the catalog holds the schedule),
        # or, embedded, to threads of this process that run the same task.
        if settings.embedded_worker:
            delivering = ThreadPoolExecutor(WEBHOOK_THREADS, thread_name_prefix="webhook-delivery")
            send = partial(delivering.submit, run_here, "deliver_webhook")
        else:
            delivering, send = None, partial(enqueue, "deliver_webhook")
        sweeper = Sweeper(rt.webhooks, send, settings.webhook_sweep_interval_s,
                          lease_s=2 * settings.webhook_timeout_s + 60).start()
        async with app.state.mcp.run():  # /mcp's calls run in its task group
            yield
        await app.state.mcp.aclose()
        sweeper.stop()
        if beat:
            await asyncio.to_thread(beat.stop)
        if delivering:  # an attempt cut short is due again after its lease: at least once, still
            delivering.shutdown(wait=False, cancel_futures=True)
        # uvicorn has let the requests in flight finish; now the task in flight, within the grace.
        if worker and not await asyncio.to_thread(worker.stop, settings.shutdown_grace_s):
            log.warning("a task was still running %.0f s after the stop: its job resumes on the next start",
                        settings.shutdown_grace_s)
            return  # the store stays open under it until the process ends; a closed store would fail the job
        rt.close()

    app = FastAPI(title="snapdex", version="0.1.0", lifespan=lifespan,
                  description="RAG indexing and retrieval: versioned, measured, snapshot-hashed Qdrant indexes.")
    app.add_exception_handler(RequestValidationError, _invalid_request)
    domain_errors.install(app)  # InvalidInput, NotFound, Conflict, Unavailable: their statuses (api/errors.py)
    app.state.max_request_bytes = settings.max_request_bytes  # every request body (api/strict.py)
    # One registry per app: request timings from this process, the rest read from the catalog at scrape time.
    app.state.metrics = CollectorRegistry()
    app.state.http_metrics = HttpMetrics(app.state.metrics)
    app.add_middleware(DocumentPaths)  # innermost: what the router matches under /documents/
    app.add_middleware(AuthMiddleware, default_tenant=settings.default_tenant)  # inside: 401s are counted too
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.http_metrics)
    app.state.rate_limits = RateLimits({"retrieve": settings.rate_limit_retrieve, "ingest": settings.rate_limit_ingest},
                                       settings.redis_url)
    for module in (ingest, jobs, documents, snapshots, rollouts, retrieve, usage, evaluation, tuning, webhooks,
                   sources, dashboard, metrics, benchmarks):
        app.include_router(module.router, responses=errors(401, 403))
    app.include_router(evaluation.contract_router, responses=errors(401, 403))
    app.include_router(health.router)  # /ready is keyed too: it declares its own 401
    # MCP over Streamable HTTP (api/mcp_server/): an ASGI route behind the same middleware, not in the OpenAPI document.
    app.state.mcp = McpEndpoint(app, settings)
    app.state.mcp.mount(app)
    return app
