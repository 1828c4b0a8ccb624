"""Every operation of the Python client, once: each builds a Call (method, path, body, answer model) that a runner
sends. snapdex/client.py runs them over HTTP with retries, api/mcp_server/tools.py as the MCP tools' gateway; the
bodies are checked against the wire's schemas before anything is sent (the same errors the service gives, sooner)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Sequence, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from wire.common import AccessIn, PrincipalIn
from wire.documents import (AccessResponse, DeleteDocumentResponse, DocumentChunksResponse, DocumentListResponse,
                            DocumentResponse)
from wire.evaluation import (EvalCompareResponse, EvalOverviewResponse, EvalRunDetailResponse, EvalRunListResponse,
                             EvalRunQueued, FromFeedbackRequest, FromFeedbackResponse, QuerySetListResponse,
                             QuerySetRequest, QuerySetResponse)
from wire.ingest import IngestRequest, IngestResponse
from wire.jobs import JobResponse
from wire.retrieve import (ContextRequest, RetrieveBatchRequest, RetrieveBatchResponse, RetrieveOptions,
                           RetrieveRequest, RetrieveResponse)
from wire.rollouts import RolloutListResponse, RolloutRequest, RolloutResponse
from wire.snapshots import RebuildResponse, SnapshotListResponse, SwitchResponse
from wire.usage import FeedbackRequest, FeedbackResponse, FeedbackSignal, UsageRequest, UsageResponse

M = TypeVar("M", bound=BaseModel)


@dataclass
class Call(Generic[M]):
    """One request and what its answer parses into."""

    method: str
    path: str
    model: type[M] | None
    kwargs: dict = field(default_factory=dict)


def _body(model: type[BaseModel], value: BaseModel | dict) -> dict:
    """A request body checked against the service's schema before it is sent (the same errors, sooner)."""
    parsed = value if isinstance(value, model) else model.model_validate(value)
    return parsed.model_dump(mode="json", exclude_none=True)


def _as(principal: dict | None) -> dict:
    """The request keywords that name a principal on a route without a body (the X-Snapdex-Principal header)."""
    if principal is None:
        return {}
    return {"headers": {"X-Snapdex-Principal": json.dumps(_body(PrincipalIn, principal))}}


def id_segment(doc_id: str) -> str:
    """A document id as one URL path segment: everything but unreserved characters percent-encoded, its `/` too, so
    an id ending in `/chunks` or `/access` is never taken for a route's suffix; an id of dots alone is encoded
    whole, lest it be read as a `.` or `..` path segment."""
    segment = quote(doc_id, safe="")
    return segment.replace(".", "%2E") if not segment.strip(".") else segment


