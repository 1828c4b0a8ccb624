"""Request and response bodies, named by direction."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from errors import InvalidInput
from eval.benchmarks import parse_date
from ingest.access import MAX_NAME_CHARS, MAX_NAMES, normalize_access
from ingest.ids import CONTROL, MAX_ID_CHARS, check_id, describe
from index_snapshots.status import SnapshotStatus
from ingest.phases import JobPhase, JobStatus
from notify import EVENT_TYPES
from options.filters import RequestFilters
from options import (Candidates, FirstStage, Fusion, GroupBy, MaxPerDocument, Rerank, RerankDepth, Rewrite, RrfK,
                     Weight, knob_field)
from retrieval.context import MAX_NEIGHBORS, ContextConfig

Scalar = str | int | float | bool


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("is blank (white space only)")
    return v


NonBlank = Annotated[str, AfterValidator(_not_blank)]


def _no_control(v: str) -> str:
    if found := CONTROL.search(v):
        raise ValueError(f"holds {describe(found.group())}: a name holds no control characters")
    return v


# A string that names something (a user, a group, a query, a set): no control character (Unicode category Cc).
# Free text (a document's text, a query, a description) may hold them, but never a NUL (api/strict.py).
Label = Annotated[str, AfterValidator(_no_control)]


class ErrorResponse(BaseModel):
    """Every error answer: a sentence naming what was wrong, or the list of validation errors."""

    detail: str | list[dict[str, Any]]


_ERRORS = {
    400: "the body could not be parsed (not valid JSON, or not UTF-8)",
    401: "no API key, or not a valid one (Authorization: Bearer <key> or X-API-Key)",
    403: "the API key does not reach this: another tenant named, an operator key on tenant data, or a tenant's key "
         "on an operator's route",
    404: "not found (for this tenant)",
    409: "conflicts with the current state; the message says why",
    413: "too large; the message names the limit and its setting",
    422: "invalid input; the message names the field and the allowed values",
    429: "the API key's rate limit is reached; retry after Retry-After seconds",
    503: "a dependency (vector store, queue) is unavailable; retry after Retry-After seconds",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the error statuses a route answers, all with the ErrorResponse body."""
    return {code: {"model": ErrorResponse, "description": _ERRORS[code]} for code in codes}


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The same, for a route whose success is HTML: FastAPI would document a model under the route's media type,
    but errors are JSON. (ErrorResponse is in the components: the JSON routes declare it as a model.)"""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {code: {"description": _ERRORS[code], "content": {"application/json": {"schema": ref}}} for code in codes}


def unique_ids(items: list, message: str) -> list:
    seen: set[str] = set()
    dupes = sorted({i.id for i in items if i.id in seen or seen.add(i.id)})
    if dupes:
        raise ValueError(f"{message}: {dupes[:10]}")
    return items


# A user or group name of an access list or principal: matched exactly, so never blank.
Name = Annotated[NonBlank, AfterValidator(_no_control), Field(min_length=1, max_length=MAX_NAME_CHARS)]
# A document id (ingest/ids.py): what every route can address.
DocId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(check_id)]
Metadata = dict[str, Scalar | list[Scalar]]
FormMetadata = TypeAdapter(Metadata)  # the multipart `metadata` field, checked as a JSON document's metadata


class AccessIn(BaseModel):
    """Who may read a document, besides the tenant's admin keys. Absent on a document: the whole tenant (unless the
    tenant denies by default, SNAPDEX_ACCESS_DENY_BY_DEFAULT)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"users": ["alice@acme"], "groups": ["hr", "managers"]}]})

    users: list[Name] = Field(default_factory=list, max_length=MAX_NAMES,
                              description="user names as your chat backend sends them")
    groups: list[Name] = Field(default_factory=list, max_length=MAX_NAMES, description="group names")

    def stored(self) -> dict:
        return normalize_access(self.model_dump())


