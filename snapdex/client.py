"""A Python client of the snapdex API, typed with the service's own request and response schemas (api/schemas.py).

    from snapdex.client import Client
    sx = Client("http://localhost:8000", api_key="sdx_...")
    sx.ingest([{"id": "handbook", "text": "..."}])          # waits for the job by default
    answer = sx.retrieve("how long is parental leave?", context={"max_tokens": 1500, "expand": {"neighbors": 1}})
    for p in answer.context.passages: print(p.citation, p.title, p.text)

`AsyncClient` has the same methods, to be awaited. Both retry 429 and 503 answers (and connection failures),
waiting what the service's Retry-After says. `SnapdexRetriever` puts either behind a LlamaIndex retriever.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote
from typing import Any, Generic, Iterator, Sequence, TypeVar

import httpx
from pydantic import BaseModel

from api.schemas import (AccessIn, AccessResponse, ContextRequest, DocumentChunksResponse, DocumentListResponse, DocumentResponse,
                         DocumentSummary, EvalCompareResponse, EvalOverviewResponse, EvalRunDetailResponse,
                         EvalRunListResponse, EvalRunQueued, FeedbackRequest, FeedbackResponse, FeedbackSignal,
                         FromFeedbackRequest, FromFeedbackResponse, IngestRequest, IngestResponse, JobResponse,
                         PrincipalIn, QuerySetListResponse, QuerySetRequest, QuerySetResponse, RebuildResponse,
                         RetrieveBatchRequest, RetrieveBatchResponse, RetrieveOptions, RetrieveRequest,
                         RetrieveResponse, RolloutListResponse, RolloutRequest, RolloutResponse, SnapshotListResponse,
                         SwitchResponse, DeleteDocumentResponse, UsageRequest, UsageResponse)
from ingest.phases import SETTLED

M = TypeVar("M", bound=BaseModel)
RETRY_STATUS = (429, 503)


class SnapdexError(Exception):
    """An error answer: its status and the service's `detail` (a sentence, or validation errors)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


@dataclass
class _Call(Generic[M]):
    """One request and what its answer parses into."""

    method: str
    path: str
    model: type[M] | None
    kwargs: dict = field(default_factory=dict)


def _retry_after(response: httpx.Response | None, attempt: int, max_wait: float) -> float:
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        wait = float(header) if header is not None else 0.5 * 2 ** attempt
    except ValueError:  # an HTTP date: rare here, the service sends seconds
        wait = 1.0
    return min(max(wait, 0.0), max_wait)


def _parse(call: _Call, response: httpx.Response):
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise SnapdexError(response.status_code, detail)
    return call.model.model_validate_json(response.content) if call.model else None


def _body(model: type[BaseModel], value: BaseModel | dict) -> dict:
    """A request body checked against the service's schema before it is sent (the same errors, sooner)."""
    parsed = value if isinstance(value, model) else model.model_validate(value)
    return parsed.model_dump(mode="json", exclude_none=True)


def _as(principal: dict | None) -> dict:
    """The request keywords that name a principal on a route without a body (the X-Snapdex-Principal header)."""
    if principal is None:
        return {}
    return {"headers": {"X-Snapdex-Principal": json.dumps(_body(PrincipalIn, principal))}}


def _id(doc_id: str) -> str:
    """A document id as one URL path segment: everything but unreserved characters percent-encoded, its `/` too, so
    an id ending in `/chunks` or `/access` is never taken for a route's suffix; an id of dots alone is encoded
    whole, lest it be read as a `.` or `..` path segment."""
    segment = quote(doc_id, safe="")
    return segment.replace(".", "%2E") if not segment.strip(".") else segment


