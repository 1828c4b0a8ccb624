"""What an ingest job does end to end: ingest the documents, build the tenant's snapshot, make it live."""

from __future__ import annotations

import logging

from index_snapshots.builder import BuildResult, SnapshotBuilder
from index_snapshots.manifest import Manifest
from ingest.jobs import JobStore
from ingest.pipeline import Ingestor

log = logging.getLogger(__name__)


class TransientError(Exception):
    """A dependency is down for now (vector store, cache); the task retries with backoff."""


def build_and_promote(builder: SnapshotBuilder, manifest: Manifest, tenant: str) -> BuildResult:
    result = builder.build(tenant)
    # Until the evaluation gate exists every built snapshot goes live; the switch is one manifest row.
    manifest.promote(tenant, result.hash)
    return result


def run_ingest_job(ingestor: Ingestor, builder: SnapshotBuilder, manifest: Manifest, jobs: JobStore,
                   job_id: str, transient: tuple[type[BaseException], ...] = ()) -> None:
    view = jobs.get(job_id)
    if view is None:
        raise KeyError(f"job {job_id} does not exist")
    if view.status in ("succeeded", "failed"):
        return  # a redelivered message for a settled job
    try:
        ingestor.run(job_id)
        jobs.set_phase(job_id, "building")
        result = build_and_promote(builder, manifest, view.tenant)
        jobs.set_phase(job_id, "done", snapshot=result.hash)
        jobs.finish(job_id, "succeeded")
    except transient:
        raise
    except Exception as e:
        log.exception("job %s failed", job_id)
        jobs.finish(job_id, "failed", error=f"{type(e).__name__}: {e}")