class PrincipalIn(BaseModel):
    """Whom a service key retrieves for. Only a service (or admin) key may send one; a user key carries its own."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"user": "alice@acme", "groups": ["hr"]}]})

    user: Name | None = None
    groups: list[Name] = Field(default_factory=list, max_length=MAX_NAMES)


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: DocId = Field(description=(
        f"Your id of the document; re-sending it replaces it. 1-{MAX_ID_CHARS} characters, not blank, no control "
        "characters; `/`, `%`, `?`, `#`, spaces and any script are fine (percent-encode them in URLs)"))
    text: NonBlank = Field(min_length=1, description="Plain text or Markdown")
    metadata: Metadata = Field(default_factory=dict,
                                                       description="Filterable fields; 'title' and 'source' are shown with hits")
    access: AccessIn | None = Field(default=None, description=(
        "who may read it; absent: the whole tenant (or admin keys only where the tenant denies by default)"))



class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1)

    @field_validator("documents")
    @classmethod
    def _unique_ids(cls, docs: list[DocumentIn]) -> list[DocumentIn]:
        return unique_ids(docs, "document ids repeat within one request")


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


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    checks: dict[str, str]


class SnapshotResponse(BaseModel):
    hash: str
    collection: str
    status: SnapshotStatus
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
    gate: GateVerdictOut | None = Field(default=None, description="the promotion gate's verdict, once judged")

    @classmethod
    def from_row(cls, r: Any, verdict: Any = None) -> "SnapshotResponse":
        fields = {k: getattr(r, k) for k in cls.model_fields if k != "gate"}
        return cls(**fields, gate=GateVerdictOut.from_verdict(verdict) if verdict else None)


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


class AccessChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"access": {"users": ["alice@acme"], "groups": ["hr"]}}, {"access": None}]})

    access: AccessIn | None = Field(description="the new list; null: the whole tenant again")


class AccessResponse(BaseModel):
    doc_id: str
    access: dict[str, list[str]] | None = Field(description="the list as stored (sorted, each name once)")
    rebuild: Literal["queued"] = "queued"


class DocumentSummary(BaseModel):
    doc_id: str
    title: str | None
    source: str | None
    status: str = Field(description="indexed (near-duplicates too, since migration 0007)")
    metadata: dict[str, Any]
    content_hash: str | None = Field(description="SHA-256 of the normalised text: equal for equal content")
    chunks: int
    snapshots: list[str] = Field(description="readable snapshots holding its chunks, the live one first")
    access: dict[str, list[str]] | None = Field(default=None, description=(
        "who may read it (admin keys see it; null: the whole tenant, or not shown to this key)"))


class DocumentListResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"documents": [{
        "doc_id": "handbook", "title": "Employee handbook", "source": "handbook.docx", "status": "indexed",
        "metadata": {"team": "hr"}, "content_hash": "9f2c" + "0" * 60, "chunks": 12, "snapshots": ["ab12" + "0" * 60]}],
        "next_cursor": "aGFuZGJvb2s"}]})

    documents: list[DocumentSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last one")


class DocumentResponse(DocumentSummary):
    text: str | None = Field(description="the stored text: what chunk, hit and passage offsets index into")
    pages: list[list[int]] = Field(default_factory=list, description="[offset, page] where each PDF page starts")


class HitTable(BaseModel):
    number: int = Field(description="which table of the document, 1-based in document order")
    rows: list[int] = Field(description="first and last data row held (1-based, the header row not counted); a "
                                        "chunk of a long table repeats its header row above them")


class DocumentChunk(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "index": 3, "chunk_id": "5d1f" + "0" * 60, "text": "Employees get sixteen weeks of paid parental leave.",
        "start": 5141, "end": 5192, "pages": [2], "headings": ["Employee handbook", "Parental leave"]}]})

    index: int = Field(description="its place among the document's chunks")
    chunk_id: str
    text: str = Field(description="stored text[start:end]")
    start: int | None
    end: int | None
    pages: list[int]
    headings: list[str]
    table: HitTable | None = Field(default=None, description="the table and rows the chunk holds, if a table")


class DocumentChunksResponse(BaseModel):
    doc_id: str
    chunks: list[DocumentChunk]


class RetrieveOptions(BaseModel):
    """Per-request overrides of the ranking stages; anything left out uses the service's defaults."""

    model_config = ConfigDict(extra="forbid")

    first_stage: FirstStage | None = Field(default=None, description=(
        "the first stage's legs: both (hybrid), or one alone (bm25 alone also skips the query embedding and the "
        "second stage)"))
    rerank: Rerank | None = Field(
        default=None, description="second stage; cross-encoder only where a model folder is configured")
    rewrite: Rewrite | None = Field(
        default=None, description="query rewriting; llm only where an endpoint is configured")
    fusion: Fusion | None = Field(default=None, description=(
        "first-stage fusion: dbsf or rrf in Qdrant, or zscore: every candidate of either leg scored on both legs, "
        "their z-scores summed with fusion_dense and fusion_bm25"))
    rrf_k: RrfK | None = knob_field("rrf_k")
    fusion_dense: Weight | None = knob_field("fusion_dense")
    fusion_bm25: Weight | None = knob_field("fusion_bm25")
    candidates: Candidates | None = knob_field("candidates")
    rerank_depth: RerankDepth | None = knob_field("rerank_depth")
    max_per_document: MaxPerDocument | None = knob_field("max_per_document")
    late_dense: Weight | None = knob_field("late_dense")
    late_bm25: Weight | None = knob_field("late_bm25")
    late_windows: Weight | None = knob_field("late_windows")


