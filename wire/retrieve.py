"""POST /retrieve and /retrieve/batch (api/routes/retrieve.py): the query, its options and context budget, and
the ranked answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from options import (Candidates, FirstStage, Fusion, GroupBy, MaxPerDocument, QueryEmbedTokens, Rerank, RerankDepth,
                     Rewrite, RrfK, Weight, knob_field)
from options.filters import RequestFilters
from wire.common import Label, NonBlank, PrincipalIn
from wire.documents import HitTable

MAX_NEIGHBORS = 8  # chunks a context passage may grow by on each side of a hit (retrieval/context.py)


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
    query_embed_tokens: QueryEmbedTokens | None = knob_field("query_embed_tokens")


# The schema's hard ceiling; the service's own limit is SNAPDEX_MAX_QUERY_CHARS (16,000 by default), checked at
# the route so that an operator can set it.
QUERY_CHARS_CEILING = 200_000


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


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "how long is parental leave?", "top_k": 8,
         "context": {"max_tokens": 1500, "expand": {"neighbors": 1}, "max_per_document": 2}}]})

    query: NonBlank = Field(min_length=1, max_length=QUERY_CHARS_CEILING, description=(
        "the question, or a whole message: up to SNAPDEX_MAX_QUERY_CHARS characters (16,000 by default). BM25 reads "
        "all of it; the embedding model at most SNAPDEX_QUERY_EMBED_TOKENS word pieces (128 by default: the first "
        "and last 62), in windows that fit its input; the recipe says what was embedded"))
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

