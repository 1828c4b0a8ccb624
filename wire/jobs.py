"""GET /jobs/{id} (api/routes/jobs.py): an ingest job, its status and its phase (ingest/phases.py says which
phase may follow which)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobPhase(StrEnum):
    PARSING = "parsing"
    EMBEDDING = "embedding"
    AWAITING_BUILD = "awaiting_build"  # documents in; waiting for the tenant's next build
    BUILDING = "building"
    EVALUATING = "evaluating"  # the built snapshot runs the tenant's query sets; the gate decides
    DONE = "done"


SETTLED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})



class DocumentFailure(BaseModel):
    doc_id: str
    filename: str | None
    reason: str | None


class JobProgress(BaseModel):
    documents_done: int
    documents_total: int
    chunks_done: int
    chunks_total: int


class JobCounts(BaseModel):
    new: int
    updated: int
    unchanged: int
    duplicate: int
    near_duplicate: int
    failed: int
    chunks_embedded: int
    chunks_reused: int


class JobResponse(BaseModel):
    job_id: str
    tenant: str
    status: JobStatus
    phase: JobPhase | None
    progress: JobProgress
    counts: JobCounts
    failures: list[DocumentFailure]
    snapshot: str | None = Field(description="The snapshot this job's documents landed in")
    snapshot_status: str | None = Field(default=None, description="live, or candidate when the gate held it "
                                        "(GET /snapshots gives the reason)")
    attempts: int
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_view(cls, v: Any, snapshot_status: str | None = None) -> "JobResponse":
        return cls(snapshot_status=snapshot_status,
            job_id=v.id, tenant=v.tenant, status=v.status, phase=v.phase,
            progress=JobProgress(documents_done=v.docs_done, documents_total=v.docs_total,
                                 chunks_done=v.chunks_done, chunks_total=v.chunks_total),
            counts=JobCounts(**v.counts, chunks_embedded=v.chunks_embedded, chunks_reused=v.chunks_reused),
            failures=[DocumentFailure(**f) for f in v.failures], snapshot=v.snapshot, attempts=v.attempts,
            error=v.error, created_at=v.created_at, started_at=v.started_at, finished_at=v.finished_at,
        )