# The schema's hard ceiling; the service's own limit is SNAPDEX_MAX_QUERY_CHARS (16,000 by default), checked at
# the route so that an operator can set it.
QUERY_CHARS_CEILING = 200_000


def check_query_chars(text: str, limit: int, what: str = "query") -> str:
    if len(text) > limit:
        raise InvalidInput(f"{what} is {len(text):,} characters, over this service's limit of {limit:,} "
                           "(SNAPDEX_MAX_QUERY_CHARS)")
    return text


class ContextNeighbors(BaseModel):
    model_config = ConfigDict(extra="forbid")

    neighbors: int = Field(ge=0, le=MAX_NEIGHBORS, description="chunks added on each side of a hit, budget allowing")


class ContextRequest(BaseModel):
    """Build the hits into passages a prompt can use as is, within a token budget."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"max_tokens": 1500, "expand": {"neighbors": 1}, "max_per_document": 2},
        {"max_tokens": 4000, "expand": "section", "tokenizer": "cl100k_base"}]})

    max_tokens: int = Field(ge=1, le=1_000_000, description="the sum of the passages' tokens never exceeds it")
    expand: Literal["section"] | ContextNeighbors | None = Field(default=None, description=(
        '{"neighbors": n}: each hit grows by up to n adjacent chunks on each side; "section": by the chunks of its '
        "heading section (the whole document when it has no headings); absent: the hits' chunks alone"))
    max_per_document: int | None = Field(default=None, ge=1, le=100, description="passages of one document")
    tokenizer: Literal["embedder", "cl100k_base", "o200k_base"] | None = Field(default=None, description=(
        "what tokens are counted with: the embedding model's word pieces (default) or a tiktoken encoding"))

    def config(self) -> ContextConfig:
        expand = self.expand if isinstance(self.expand, str) else self.expand.neighbors if self.expand else 0
        return ContextConfig(self.max_tokens, expand, self.max_per_document, self.tokenizer)


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "how long is parental leave?", "top_k": 8,
         "context": {"max_tokens": 1500, "expand": {"neighbors": 1}, "max_per_document": 2}}]})

    query: NonBlank = Field(min_length=1, max_length=QUERY_CHARS_CEILING, description=(
        "the question, or a whole message: up to SNAPDEX_MAX_QUERY_CHARS characters (16,000 by default). Past the "
        "embedding model's input it is embedded in windows, never cut off; the recipe says so"))
    top_k: int = Field(default=5, ge=1, le=100)
    filters: RequestFilters | None = Field(
        default=None, description='e.g. {"metadata.team": "hr", "metadata.year": {"gte": 2023}}')
    snapshot: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="pin a snapshot hash")
    options: RetrieveOptions = Field(default_factory=RetrieveOptions)
    context: ContextRequest | None = Field(default=None, description=(
        "also answer with `context`: the hits as cited passages within a token budget; absent: no context block"))
    principal: PrincipalIn | None = Field(default=None, description=(
        "service keys: the end user the answer is for; only documents they may read are searched. A user key may "
        "not send one (403)"))
    group_by: GroupBy | None = Field(default=None, description=(
        '"document": the best top_k documents (ranked by their best chunk), each with its best chunks (up to '
        "options.max_per_document, else 3): `hits` come document by document and `documents` lists them; absent: "
        "the best top_k chunks"))
    session: Label | None = Field(default=None, min_length=1, max_length=200, description=(
        "the conversation or end user's session: a canary rollout answers a session from the same arm every time "
        "(absent: the principal's user, else the API key)"))


class HitSource(BaseModel):
    doc_id: str
    source: str | None
    title: str | None
    position: int
    start: int | None = Field(default=None, description="the chunk's character offsets in this document's stored text")
    end: int | None = None
    pages: list[int] = Field(default_factory=list)
    headings: list[str] = Field(default_factory=list)
    table: HitTable | None = Field(default=None, description="the table (and rows) the chunk holds, if a table")
    twins: list[str] = Field(default_factory=list, description=(
        "its near-duplicate twins (other indexed documents it is a near-duplicate of); under the collapse policy "
        "the older twins' hits are left out in favour of the newest's"))


class Highlight(BaseModel):
    """A best-matching sentence window: characters [start, end) of the document's stored text."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"start": 5141, "end": 5230, "score": 0.71}]})

    start: int
    end: int
    score: float = Field(description="the window's late-interaction similarity to the query")


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
    start: int | None = Field(default=None, description=(
        "offsets of `text` in the stored text of `doc_id` (GET /documents/{id}): text == stored[start:end]; null "
        "for snapshots built before offsets were recorded"))
    end: int | None = None
    pages: list[int] = Field(default_factory=list, description=(
        "pages the chunk spans (1-based): PDF pages, the slide of a PPTX, the sheet of an XLSX"))
    headings: list[str] = Field(default_factory=list, description="the heading path it sits under")
    table: HitTable | None = Field(default=None, description="the table and rows the chunk holds, if a table")
    highlights: list[Highlight] = Field(default_factory=list)
    arm: Literal["live", "candidate"] | None = Field(default=None, description=(
        "during a rollout: the arm that put the hit in the answer (README, \"Rollouts\"); null otherwise"))