class _Operations:
    """Every operation, once: each builds a _Call that the sync or async client runs."""

    def _run(self, call: _Call):  # pragma: no cover - each client has its own
        raise NotImplementedError

    # --- ingest
    def ingest_json(self, documents: Sequence[dict | BaseModel]):
        """Queue documents ({"id", "text", "metadata"}); returns the job (see `ingest` to wait for it)."""
        return self._run(_Call("POST", "/ingest", IngestResponse,
                               {"json": _body(IngestRequest, {"documents": list(documents)})}))

    def ingest_files_queued(self, paths: Sequence[str | Path], metadata: dict | None = None,
                            access: dict | None = None):
        """`access`: {"users": [...], "groups": [...]} for every file (absent: the whole tenant)."""
        files = [("files", (Path(p).name, Path(p).read_bytes())) for p in paths]
        data = {**({"metadata": json.dumps(metadata)} if metadata else {}),
                **({"access": json.dumps(access)} if access is not None else {})} or None
        return self._run(_Call("POST", "/ingest", IngestResponse, {"files": files, "data": data}))

    def job(self, job_id: str):
        return self._run(_Call("GET", f"/jobs/{job_id}", JobResponse))

    # --- retrieve
    def retrieve(self, query: str, top_k: int = 5, filters: dict | None = None, snapshot: str | None = None,
                 context: ContextRequest | dict | None = None, options: RetrieveOptions | dict | None = None,
                 principal: dict | None = None, group_by: str | None = None, session: str | None = None):
        """`principal` {"user", "groups"}: with a service key, the end user the answer is for. `group_by`
        "document": the best `top_k` documents, each with its best chunks (`answer.documents`). `session`: the
        conversation, which a canary rollout answers from one arm throughout."""
        request = {"query": query, "top_k": top_k, "filters": filters, "snapshot": snapshot, "session": session,
                   "context": context, "options": options or {}, "principal": principal, "group_by": group_by}
        return self._run(_Call("POST", "/retrieve", RetrieveResponse, {"json": _body(RetrieveRequest, request)}))

    def retrieve_batch(self, requests: Sequence[RetrieveRequest | dict]):
        return self._run(_Call("POST", "/retrieve/batch", RetrieveBatchResponse,
                               {"json": _body(RetrieveBatchRequest, {"requests": list(requests)})}))

    def report_usage(self, request_id: str, cited: Sequence[str] = (), helpful: bool | None = None,
                     principal: dict | None = None):
        """Which parts of an answer (its `request_id`) the answer written from it used: its citation labels ("[2]"),
        chunk ids or document ids. `principal`: with a service key, the end user the answer was for."""
        body = _body(UsageRequest, {"request_id": request_id, "cited": list(cited), "helpful": helpful,
                                    "principal": principal})
        return self._run(_Call("POST", "/usage", UsageResponse, {"json": body}))

    def feedback(self, request_id: str, signals: Sequence[dict | FeedbackSignal] = (), helpful: bool | None = None,
                 principal: dict | None = None):
        """What became of an answer (its `request_id`): `signals` on its hits, each {"chunk_id" or "doc_id",
        "signal": "cited" | "clicked" | "helpful" | "not_helpful"}, and whether it helped. Sending the same signal
        again counts once. `principal`: with a service key, the end user the answer was for."""
        body = _body(FeedbackRequest, {"request_id": request_id, "signals": list(signals), "helpful": helpful,
                                       "principal": principal})
        return self._run(_Call("POST", "/feedback", FeedbackResponse, {"json": body}))

    # --- documents
    # `principal` {"user", "groups"}: with a service key, the end user the documents are read for.
    def documents(self, limit: int = 50, cursor: str | None = None, filters: dict | None = None,
                  principal: dict | None = None):
        params = {"limit": limit, **({"cursor": cursor} if cursor else {}),
                  **({"filters": json.dumps(filters)} if filters else {})}
        return self._run(_Call("GET", "/documents", DocumentListResponse, {"params": params, **_as(principal)}))

    def document(self, doc_id: str, principal: dict | None = None):
        return self._run(_Call("GET", f"/documents/{_id(doc_id)}", DocumentResponse, _as(principal)))

    def set_access(self, doc_id: str, access: dict | None):
        """Who may read a document ({"users", "groups"}; None: the whole tenant); a build without re-embedding."""
        body = {"access": None if access is None else _body(AccessIn, access)}
        return self._run(_Call("PATCH", f"/documents/{_id(doc_id)}/access", AccessResponse, {"json": body}))

    def document_chunks(self, doc_id: str, principal: dict | None = None):
        return self._run(_Call("GET", f"/documents/{_id(doc_id)}/chunks", DocumentChunksResponse, _as(principal)))

    def delete_document(self, doc_id: str):
        return self._run(_Call("DELETE", f"/documents/{_id(doc_id)}", DeleteDocumentResponse))

    # --- snapshots
    def snapshots(self):
        return self._run(_Call("GET", "/snapshots", SnapshotListResponse))

    def rebuild(self):
        return self._run(_Call("POST", "/snapshots", RebuildResponse))

    def promote(self, snap_hash: str):
        return self._run(_Call("POST", f"/snapshots/{snap_hash}/promote", SwitchResponse))

    def rollback(self):
        return self._run(_Call("POST", "/snapshots/rollback", SwitchResponse))

    # --- rollouts
    def start_rollout(self, candidate: str, mode: str | None = None, share: float | None = None,
                      steps: Sequence[float] | None = None, min_feedback: int | None = None,
                      max_regression: float | None = None, confidence: float | None = None):
        """Try snapshot `candidate` on a share of live traffic ("interleave" or "canary"); what is left out comes from
        the service's SNAPDEX_ROLLOUT_* settings. One rollout per tenant at a time."""
        body = _body(RolloutRequest, {"candidate": candidate, "mode": mode, "share": share,
                                      "steps": list(steps) if steps is not None else None,
                                      "min_feedback": min_feedback, "max_regression": max_regression,
                                      "confidence": confidence})
        return self._run(_Call("POST", "/rollouts", RolloutResponse, {"json": body}))

    def rollouts(self):
        return self._run(_Call("GET", "/rollouts", RolloutListResponse))

    def rollout(self, rollout_id: str):
        return self._run(_Call("GET", f"/rollouts/{quote(rollout_id, safe='')}", RolloutResponse))

    def stop_rollout(self, rollout_id: str):
        return self._run(_Call("POST", f"/rollouts/{quote(rollout_id, safe='')}/stop", RolloutResponse))

    # --- evaluation
    def upload_query_set(self, name: str, queries: Sequence[dict | BaseModel], description: str | None = None):
        body = _body(QuerySetRequest, {"name": name, "queries": list(queries), "description": description})
        return self._run(_Call("POST", "/eval/query-sets", QuerySetResponse, {"json": body}))

    def query_set_from_feedback(self, name: str, min_signals: int = 3, since: str | None = None,
                                description: str | None = None):
        """A version of the set `name` made of the queries whose answers got positive feedback (`since`: ISO 8601)."""
        body = _body(FromFeedbackRequest, {"min_signals": min_signals, "since": since, "description": description})
        return self._run(_Call("POST", f"/eval/query-sets/{quote(name, safe='')}/from-feedback", FromFeedbackResponse,
                               {"json": body}))

    def query_sets(self):
        return self._run(_Call("GET", "/eval/query-sets", QuerySetListResponse))

    def run_eval(self, snapshot: str | None = None, query_set: str | None = None):
        body = {k: v for k, v in {"snapshot": snapshot, "query_set": query_set}.items() if v is not None}
        return self._run(_Call("POST", "/eval/runs", EvalRunQueued, {"json": body}))

    def eval_runs(self, snapshot: str | None = None):
        return self._run(_Call("GET", "/eval/runs", EvalRunListResponse,
                               {"params": {"snapshot": snapshot} if snapshot else {}}))

    def eval_run(self, run_id: str):
        return self._run(_Call("GET", f"/eval/runs/{run_id}", EvalRunDetailResponse))

    def eval_compare(self, base: str, candidate: str, query_set: str):
        return self._run(_Call("GET", "/eval/compare", EvalCompareResponse,
                               {"params": {"base": base, "candidate": candidate, "query_set": query_set}}))

    def eval_overview(self):
        return self._run(_Call("GET", "/eval/overview", EvalOverviewResponse))


