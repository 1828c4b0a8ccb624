"""/eval (api/routes/evaluation.py): labelled query sets, evaluation runs, their comparison and the overview."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wire.common import DocId, Label, NonBlank, PrincipalIn, parse_date, unique_ids
from wire.retrieve import QUERY_CHARS_CEILING
from wire.snapshots import SnapshotResponse


class RelevantDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc_id: DocId
    grade: int = Field(default=1, ge=1, le=100, description="graded relevance; higher is more relevant")


class LabelledQueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Label = Field(min_length=1, max_length=512)
    text: NonBlank = Field(min_length=1, max_length=QUERY_CHARS_CEILING,
                          description="up to SNAPDEX_MAX_QUERY_CHARS characters, as a query to /retrieve")
    relevant: list[DocId | RelevantDoc] = Field(min_length=1, description='doc ids, or {"doc_id", "grade"} objects')

    def judgments(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.relevant:
            doc_id, grade = (r, 1) if isinstance(r, str) else (r.doc_id, r.grade)
            out[doc_id] = max(out.get(doc_id, 0), grade)
        return out


SET_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # a query set's name


class QuerySetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SET_NAME, description="the set's name; uploads version it")
    description: str | None = Field(default=None, max_length=2000)
    queries: list[LabelledQueryIn] = Field(min_length=1)
    principal: PrincipalIn | None = Field(default=None, description=(
        "run the set as this end user sees the index (their access): recall as they get it; absent: unrestricted"))

    @field_validator("queries")
    @classmethod
    def _unique_ids(cls, queries: list[LabelledQueryIn]) -> list[LabelledQueryIn]:
        return unique_ids(queries, "query ids repeat within one query set")


class QuerySetResponse(BaseModel):
    name: str
    version: int
    queries: int
    checksum: str
    description: str | None
    created_at: float
    retired_at: float | None
    principal: PrincipalIn | None = Field(default=None, description="the principal the set runs as; null: unrestricted")
    created: bool | None = Field(default=None, description="false: the same content as the newest version, kept")
    evaluation: Literal["queued"] | None = Field(default=None, description="kept snapshots are being scored on it")

    @classmethod
    def from_ref(cls, ref: Any, **extra: Any) -> "QuerySetResponse":
        return cls(name=ref.name, version=ref.version, queries=ref.queries, checksum=ref.checksum,
                   description=ref.description, created_at=ref.created_at, retired_at=ref.retired_at,
                   principal=ref.principal, **extra)


class QuerySetListResponse(BaseModel):
    tenant: str
    query_sets: list[QuerySetResponse] = Field(description="every version of every set, by name then version")


class FromFeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"min_signals": 3, "since": "2026-12-01T00:00:00Z"}]})

    min_signals: int = Field(default=3, ge=1, le=1_000_000, description=(
        "a document is relevant to a query when this many signals credit it, over the answers to that query"))
    since: str | None = Field(default=None, max_length=64, description=(
        "ISO 8601 date-time: only answers given since (default: every answer kept)"))
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("since")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is not None:
            parse_date(v)
        return v

    def since_epoch(self) -> float:
        return 0.0 if self.since is None else parse_date(self.since)


class FromFeedbackResponse(QuerySetResponse):
    answers: int = Field(description="answers with their query kept and signals, since `since`, looked at")
    signals: int = Field(description="signals on their chunks and documents")


class LabelledQueryOut(BaseModel):
    id: str
    text: str
    relevant: dict[str, int]


class QuerySetDetailResponse(QuerySetResponse):
    items: list[LabelledQueryOut]


class EvalRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    snapshot: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="default: every kept snapshot")
    query_set: Label | None = Field(default=None, description="default: every active query set")


class EvalRunQueued(BaseModel):
    status: Literal["queued"] = "queued"
    tenant: str


class EvalRunResponse(BaseModel):
    id: str
    snapshot: str
    query_set: str
    version: int
    trigger: Literal["build", "upload", "manual", "baseline", "profile"]
    status: Literal["running", "done", "failed"]
    created_at: float
    finished_at: float | None
    seconds: float | None
    queries: int | None
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    recipe_key: str = Field(description="runs are comparable when their recipes match")
    error: str | None

    @classmethod
    def from_row(cls, r: Any) -> "EvalRunResponse":
        return cls(id=r.id, snapshot=r.snapshot, query_set=r.set_name, version=r.set_version, trigger=r.trigger,
                   status=r.status, created_at=r.created_at, finished_at=r.finished_at, seconds=r.seconds,
                   queries=r.queries, metrics=r.metrics, latency_ms=r.latency_ms, recipe_key=r.recipe_key,
                   error=r.error)


class EvalRunListResponse(BaseModel):
    tenant: str
    runs: list[EvalRunResponse] = Field(description="newest first")


class QueryResultOut(BaseModel):
    query_id: str
    text: str
    metrics: dict[str, float]
    relevant: dict[str, int]
    ranks: dict[str, int | None] = Field(description="rank of each relevant document; null: not in the ranking")
    retrieved: list[str] = Field(description="the top documents retrieved, best first")


class EvalRunDetailResponse(EvalRunResponse):
    recipe: dict[str, Any]
    results: list[QueryResultOut]


class QueryChange(BaseModel):
    query_id: str
    text: str
    before: float
    after: float
    delta: float
    dropped: list[str] = Field(description="relevant documents in the top k before, not after")
    entered: list[str] = Field(description="relevant documents in the top k after, not before")
    ranks_before: dict[str, int | None] = Field(description="rank of each relevant document in the base run")
    ranks_after: dict[str, int | None] = Field(description="rank of each relevant document in the candidate run")
    missed: list[str] = Field(description="relevant documents outside the candidate's top k")
    retrieved_instead: list[str] = Field(description="non-relevant documents of the candidate's top k ranked above "
                                         "a relevant document that fell")


class EvalCompareResponse(BaseModel):
    tenant: str
    query_set: str
    version: int
    metric: str
    base: EvalRunResponse
    candidate: EvalRunResponse
    comparable: bool = Field(description="both runs used the same retrieval recipe")
    gained: list[QueryChange]
    lost: list[QueryChange]
    unchanged: int
    hidden: int = Field(default=0, description=(
        "changed queries left out of gained and lost: they name a document this key may not read (user keys)"))


class OverviewRun(BaseModel):
    run_id: str
    snapshot: str
    created_at: float
    trigger: str
    recipe_key: str
    current_recipe: bool = Field(description="run under the retrieval recipe this service uses now")
    metrics: dict[str, float]
    latency_ms: dict[str, float]


class OverviewQuerySet(BaseModel):
    name: str
    version: int
    queries: int
    created_at: float
    retired_at: float | None
    active: bool = Field(description="the newest version of a set that is not retired: it runs after every build")
    runs: list[OverviewRun] = Field(description="the newest finished run per snapshot, in snapshot order")


class EvalOverviewResponse(BaseModel):
    """What the dashboard draws: aggregates only; per-query rows come from /eval/compare and /eval/runs/{id}."""

    tenant: str
    tenants: list[str]
    live: str | None
    previous: str | None
    gate: dict[str, dict[str, float]] = Field(description="floors and max_drop per metric")
    metrics: list[str] = Field(description="metric names every run reports")
    snapshots: list[SnapshotResponse] = Field(description="oldest first")
    query_sets: list[OverviewQuerySet]
    switches: list[dict[str, Any]] = Field(description=(
        "every change of the live snapshot: at, from_hash, to_hash, action"))
    viewer: Literal["admin", "user"] = Field(default="admin", description=(
        "who is looking: a user key sees the same aggregates, and drill-down rows only for what it may read"))