class ContextPassage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "citation": "[1]", "doc_id": "handbook", "title": "Employee handbook",
        "text": "## Parental leave\n\nEmployees get 16 weeks of paid leave...", "start": 5120, "end": 6210,
        "pages": [], "headings": ["Employee handbook", "Parental leave"], "tokens": 231,
        "highlights": [{"start": 5141, "end": 5230, "score": 0.71}]}]})

    citation: str = Field(description="a short id to cite the passage by in the answer, e.g. [1]")
    doc_id: str
    title: str | None
    text: str = Field(description="adjacent chunks of the document joined without repeated overlap: "
                                  "stored[start:end]")
    start: int | None
    end: int | None
    pages: list[int]
    headings: list[str]
    tokens: int
    highlights: list[Highlight]


class ContextResponse(BaseModel):
    tokenizer: str = Field(description="what `tokens` were counted with")
    tokens: int = Field(description="the sum of the passages' tokens: never over max_tokens")
    passages: list[ContextPassage] = Field(description="in the order a prompt should use them")


class RetrieveDocument(BaseModel):
    """One document of a grouped answer (group_by "document")."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"doc_id": "handbook", "title": "Employee handbook", "source": "handbook.docx", "score": 2.41,
         "hits": [0, 1]}]})

    doc_id: str
    title: str | None
    source: str | None
    score: float = Field(description="its best chunk's score")
    hits: list[int] = Field(description="positions of its chunks in `hits`, best first")


class RolloutRef(BaseModel):
    id: str
    mode: Literal["interleave", "canary"]


class RetrieveResponse(BaseModel):
    hits: list[RetrieveHit]
    snapshot: str = Field(description="hash of the snapshot that answered")
    recipe: dict[str, Any] = Field(description="models, stages and parameters that shaped the answer")
    timings_ms: dict[str, float]
    request_id: str
    cached: bool = Field(default=False, description="served from the result cache (same snapshot, same request)")
    warnings: list[str] = Field(default_factory=list)
    context: ContextResponse | None = Field(default=None, description="when the request asked for it")
    documents: list[RetrieveDocument] | None = Field(default=None, description=(
        'group_by "document": the documents in order, each naming its hits; null otherwise'))
    rollout: RolloutRef | None = Field(default=None, description="the rollout this answer took part in, if any")
    arm: Literal["live", "candidate"] | None = Field(default=None, description=(
        "canary rollout: the arm that answered (`snapshot` is its snapshot); null otherwise"))


MAX_BATCH = 64


class RetrieveBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"requests": [
        {"query": "how long is parental leave?", "top_k": 5},
        {"query": "who approves expenses?", "top_k": 5, "context": {"max_tokens": 800}}]}]})

    requests: list[RetrieveRequest] = Field(min_length=1, max_length=MAX_BATCH, description=(
        f"up to {MAX_BATCH} retrieve requests, answered in order; their query vectors are made in one model batch"))


class RetrieveBatchResponse(BaseModel):
    answers: list[RetrieveResponse] = Field(description="one per request, each what POST /retrieve answers")


MAX_CITED = 100


class UsageRequest(BaseModel):
    """Which parts of a /retrieve answer the answer written from it used (eval/usage.py)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"request_id": "5f0c2d9e8b7a4c1d9e6f3a2b1c0d9e8f", "cited": ["[1]", "[3]"], "helpful": True}]})

    request_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$", description=(
        "the request_id of an answer this key (and principal) got from /retrieve, or MCP's search or get_context, "
        "within SNAPDEX_USAGE_WINDOW_S"))
    cited: list[Annotated[Label, Field(min_length=1, max_length=MAX_ID_CHARS)]] = Field(
        default_factory=list, max_length=MAX_CITED, description=(
            'what the answer used: citation labels of that answer ("[2]": its context passages, or its hits in '
            "order when it had no context block), chunk ids or document ids it held"))
    helpful: bool | None = Field(default=None, description="what the end user thought of the answer, if known")
    principal: PrincipalIn | None = Field(default=None, description=(
        "service keys: the end user the answer was for, as /retrieve named them. A user key may not send one"))