def _headers(api_key: str | None, tenant: str | None) -> dict[str, str]:
    return {**({"Authorization": f"Bearer {api_key}"} if api_key else {}), **({"X-Tenant": tenant} if tenant else {})}


class Client(_Operations):
    """Synchronous client. `retries`: how many times a 429/503 answer or a failed connection is tried again;
    `max_wait`: the longest a Retry-After is honoured (seconds)."""

    def __init__(self, url: str, api_key: str | None = None, tenant: str | None = None, timeout: float = 60.0,
                 retries: int = 5, max_wait: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.retries, self.max_wait = retries, max_wait
        self.http = httpx.Client(base_url=url, headers=_headers(api_key, tenant), timeout=timeout,
                                 transport=transport)

    def _run(self, call: _Call):
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(call.method, call.path, **call.kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(_retry_after(None, attempt, self.max_wait))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries:
                time.sleep(_retry_after(response, attempt, self.max_wait))
                continue
            return _parse(call, response)

    def wait_job(self, job_id: str, timeout: float = 600.0, interval: float = 0.5) -> JobResponse:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.status in SETTLED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            time.sleep(interval)

    def ingest(self, documents: Sequence[dict | BaseModel], wait: bool = True, timeout: float = 600.0):
        """Queue documents and (by default) wait for their job to finish; returns the job."""
        queued = self.ingest_json(documents)
        return self.wait_job(queued.job_id, timeout) if wait else self.job(queued.job_id)

    def ingest_files(self, paths: Sequence[str | Path], metadata: dict | None = None, wait: bool = True,
                     timeout: float = 600.0, access: dict | None = None):
        queued = self.ingest_files_queued(paths, metadata, access)
        return self.wait_job(queued.job_id, timeout) if wait else self.job(queued.job_id)

    def iter_documents(self, limit: int = 100, filters: dict | None = None,
                       principal: dict | None = None) -> Iterator[DocumentSummary]:
        cursor = None
        while True:
            page = self.documents(limit, cursor, filters, principal)
            yield from page.documents
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient(_Operations):
    """The same operations, awaited (`await sx.retrieve(...)`)."""

    def __init__(self, url: str, api_key: str | None = None, tenant: str | None = None, timeout: float = 60.0,
                 retries: int = 5, max_wait: float = 30.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.retries, self.max_wait = retries, max_wait
        self.http = httpx.AsyncClient(base_url=url, headers=_headers(api_key, tenant), timeout=timeout,
                                      transport=transport)

    async def _run(self, call: _Call):
        for attempt in range(self.retries + 1):
            try:
                response = await self.http.request(call.method, call.path, **call.kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(_retry_after(None, attempt, self.max_wait))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries:
                await asyncio.sleep(_retry_after(response, attempt, self.max_wait))
                continue
            return _parse(call, response)

    async def wait_job(self, job_id: str, timeout: float = 600.0, interval: float = 0.5) -> JobResponse:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job.status in SETTLED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            await asyncio.sleep(interval)

    async def ingest(self, documents: Sequence[dict | BaseModel], wait: bool = True, timeout: float = 600.0):
        queued = await self.ingest_json(documents)
        return await (self.wait_job(queued.job_id, timeout) if wait else self.job(queued.job_id))

    async def ingest_files(self, paths: Sequence[str | Path], metadata: dict | None = None, wait: bool = True,
                           timeout: float = 600.0, access: dict | None = None):
        queued = await self.ingest_files_queued(paths, metadata, access)
        return await (self.wait_job(queued.job_id, timeout) if wait else self.job(queued.job_id))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def __getattr__(name: str):
    """The LlamaIndex adapter lives in snapdex/llama.py and loads on first use: llama_index costs ~40 MB and a second
    to import, which a process that only calls the API (the MCP server inside `snapdex serve`) should not pay."""
    if name in ("SnapdexRetriever", "nodes_of"):
        from snapdex import llama

        return getattr(llama, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
