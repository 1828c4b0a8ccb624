"""Request and response bodies, named by direction."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Scalar = str | int | float | bool


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=512, description="Your id of the document; re-sending it replaces it")
    text: str = Field(min_length=1, description="Plain text or Markdown")
    metadata: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict,
                                                       description="Filterable fields; 'title' and 'source' are shown with hits")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is blank")
        return v


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1)

    @field_validator("documents")
    @classmethod
    def _unique_ids(cls, docs: list[DocumentIn]) -> list[DocumentIn]:
        seen: set[str] = set()
        dupes = sorted({d.id for d in docs if d.id in seen or seen.add(d.id)})
        if dupes:
            raise ValueError(f"document ids repeat within one request: {dupes[:10]}")
        return docs


class IngestResponse(BaseModel):
    job_id: str
    status: Literal["queued"] = "queued"
    documents: int


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
    status: Literal["queued", "running", "succeeded", "failed"]
    phase: str | None
    progress: JobProgress
    counts: JobCounts
    failures: list[DocumentFailure]
    snapshot: str | None = Field(description="The snapshot this job's documents landed in")
    attempts: int
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_view(cls, v: Any) -> "JobResponse":
        return cls(
            job_id=v.id, tenant=v.tenant, status=v.status, phase=v.phase,
            progress=JobProgress(documents_done=v.docs_done, documents_total=v.docs_total,
                                 chunks_done=v.chunks_done, chunks_total=v.chunks_total),
            counts=JobCounts(**v.counts, chunks_embedded=v.chunks_embedded, chunks_reused=v.chunks_reused),
            failures=[DocumentFailure(**f) for f in v.failures], snapshot=v.snapshot, attempts=v.attempts,
            error=v.error, created_at=v.created_at, started_at=v.started_at, finished_at=v.finished_at,
        )


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    checks: dict[str, str]