class UsageCited(BaseModel):
    ref: str = Field(description="as reported")
    citation: str | None = Field(description="the citation label, when the reference was one")
    doc_id: str
    chunk_ids: list[str] = Field(description="the answer's hits this reference covers")


class UsageResponse(BaseModel):
    request_id: str
    snapshot: str = Field(description="the snapshot that gave the answer reported on")
    cited: list[UsageCited]
    helpful: bool | None
    replaced: bool = Field(description="an earlier report on the same answer by the same reporter was replaced")


class FeedbackSignal(BaseModel):
    """One signal on a chunk or a document of the answer: name exactly one of them."""

    model_config = ConfigDict(extra="forbid")

    chunk_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[0-9a-f]+$",
                                 description="a hit of the answer")
    doc_id: DocId | None = Field(default=None, description="a document of the answer's hits or context passages")
    signal: Literal["cited", "clicked", "helpful", "not_helpful"]

    @model_validator(mode="after")
    def _one_target(self) -> "FeedbackSignal":
        if (self.chunk_id is None) == (self.doc_id is None):
            raise ValueError("a signal names exactly one of chunk_id and doc_id")
        return self

    def target(self) -> tuple[str, str, str]:
        return ("chunk", self.chunk_id, self.signal) if self.chunk_id else ("doc", self.doc_id, self.signal)


class FeedbackRequest(BaseModel):
    """What the chat backend saw of a /retrieve answer: the hits its model cited, the user clicked or judged, and
    whether the answer helped (eval/feedback.py)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"request_id": "5f0c2d9e8b7a4c1d9e6f3a2b1c0d9e8f", "helpful": True,
         "signals": [{"chunk_id": "5d1f" + "0" * 60, "signal": "cited"},
                     {"doc_id": "handbook", "signal": "clicked"}]}]})

    request_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$", description=(
        "the request_id of an answer this key (and principal) got from /retrieve within SNAPDEX_FEEDBACK_WINDOW_S"))
    signals: list[FeedbackSignal] = Field(default_factory=list, max_length=MAX_CITED, description=(
        "each names a chunk_id or a doc_id the answer held; the same signal twice counts once"))
    helpful: bool | None = Field(default=None, description="what the end user thought of the whole answer, if known")
    principal: PrincipalIn | None = Field(default=None, description=(
        "service keys: the end user the answer was for, as /retrieve named them. A user key may not send one"))

    @model_validator(mode="after")
    def _something(self) -> "FeedbackRequest":
        if not self.signals and self.helpful is None:
            raise ValueError("feedback needs signals, helpful, or both")
        return self


class FeedbackSignalOut(BaseModel):
    chunk_id: str | None
    doc_id: str = Field(description="the document credited (a chunk's first document)")
    signal: str
    position: int | None = Field(description="1-based rank of the hit in the answer (a document: its first hit's); "
                                             "null for a document only a context passage showed")
    new: bool = Field(description="false: the same signal was stored already, and counts once")


class FeedbackResponse(BaseModel):
    request_id: str
    snapshot: str = Field(description="the snapshot that gave the answer")
    helpful: bool | None
    recorded: int = Field(description="signals stored now (helpful included)")
    duplicates: int = Field(description="signals stored already, by an earlier report: counted once")
    signals: list[FeedbackSignalOut]


# --- rollouts (index_snapshots/rollouts.py) ------------------------------------------------------------------


class RolloutRequest(BaseModel):
    """A candidate snapshot tried on live traffic; what is left out comes from the SNAPDEX_ROLLOUT_* settings."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"candidate": "9" * 64, "mode": "interleave", "steps": [0.1, 0.5, 1.0], "min_feedback": 200,
         "max_regression": 0.02, "confidence": 0.95}]})

    candidate: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash of a built snapshot of the tenant")
    mode: Literal["interleave", "canary"] | None = Field(default=None, description=(
        "interleave: the live and candidate rankings merged in one answer; canary: a sticky share of sessions "
        "answered by the candidate"))
    share: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False, description=(
        "the first step's share of traffic (with `steps`: must be steps[0]; without: the default steps above it)"))
    steps: list[Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]] | None = Field(
        default=None, min_length=1, max_length=10, description="traffic shares, rising; promotion after the last")
    min_feedback: int | None = Field(default=None, ge=10, le=1_000_000, description=(
        "feedback events (answers with feedback) each step needs before any decision"))
    max_regression: float | None = Field(default=None, ge=0.0, le=0.5, allow_inf_nan=False, description=(
        "how much worse than live the candidate may be and still advance (win-rate or success-rate difference)"))
    confidence: float | None = Field(default=None, ge=0.5, le=0.999, allow_inf_nan=False, description=(
        "of the sequential test's intervals"))

    def plan_args(self, default_steps: list[float]) -> dict:
        steps = self.steps
        if self.share is not None and steps is not None and steps[0] != self.share:
            raise InvalidInput(f"share={self.share} differs from steps[0]={steps[0]}: send one, or make them equal",
                               ("body", "share"))
        if self.share is not None and steps is None:
            steps = [self.share, *(s for s in default_steps if s > self.share)]
        return {"mode": self.mode, "steps": tuple(steps) if steps else None, "min_feedback": self.min_feedback,
                "max_regression": self.max_regression, "confidence": self.confidence}


