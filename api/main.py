"""The FastAPI application. `snapdex serve` runs it; with the embedded default the Celery worker runs in
this same process, because the embedded vector engine allows one process per data folder."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.enqueue import enqueue
from prometheus_client import CollectorRegistry

from api.metrics import HttpMetrics, RequestMetricsMiddleware, registry_for
from api.ratelimit import RateLimits
from api.routes import dashboard, documents, evaluation, health, ingest, jobs, metrics, retrieve, snapshots
from snapdex.runtime import Runtime, set_runtime
from snapdex.settings import Settings, get_settings
from workers.celery_app import configure, start_embedded_worker

log = logging.getLogger("snapdex")


def _after_start(rt: Runtime) -> None:
    rt.warm_up()
    # A service whose config differs from a live snapshot's keeps serving that snapshot and builds a new one;
    # the switch happens only when the new one is promoted.
    for tenant, parts in rt.config_drift().items():
        log.warning("CONFIG DRIFT for tenant %s: %s differ from the live snapshot's; serving the live snapshot, "
                    "rebuilding", tenant, ", ".join(parts))
        try:
            enqueue("build_snapshot", tenant, True)
        except Exception:
            log.exception("could not enqueue the rebuild of %s", tenant)


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
        registry_for(rt, app.state.metrics)
        configure(settings)
        # Models load once per process, in the background: /health answers at once, /ready turns true
        # once the first request or job would no longer pay for the load.
        threading.Thread(target=_after_start, args=(rt,), name="warm-up", daemon=True).start()
        if settings.embedded_worker:
            start_embedded_worker(settings.worker_concurrency)
            # The memory:// broker forgets on exit; the job table does not. Enqueue what a crash left behind.
            for job_id in rt.recover():
                log.warning("re-enqueueing job %s left unsettled by an earlier run", job_id)
                enqueue("ingest_job", job_id)
        yield
        rt.close()

    app = FastAPI(title="snapdex", version="0.1.0", lifespan=lifespan,
                  description="RAG indexing and retrieval: versioned, measured, snapshot-hashed Qdrant indexes.")
    # One registry per app: request timings from this process, the rest read from the catalog at scrape time.
    app.state.metrics = CollectorRegistry()
    app.state.http_metrics = HttpMetrics(app.state.metrics)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.http_metrics)
    app.state.rate_limits = RateLimits({"retrieve": settings.rate_limit_retrieve, "ingest": settings.rate_limit_ingest},
                                       settings.redis_url)
    for module in (ingest, jobs, documents, snapshots, retrieve, evaluation, dashboard, health, metrics):
        app.include_router(module.router)
    return app