class Operations:
    """Every operation, once: each builds a Call that the sync or async client (or the MCP gateway) runs."""

    def _run(self, call: Call):  # pragma: no cover - each client has its own
        raise NotImplementedError

    # --- ingest
    def ingest_json(self, documents: Sequence[dict | BaseModel]):
        """Queue documents ({"id", "text", "metadata"}); returns the job (see `ingest` to wait for it)."""
        return self._run(Call("POST", "/ingest", IngestResponse,
                              {"json": _body(IngestRequest, {"documents": list(documents)})}))

    def ingest_files_queued(self, paths: Sequence[str | Path], metadata: dict | None = None,
                            access: dict | None = None):
        """`access`: {"users": [...], "groups": [...]} for every file (absent: the whole tenant)."""
        files = [("files", (Path(p).name, Path(p).read_bytes())) for p in paths]
        data = {**({"metadata": json.dumps(metadata)} if metadata else {}),
                **({"access": json.dumps(access)} if access is not None else {})} or None
        return self._run(Call("POST", "/ingest", IngestResponse, {"files": files, "data": data}))

    def job(self, job_id: str):
        return self._run(Call("GET", f"/jobs/{job_id}", JobResponse))

    # --- retrieve
    def retrieve(self, query: str, top_k: int = 5, filters: dict | None = None, snapshot: str | None = None,
                 context: ContextRequest | dict | None = None, options: RetrieveOptions | dict | None = None,
                 principal: dict | None = None, group_by: str | None = None, session: str | None = None):
        """`principal` {"user", "groups"}: with a service key, the end user the answer is for. `group_by`
        "document": the best `top_k` documents, each with its best chunks (`answer.documents`). `session`: the
        conversation, which a canary rollout answers from one arm throughout."""
        request = {"query": query, "top_k": top_k, "filters": filters, "snapshot": snapshot, "session": session,
                   "context": context, "options": options or {}, "principal": principal, "group_by": group_by}
        return self._run(Call("POST", "/retrieve", RetrieveResponse, {"json": _body(RetrieveRequest, request)}))

    def retrieve_batch(self, requests: Sequence[RetrieveRequest | dict]):
        return self._run(Call("POST", "/retrieve/batch", RetrieveBatchResponse,
                              {"json": _body(RetrieveBatchRequest, {"requests": list(requests)})}))

    def report_usage(self, request_id: str, cited: Sequence[str] = (), helpful: bool | None = None,
                     principal: dict | None = None):
        """Which parts of an answer (its `request_id`) the answer written from it used: its citation labels ("[2]"),
        chunk ids or document ids. `principal`: with a service key, the end user the answer was for."""
        body = _body(UsageRequest, {"request_id": request_id, "cited": list(cited), "helpful": helpful,
                                    "principal": principal})
        return self._run(Call("POST", "/usage", UsageResponse, {"json": body}))

    def feedback(self, request_id: str, signals: Sequence[dict | FeedbackSignal] = (), helpful: bool | None = None,
                 principal: dict | None = None):
        """What became of an answer (its `request_id`): `signals` on its hits, each {"chunk_id" or "doc_id",
        "signal": "cited" | "clicked" | "helpful" | "not_helpful"}, and whether it helped. Sending the same signal
        again counts once. `principal`: with a service key, the end user the answer was for."""
        body = _body(FeedbackRequest, {"request_id": request_id, "signals": list(signals), "helpful": helpful,
                                       "principal": principal})
        return self._run(Call("POST", "/feedback", FeedbackResponse, {"json": body}))

    # --- documents
    # `principal` {"user", "groups"}: with a service key, the end user the documents are read for.
    def documents(self, limit: int = 50, cursor: str | None = None, filters: dict | None = None,
                  principal: dict | None = None):
        params = {"limit": limit, **({"cursor": cursor} if cursor else {}),
                  **({"filters": json.dumps(filters)} if filters else {})}
        return self._run(Call("GET", "/documents", DocumentListResponse, {"params": params, **_as(principal)}))

    def document(self, doc_id: str, principal: dict | None = None):
        return self._run(Call("GET", f"/documents/{id_segment(doc_id)}", DocumentResponse, _as(principal)))

    def set_access(self, doc_id: str, access: dict | None):
        """Who may read a document ({"users", "groups"}; None: the whole tenant); a build without re-embedding."""
        body = {"access": None if access is None else _body(AccessIn, access)}
        return self._run(Call("PATCH", f"/documents/{id_segment(doc_id)}/access", AccessResponse, {"json": body}))

    def document_chunks(self, doc_id: str, principal: dict | None = None):
        return self._run(Call("GET", f"/documents/{id_segment(doc_id)}/chunks", DocumentChunksResponse, _as(principal)))

    def delete_document(self, doc_id: str):
        return self._run(Call("DELETE", f"/documents/{id_segment(doc_id)}", DeleteDocumentResponse))

    # --- snapshots
    def snapshots(self):
        return self._run(Call("GET", "/snapshots", SnapshotListResponse))

    def rebuild(self):
        return self._run(Call("POST", "/snapshots", RebuildResponse))

    def promote(self, snap_hash: str):
        return self._run(Call("POST", f"/snapshots/{snap_hash}/promote", SwitchResponse))

    def rollback(self):
        return self._run(Call("POST", "/snapshots/rollback", SwitchResponse))

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
        return self._run(Call("POST", "/rollouts", RolloutResponse, {"json": body}))

    def rollouts(self):
        return self._run(Call("GET", "/rollouts", RolloutListResponse))

    def rollout(self, rollout_id: str):
        return self._run(Call("GET", f"/rollouts/{quote(rollout_id, safe='')}", RolloutResponse))

    def stop_rollout(self, rollout_id: str):
        return self._run(Call("POST", f"/rollouts/{quote(rollout_id, safe='')}/stop", RolloutResponse))

    # --- evaluation
    def upload_query_set(self, name: str, queries: Sequence[dict | BaseModel], description: str | None = None):
        body = _body(QuerySetRequest, {"name": name, "queries": list(queries), "description": description})
        return self._run(Call("POST", "/eval/query-sets", QuerySetResponse, {"json": body}))

    def query_set_from_feedback(self, name: str, min_signals: int = 3, since: str | None = None,
                                description: str | None = None):
        """A version of the set `name` made of the queries whose answers got positive feedback (`since`: ISO 8601)."""
        body = _body(FromFeedbackRequest, {"min_signals": min_signals, "since": since, "description": description})
        return self._run(Call("POST", f"/eval/query-sets/{quote(name, safe='')}/from-feedback", FromFeedbackResponse,
                              {"json": body}))

    def query_sets(self):
        return self._run(Call("GET", "/eval/query-sets", QuerySetListResponse))

    def run_eval(self, snapshot: str | None = None, query_set: str | None = None):
        body = {k: v for k, v in {"snapshot": snapshot, "query_set": query_set}.items() if v is not None}
        return self._run(Call("POST", "/eval/runs", EvalRunQueued, {"json": body}))

    def eval_runs(self, snapshot: str | None = None):
        return self._run(Call("GET", "/eval/runs", EvalRunListResponse,
                              {"params": {"snapshot": snapshot} if snapshot else {}}))

    def eval_run(self, run_id: str):
        return self._run(Call("GET", f"/eval/runs/{run_id}", EvalRunDetailResponse))

    def eval_compare(self, base: str, candidate: str, query_set: str):
        return self._run(Call("GET", "/eval/compare", EvalCompareResponse,
                              {"params": {"base": base, "candidate": candidate, "query_set": query_set}}))

    def eval_overview(self):
        return self._run(Call("GET", "/eval/overview", EvalOverviewResponse))