class RolloutDecision(BaseModel):
    at: float
    action: Literal["start", "advance", "promote", "stop"]
    step: int
    share: float | None = None
    reason: str
    estimate: float | None = None
    interval: list[float | None] | None = Field(default=None, description="of candidate minus live, at confidence")
    events: int | None = Field(default=None, description="feedback events when it was decided")


class RolloutResponse(BaseModel):
    id: str
    candidate: str
    live: str = Field(description="the live snapshot when it started")
    mode: Literal["interleave", "canary"]
    state: Literal["running", "promoted", "stopped"]
    steps: list[float]
    step: int = Field(description="index into steps")
    share: float = Field(description="of traffic at this step")
    min_feedback: int
    max_regression: float
    confidence: float
    reason: str | None = Field(description="why it ended")
    started_by: str
    started_at: float
    updated_at: float
    ended_at: float | None
    feedback: int = Field(description="answers of the rollout with feedback")
    step_feedback: int = Field(description="of them, since this step began")
    arms: dict[str, Any] = Field(description=(
        "live and candidate: each arm's figures (interleave: answers won; canary: answers with a positive signal) "
        "with rate, low and high at `confidence`; ties (interleave); difference: candidate minus live, its interval "
        "and what the sequential test says now"))
    decisions: list[RolloutDecision] = Field(description="the decision log, oldest first")


class RolloutListResponse(BaseModel):
    rollouts: list[RolloutResponse] = Field(description="newest first")


# --- recall tracking -------------------------------------------------------------------------------------


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


class GateVerdictOut(BaseModel):
    passed: bool
    reasons: list[str]
    checks: list[dict[str, Any]]
    baseline: str | None = Field(description="the live snapshot it was compared with")
    decided_at: float
    override_at: float | None = Field(description="promoted by hand although it failed")
    runs: list[str]

    @classmethod
    def from_verdict(cls, v: Any) -> "GateVerdictOut":
        return cls(passed=v.passed, reasons=v.reasons, checks=v.checks, baseline=v.baseline, decided_at=v.decided_at,
                   override_at=v.override_at, runs=v.runs)


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
    switches: list[dict[str, Any]] = Field(description="every change of the live snapshot: at, from_hash, to_hash, action")
    viewer: Literal["admin", "user"] = Field(default="admin", description=(
        "who is looking: a user key sees the same aggregates, and drill-down rows only for what it may read"))


# --- benchmarks against the do-it-yourself peer ---------------------------------------------------------------

Measure = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _iso_date(v: str) -> str:
    parse_date(v)  # kept as written: the run names its own date; the store orders by the instant
    return v


class BenchmarkQualityIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    ndcg_at_10: Score = Field(alias="ndcg@10")
    recall_at_10: Score | None = Field(default=None, alias="recall@10")
    recall_at_100: Score = Field(alias="recall@100")


class BenchmarkLatencyIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    p50: Measure = Field(description="milliseconds")
    p95: Measure = Field(description="milliseconds")


class BenchmarkSystemIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    label: str | None = Field(default=None, max_length=500)
    quality: BenchmarkQualityIn
    latency_ms: BenchmarkLatencyIn
    build_s: Measure | None = None
    peak_rss_mib: Measure | None = None


class BenchmarkSystemsIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    snapdex_default: BenchmarkSystemIn = Field(alias="snapdex default")
    snapdex_first_stage: BenchmarkSystemIn | None = Field(default=None, alias="snapdex first stage")
    peer: BenchmarkSystemIn
    bm25s: BenchmarkSystemIn | None = None


class BenchmarkGitIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    commit: str = Field(pattern=r"^[0-9a-f]{7,40}$", description="the commit measured")
    dirty: bool | None = Field(default=None, description="uncommitted changes were measured too")


class Benchmark100kIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    first_stage_latency_ms: BenchmarkLatencyIn


class BenchmarkRebuildIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    fraction_of_cold: Measure


class BenchmarkIngestIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    pipeline_overhead_pct: float = Field(allow_inf_nan=False)


class BenchmarkTargetIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: float | None = Field(default=None, allow_inf_nan=False)
    bound: float | None = Field(default=None, allow_inf_nan=False)
    met: bool


class BenchmarkImportRequest(BaseModel):
    """One run of bench/peer_bench.py, as it writes bench/results/peers.json; stored whole, other keys included."""

    model_config = ConfigDict(extra="allow")

    date: Annotated[str, AfterValidator(_iso_date)] = Field(
        max_length=64, description="when the run started, ISO 8601 (e.g. 2026-11-25T03:36:13+00:00)",
        json_schema_extra={"format": "date-time"})
    git: BenchmarkGitIn
    machine: str | None = Field(default=None, max_length=500)
    cpu: str | None = Field(default=None, max_length=500)
    systems: BenchmarkSystemsIn
    at_100k: Benchmark100kIn | None = Field(default=None, alias="100k", description="the 100k-chunk index")
    rebuild: BenchmarkRebuildIn | None = None
    ingest: BenchmarkIngestIn | None = None
    wall_s: Measure | None = Field(default=None, description="the whole command, seconds")
    targets: dict[str, BenchmarkTargetIn] | None = None
    table: str | None = None

    def body(self) -> dict[str, Any]:
        """The run as it was sent: the keys it had, under their own names. Python mode, because JSON mode would
        turn a NaN the reader let through into null silently: the store refuses it instead."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class BenchmarkPair(BaseModel):
    snapdex: float | None = Field(description="snapdex's default pipeline")
    peer: float | None


class BenchmarkTargets(BaseModel):
    met: int
    total: int
    missed: list[str] = Field(description="names of the targets missed")


class BenchmarkResponse(BaseModel):
    """One run's summary: snapdex against the do-it-yourself peer."""

    id: int
    name: str
    date: str = Field(description="when the run started, as the benchmark wrote it")
    run_at: float = Field(description="the same instant, epoch seconds")
    commit: str
    dirty: bool | None
    machine: str | None
    cpu: str | None
    imported_at: float
    ndcg_at_10: BenchmarkPair
    recall_at_100: BenchmarkPair
    first_stage_p95_ms: float | None = Field(description="snapdex's first stage over HTTP")
    peer_p95_ms: float | None
    first_stage_p95_ratio: float | None = Field(description="first_stage_p95_ms / peer_p95_ms")
    p95_100k_ms: float | None = Field(description="first stage over a 100k-chunk index")
    build_s: BenchmarkPair
    wall_s: float | None = Field(description="the whole benchmark command, seconds")
    targets: BenchmarkTargets
    created: bool | None = Field(default=None, description="on import: false when this run was imported before")

    @classmethod
    def from_run(cls, run: Any, **extra: Any) -> "BenchmarkResponse":
        return cls(**run.summary(), **extra)


class BenchmarkDetailResponse(BenchmarkResponse):
    run: dict[str, Any] = Field(description="the whole JSON the benchmark wrote")

    @classmethod
    def from_run(cls, run: Any, **extra: Any) -> "BenchmarkDetailResponse":
        return cls(**run.summary(), run=run.body, **extra)


class BenchmarkListResponse(BaseModel):
    benchmarks: list[BenchmarkResponse] = Field(description="newest run first")


# --- retrieval profiles and self-tuning -------------------------------------------------------------------


class TuningRequestIn(BaseModel):
    """Search the stage parameters on the tenant's labelled queries, by k-fold cross-validation."""

    model_config = ConfigDict(extra="forbid")

    query_sets: list[Label] = Field(default_factory=list, max_length=100,
                                  description="names of active query sets; empty: every active set")
    folds: int = Field(default=5, ge=2, le=20, description="k of the k-fold cross-validation")
    metric: Label = Field(default="ndcg@10", description="what the search maximises, e.g. ndcg@10 or recall@10")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="of the fold assignment and the bootstrap")
    level: float = Field(default=0.95, gt=0.5, lt=1.0, allow_inf_nan=False,
                         description="confidence of the bootstrap interval the gain over the live profile must clear")
    synthetic: bool = Field(default=False, description=(
        "tune without labels: on queries made from the tenant's own documents (titles, headings, held-out "
        "sentences, each against its document) instead of its query sets; judged the same way"))


class TuningQueued(BaseModel):
    tuning_id: str
    status: Literal["queued"] = "queued"
    tenant: str


