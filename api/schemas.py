"""Request and response bodies, named by direction."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

Scalar = str | int | float | bool


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("is blank (white space only)")
    return v


NonBlank = Annotated[str, AfterValidator(_not_blank)]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=512, description="Your id of the document; re-sending it replaces it")
    text: NonBlank = Field(min_length=1, description="Plain text or Markdown")
    metadata: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict,
                                                       description="Filterable fields; 'title' and 'source' are shown with hits")



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


class SnapshotResponse(BaseModel):
    hash: str
    collection: str
    status: Literal["building", "candidate", "live", "retired", "failed", "deleted"]
    parent: str | None
    created_at: float
    built_at: float | None
    documents: int
    chunks: int
    embedded: int = Field(description="chunks that went through the embedding model for this build")
    reused: int = Field(description="chunks whose vectors came from the embedding cache")
    build_seconds: float | None
    config: dict[str, Any]
    reason: str | None

    @classmethod
    def from_row(cls, r: Any) -> "SnapshotResponse":
        fields = {k: getattr(r, k) for k in cls.model_fields}
        return cls(**fields)


class SnapshotListResponse(BaseModel):
    tenant: str
    live: str | None
    previous: str | None
    config_drift: list[str] = Field(description="parts of the live snapshot's config that differ from this service's")
    snapshots: list[SnapshotResponse]


class RebuildResponse(BaseModel):
    status: Literal["queued"] = "queued"
    tenant: str


class SwitchResponse(BaseModel):
    tenant: str
    live: str
    previous: str | None


class DeleteDocumentResponse(BaseModel):
    doc_id: str
    deleted: bool
    rebuild: Literal["queued"] = "queued"


class RetrieveOptions(BaseModel):
    """Per-request overrides of the ranking stages; anything left out uses the service's defaults."""

    model_config = ConfigDict(extra="forbid")

    rerank: Literal["late-interaction", "cross-encoder", "none"] | None = Field(
        default=None, description="second stage; cross-encoder only where a model folder is configured")
    rewrite: Literal["none", "normalize", "prf", "llm"] | None = Field(
        default=None, description="query rewriting; llm only where an endpoint is configured")
    fusion: Literal["dbsf", "rrf"] | None = None
    rrf_k: int | None = Field(default=None, ge=1, le=1000)
    candidates: int | None = Field(default=None, ge=1, le=1000, description="per leg, before fusion")
    rerank_depth: int | None = Field(default=None, ge=1, le=200, description="fused candidates reranked")
    max_per_document: int | None = Field(default=None, ge=1, le=100, description="cap of chunks per document")


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: NonBlank = Field(min_length=1, max_length=4096)
    top_k: int = Field(default=5, ge=1, le=100)
    filters: dict[str, Any] | None = Field(default=None, description='e.g. {"metadata.team": "hr", "metadata.year": {"gte": 2023}}')
    snapshot: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="pin a snapshot hash")
    options: RetrieveOptions = Field(default_factory=RetrieveOptions)


class HitSource(BaseModel):
    doc_id: str
    source: str | None
    title: str | None
    position: int


class HitScores(BaseModel):
    """Each stage's score of the hit; null where a stage did not run (e.g. no second stage)."""

    dense: float | None = Field(default=None, description="cosine of query and chunk vectors")
    bm25: float | None = Field(default=None, description="BM25 of the query terms in the chunk")
    windows: float | None = Field(default=None, description="best sentence window's cosine (late interaction)")
    fused: float | None = Field(default=None, description="first-stage fused score")
    rerank: float | None = Field(default=None, description="second-stage score")


class RetrieveHit(BaseModel):
    chunk_id: str
    doc_id: str
    sources: list[HitSource]
    text: str
    score: float = Field(description="the score hits are ordered by (the last stage that ran)")
    scores: HitScores
    metadata: dict[str, Any]


class RetrieveResponse(BaseModel):
    hits: list[RetrieveHit]
    snapshot: str = Field(description="hash of the snapshot that answered")
    recipe: dict[str, Any] = Field(description="models, stages and parameters that shaped the answer")
    timings_ms: dict[str, float]
    request_id: str
    cached: bool = Field(default=False, description="served from the result cache (same snapshot, same request)")
    warnings: list[str] = Field(default_factory=list)
