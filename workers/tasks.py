"""Thin task shells: serialisation and retries here, the work in index_snapshots/ and ingest/."""

from __future__ import annotations

from dataclasses import replace

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from db import CatalogUnavailable
from errors import Conflict, InvalidInput
from index_snapshots.service import Requeue, run_ingest_job
from ingest.jobs import JobBusy
from snapdex.runtime import get_runtime
from store.base import StoreUnavailable
from workers.celery_app import app

try:
    from redis.exceptions import ConnectionError as RedisConnectionError
except ImportError:  # pragma: no cover
    RedisConnectionError = ConnectionError  # type: ignore[misc,assignment]

# A dependency that is down for now (vector store, Redis, the catalog's server), or a job another worker is still
# ingesting (a message delivered twice): the task retries with backoff.
TRANSIENT = (StoreUnavailable, RedisConnectionError, ConnectionError, TimeoutError, OperationalError,
             CatalogUnavailable, JobBusy)
# Redelivered if the worker dies (tasks are idempotent); retried with backoff while a dependency is down.
TASK_OPTIONS = dict(bind=True, acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT, retry_backoff=2,
                    retry_backoff_max=120, retry_jitter=True, max_retries=8)


# The time limits (workers/celery_app.py) back up the per-document parse limits, which are the real guard: Celery's
# threads pool (the embedded worker, `snapdex worker`'s default) enforces none. At the soft limit the job goes back
# to the queue (it resumes where it stopped); past the hard limit the process is killed and, not acknowledged on a
# timeout, the message is delivered again: the document being parsed then counts one start that never finished.
@app.task(name="snapdex.ingest_job", acks_on_timeout=False, **TASK_OPTIONS)
def ingest_job(self, job_id: str) -> None:
    rt = get_runtime()
    try:
        tenant = run_ingest_job(rt.ingestor, rt.jobs, job_id, transient=TRANSIENT, lease_s=rt.settings.lock_lease_s,
                                access=rt.access_sync, interrupts=(SoftTimeLimitExceeded,))
    except (Requeue, SoftTimeLimitExceeded):
        # Behind what is queued already: another tenant's job waiting for this worker goes first.
        ingest_job.apply_async(args=(job_id,))
        return
    if tenant is not None:
        # Debounced: jobs arriving close together share one build (build_pending skips while any ingests).
        build_snapshot.apply_async(args=(tenant,), countdown=rt.jobs.build_delay(tenant, rt.settings.build_debounce_s))


# A build has no time limit, yet a soft limit can land in one: the pool signals the child process, not the task, so
# an ingest task that ends as its limit passes leaves the signal to the next task the child runs (celery/celery#3914;
# seen on a loaded machine, where a build failed the jobs it settles). Such a build goes back to the queue, its jobs
# waiting for it as after a transient error.
STRAY_LIMIT = (SoftTimeLimitExceeded,)


@app.task(name="snapdex.build_snapshot", **TASK_OPTIONS)
def build_snapshot(self, tenant: str, force: bool = False) -> str | None:
    rt = get_runtime()
    snapshots = rt.snapshots
    transient = (*TRANSIENT, *STRAY_LIMIT)
    try:
        result = snapshots.rebuild(tenant, transient) if force else snapshots.build_pending(tenant, transient)
    except STRAY_LIMIT:
        build_snapshot.apply_async(args=(tenant, force))
        return None
    if result is not None and result.built and rt.settings.tune_after_build:
        # Opt-in: the tenant's profile is searched again on its labelled queries over the new live snapshot.
        run = tune_after_build(rt, tenant)
        if run is not None:
            tune_profile.apply_async(args=(tenant, run.id))
    return result.hash if result else None


def tune_after_build(rt, tenant: str):
    """A tuning run for the tenant when it has enough labelled queries and a live snapshot; None otherwise."""
    from index_snapshots.tuning import TuningRequest

    request = TuningRequest()
    try:
        rt.tuner.check(tenant, request)
    except InvalidInput:  # no labelled queries (the global default serves it, or tuning without labels), too few
        if not rt.settings.tune_without_labels or rt.evals.active_sets(tenant):
            return None
        request = TuningRequest(synthetic=True)
        try:
            rt.tuner.check(tenant, request)
        except (InvalidInput, Conflict):
            return None
    except Conflict:  # no live snapshot
        return None
    return rt.profiles.create_tuning(tenant, request.as_dict(), trigger="build")


@app.task(name="snapdex.tune_profile", **TASK_OPTIONS)
def tune_profile(self, tenant: str, tuning_id: str) -> str:
    """Search the tenant's stage parameters; an adopted profile is then scored on the live snapshot, so the
    dashboard shows what the tenant is served now."""
    rt = get_runtime()
    result = rt.tuner.run(tenant, tuning_id)
    if result.get("decision") == "adopted":
        live = rt.manifest.live(tenant)
        if live is not None:
            rt.evaluator.evaluate_kept(tenant, snapshot=live.hash, trigger="profile")
    return result.get("decision", "")


@app.task(name="snapdex.evaluate", **TASK_OPTIONS)
def evaluate(self, tenant: str, query_set: str | None = None, snapshot: str | None = None,
             trigger: str = "upload") -> list[str]:
    """After a query set upload, or on request: score kept snapshots. Finished runs are reused, so a
    redelivered message repeats nothing."""
    return [r.id for r in get_runtime().evaluator.evaluate_kept(tenant, query_set, snapshot, trigger)]


@app.task(name="snapdex.deliver_webhook", **TASK_OPTIONS)
def deliver_webhook(self, delivery_id: str) -> str | None:
    """One attempt at one delivery (notify/delivery.py). Its retries are scheduled in the catalog, not here: the
    sweeper enqueues the delivery again when its next attempt is due, for up to ~24 h."""
    return get_runtime().deliverer.deliver(delivery_id)


def _syncer(rt):
    """The runtime's syncer, retrying what the tasks retry, and queueing the tenant's debounced build (as an ingest
    job's end does) once a sync changed its documents."""
    def changed(tenant: str) -> None:
        build_snapshot.apply_async(args=(tenant,), countdown=rt.jobs.build_delay(tenant, rt.settings.build_debounce_s))

    return replace(rt.syncer, transient=TRANSIENT, changed=changed)


@app.task(name="snapdex.sync_source", **TASK_OPTIONS)
def sync_source(self, sync_id: str) -> str | None:
    """One sync of a source (sources/sync.py): its ingest jobs run here, in this task, one after another. Redelivered
    after a crash it resumes; retried while a dependency is down, and failed with the reason past the last retry."""
    rt = get_runtime()
    try:
        return _syncer(rt).run(sync_id)
    except TRANSIENT as e:
        if self.request.retries >= self.max_retries:
            rt.syncer.give_up(sync_id, f"gave up after {self.request.retries} retries: {type(e).__name__}: {e}")
        raise


@app.task(name="snapdex.sources_tick", **TASK_OPTIONS)
def sources_tick(self) -> list[str]:
    """Sent by Celery beat every SNAPDEX_SOURCE_TICK_S: a sync of each source whose schedule has come."""
    rt = get_runtime()
    started = rt.syncer.tick()
    for sync_id in started:
        sync_source.apply_async(args=(sync_id,))
    return started
