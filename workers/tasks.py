"""Thin task shells: serialisation and retries here, the work in index_snapshots/ and ingest/."""

from __future__ import annotations

from index_snapshots.service import TransientError, build_and_promote, run_ingest_job
from snapdex.runtime import get_runtime
from store.base import StoreUnavailable
from workers.celery_app import app

try:
    from redis.exceptions import ConnectionError as RedisConnectionError
except ImportError:  # pragma: no cover
    RedisConnectionError = ConnectionError  # type: ignore[misc,assignment]

TRANSIENT = (TransientError, StoreUnavailable, RedisConnectionError, ConnectionError, TimeoutError)


@app.task(name="snapdex.ingest_job", bind=True, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=TRANSIENT, retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=8)
def ingest_job(self, job_id: str) -> None:
    rt = get_runtime()
    run_ingest_job(rt.ingestor, rt.builder, rt.manifest, rt.jobs, job_id, transient=TRANSIENT)


@app.task(name="snapdex.build_snapshot", bind=True, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=TRANSIENT, retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=8)
def build_snapshot(self, tenant: str) -> str:
    rt = get_runtime()
    return build_and_promote(rt.builder, rt.manifest, tenant).hash