class TuningResponse(BaseModel):
    id: str
    tenant: str
    trigger: Literal["request", "build"]
    status: Literal["queued", "running", "done", "failed"]
    request: dict[str, Any]
    progress: dict[str, Any] = Field(description="queries, folds, folds_done, configurations scored so far")
    result: dict[str, Any] | None = Field(description="decision (adopted | rejected | unchanged), reason, params, "
                                          "scores (tuned_cv, live, default, the paired test), seconds")
    profile_version: int | None = Field(description="the profile version this run recorded")
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_run(cls, r: Any) -> "TuningResponse":
        return cls(id=r.id, tenant=r.tenant, trigger=r.trigger, status=r.status, request=r.request,
                   progress=r.progress, result=r.result, profile_version=r.profile_version, error=r.error,
                   created_at=r.created_at, started_at=r.started_at, finished_at=r.finished_at)


class TuningListResponse(BaseModel):
    tenant: str
    runs: list[TuningResponse] = Field(description="newest first")


class ProfileResponse(BaseModel):
    version: int = Field(description="0 is the service's global default")
    status: Literal["live", "retired", "rejected"]
    params: dict[str, Any] = Field(description="stage parameters; the global default's are the service's settings")
    scores: dict[str, Any] = Field(description="cross-validated scores: tuned_cv (held out), live, default, test")
    reason: str | None
    tuning_id: str | None
    created_at: float | None

    @classmethod
    def from_profile(cls, p: Any, status: str | None = None) -> "ProfileResponse":
        return cls(version=p.version, status=status or p.status, params=p.params, scores=p.scores, reason=p.reason,
                   tuning_id=p.tuning_id, created_at=p.created_at)


class ProfileListResponse(BaseModel):
    tenant: str
    live: int = Field(description="the live version (0: the global default)")
    previous: int | None = Field(description="what a rollback returns to")
    default: dict[str, Any] = Field(description="the global default's stage parameters")
    profiles: list[ProfileResponse] = Field(description="every recorded version, newest first")
    switches: list[dict[str, Any]] = Field(description="every change of the live profile: at, from_version, "
                                           "to_version, action (adopt | rollback | manual)")


class ProfileSwitchResponse(BaseModel):
    tenant: str
    live: int
    previous: int | None


# --- webhooks ------------------------------------------------------------------------------------------------------


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[NonBlank, AfterValidator(_no_control)] = Field(max_length=2048,
                                                                  description="http(s) URL the events are POSTed to")
    events: list[str] = Field(min_length=1, max_length=32, description="event types to receive",
                              json_schema_extra={"items": {"enum": list(EVENT_TYPES)}})
    description: str = Field(default="", max_length=500)


class WebhookResponse(BaseModel):
    id: str = Field(description="wh_...: names it in /webhooks/{id}/...")
    tenant: str
    url: str = Field(description="where events are POSTed; checked again before every attempt")
    events: list[str] = Field(description="the event types it receives")
    description: str
    created_at: float = Field(description="epoch seconds")

    @classmethod
    def from_hook(cls, h, **extra) -> "WebhookResponse":
        return cls(**vars(h), **extra)  # notify.store.Webhook: the same fields


class WebhookCreatedResponse(WebhookResponse):
    secret: str = Field(description="signs every delivery (X-Snapdex-Signature); shown this once, keep it")


class WebhookListResponse(BaseModel):
    tenant: str
    event_types: list[str] = Field(description="every type a webhook may subscribe to")
    webhooks: list[WebhookResponse]


class DeliveryAttemptResponse(BaseModel):
    attempt: int
    at: float
    status_code: int | None = Field(description="null: no HTTP answer (refused, timed out)")
    latency_ms: float
    error: str | None


class DeliveryResponse(BaseModel):
    id: str
    webhook_id: str
    event_id: str = Field(description="the idempotency id: a redelivery carries the same one")
    event_type: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    status_code: int | None = Field(description="of the last attempt")
    latency_ms: float | None = Field(description="of the last attempt")
    error: str | None = Field(description="of the last attempt")
    next_attempt_at: float | None = Field(description="when it is tried again; null once delivered or dead")
    created_at: float
    delivered_at: float | None
    attempt_log: list[DeliveryAttemptResponse]

    @classmethod
    def from_delivery(cls, d) -> "DeliveryResponse":
        return cls(id=d.id, webhook_id=d.webhook_id, event_id=d.event_id, event_type=d.event_type, status=d.status,
                   attempts=d.attempts, status_code=d.status_code, latency_ms=d.latency_ms, error=d.error,
                   next_attempt_at=d.next_attempt_at, created_at=d.created_at, delivered_at=d.delivered_at,
                   attempt_log=[DeliveryAttemptResponse(**vars(a)) for a in d.log])


class DeliveryListResponse(BaseModel):
    webhook_id: str
    deliveries: list[DeliveryResponse]


class WebhookTestResponse(BaseModel):
    webhook_id: str
    event_id: str
