from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, replace

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import PrincipalDep, ReadingTenantDep, RuntimeDep, SettingsDep, reader_of
from api.ratelimit import RetrieveLimit, spend
from api.strict import StrictRoute
from api.schemas.common import ErrorResponse, errors
from api.schemas.retrieve import check_query_chars, context_config
from eval.answers import Shown, reporter
from index_snapshots import rollouts
from index_snapshots.querying import Answer
from index_snapshots.rollouts import Served
from retrieval.context import Context
from retrieval.types import Candidate
from snapdex.logs import request_id_var, text_digest
from wire.retrieve import (ContextPassage, ContextResponse, Highlight, HitScores, HitSource, RetrieveBatchRequest,
                           RetrieveBatchResponse, RetrieveDocument, RetrieveHit, RetrieveRequest, RetrieveResponse,
                           RolloutRef)

router = APIRouter(tags=["retrieve"], responses=errors(400, 403, 404, 422, 429, 503), route_class=StrictRoute)
log = logging.getLogger("snapdex.retrieve")


def _record(request: Request, tenant: str, query: str, answer: Answer) -> None:
    request.app.state.http_metrics.observe_stages(answer.timings_ms)
    # Who asked what of which snapshot, how: the query itself stays out of the log (a digest stands in).
    log.info("retrieve", extra={"tenant": tenant, "snapshot": answer.snapshot, "cached": answer.cached,
                                "query": text_digest(query), "hits": len(answer.hits),
                                "recipe": {"stages": answer.recipe.get("stages"),
                                           "rerank": (answer.recipe.get("rerank") or {}).get("name")},
                                "timings_ms": answer.timings_ms, "warnings": len(answer.warnings)})


def _hit(h: Candidate) -> RetrieveHit:
    # The hit's place is in its first document's stored text (another source's may differ in white space).
    place = h.payload["sources"][0] if h.payload.get("sources") else {}
    start = place.get("start")
    return RetrieveHit(
        chunk_id=h.payload["chunk_hash"], doc_id=h.payload["doc_ids"][0],
        sources=[HitSource(**s) for s in h.payload["sources"]], text=h.payload["text"], score=h.score,
        scores=HitScores(**{k: v for k, v in h.scores.items() if k in HitScores.model_fields}),
        metadata=h.payload.get("metadata", {}), start=start, end=place.get("end"), pages=place.get("pages") or [],
        headings=place.get("headings") or [], table=place.get("table"),
        highlights=[Highlight(start=a + (start or 0), end=b + (start or 0), score=sc) for a, b, sc in h.highlights])


def _context(block: Context) -> ContextResponse:
    return ContextResponse(tokenizer=block.tokenizer, tokens=block.tokens, passages=[
        ContextPassage(**{**asdict(p), "highlights": [Highlight(start=a, end=b, score=s) for a, b, s in p.highlights]})
        for p in block.passages])


def _document(answer: Answer, doc_id: str, score: float, positions: tuple[int, ...]) -> RetrieveDocument:
    # Its title and source as its best hit's sources name them (a reader's view: hidden sources are gone).
    source = next((s for s in answer.hits[positions[0]].payload.get("sources", []) if s.get("doc_id") == doc_id), {})
    return RetrieveDocument(doc_id=doc_id, title=source.get("title"), source=source.get("source"), score=score,
                            hits=list(positions))


def _response(answer: Answer, request_id: str, served: Served | None = None) -> RetrieveResponse:
    hits = [_hit(h) for h in answer.hits]
    rollout = None
    if served is not None and served.rollout is not None:
        rollout = RolloutRef(id=served.rollout.id, mode=served.rollout.mode)
        for hit, arm in zip(hits, served.arms or []):
            hit.arm = arm
    return RetrieveResponse(hits=hits, snapshot=answer.snapshot, recipe=answer.recipe,
                            timings_ms=answer.timings_ms, request_id=request_id, cached=answer.cached,
                            warnings=answer.warnings, context=_context(answer.context) if answer.context else None,
                            documents=None if answer.documents is None else [
                                _document(answer, g.doc_id, g.score, g.hits) for g in answer.documents],
                            rollout=rollout, arm=served.arm if served is not None else None)


def _shown(response: RetrieveResponse) -> Shown:
    shown = Shown.of(response.snapshot,
                     [(h.chunk_id, [(s.doc_id, s.start, s.end) for s in h.sources]) for h in response.hits],
                     [(p.doc_id, p.start, p.end) for p in response.context.passages] if response.context else None)
    # Each hit's arm, so that feedback on it is credited to the arm that put it there.
    return replace(shown, arms=[h.arm for h in response.hits]) if response.rollout else shown


def _answered(rt, tenant: str, request_id: str, key_id: str | None, calls: list[dict],
              answers: list[Answer], served: Served | None = None) -> list[RetrieveResponse]:
    """The answers as responses, each remembered for usage reports and feedback (eval/answers.py) under whom it was
    for, with its query (and the rollout that `served` it); a batch's answers to one principal as one, since they
    share the request id (and so with no query: it would be ambiguous)."""
    responses = [_response(a, request_id, served) for a in answers]
    shown: dict[str, tuple[list, list[Shown]]] = {}
    for call, response in zip(calls, responses):
        who = reporter(key_id, call["reader"])
        shown.setdefault(json.dumps(who), (who, []))[1].append(_shown(response))
    for who, each in shown.values():
        if len(answers) == 1:
            rt.answers.remember(tenant, request_id, who, each[0], calls[0]["query"],
                                responses[0].rollout.id if responses[0].rollout else None)
        else:
            rt.answers.remember(tenant, request_id, who, Shown.merged(each))
    return responses


def _call(req: RetrieveRequest, settings, principal, tenant: str) -> dict:
    """A request as `SnapshotSearcher.search` keywords; bad input raises InvalidInput (a 422), a principal the key
    may not send (or must) an HTTPException (403)."""
    check_query_chars(req.query, settings.max_query_chars)
    return {"query": req.query, "top_k": req.top_k, "filters": req.filters, "snapshot": req.snapshot,
            "context": context_config(req.context), "highlights": True,
            "reader": reader_of(principal, tenant, settings, req.principal), "group_by": req.group_by,
            **req.options.model_dump()}


@router.post("/retrieve", response_model=RetrieveResponse, summary="Top chunks for a query, from one named snapshot",
             responses={404: {"model": ErrorResponse, "description": "no live snapshot, or the pinned one is not readable"}})
async def retrieve(req: RetrieveRequest, rt: RuntimeDep, settings: SettingsDep, tenant: ReadingTenantDep,
                   request: Request, principal: PrincipalDep, _: RetrieveLimit) -> RetrieveResponse:
    request_id = request_id_var.get() or uuid.uuid4().hex

    def answer(call: dict) -> tuple[Answer, RetrieveResponse]:
        # The tenant's running rollout, if any, decides which snapshot answers, or merges two (index_snapshots/
        # rollouts.py). A session is the request's, else the principal's user, else the key.
        reader = call["reader"]
        session = req.session or (reader.user if reader and reader.user else None) or principal.key_id or request_id
        served = rollouts.search(rt.searcher, rt.rollouts.running(tenant), tenant, call, session, request_id)
        return served.answer, _answered(rt, tenant, request_id, principal.key_id, [call], [served.answer], served)[0]

    found, response = await run_in_threadpool(answer, _call(req, settings, principal, tenant))
    _record(request, tenant, req.query, found)
    return response


@router.post("/retrieve/batch", response_model=RetrieveBatchResponse,
             summary="Many /retrieve requests in one call, their query vectors embedded in one model batch",
             responses={404: {"model": ErrorResponse, "description": "no live snapshot, or a pinned one is not readable"}})
async def retrieve_batch(req: RetrieveBatchRequest, rt: RuntimeDep, settings: SettingsDep, tenant: ReadingTenantDep,
                         request: Request, principal: PrincipalDep) -> RetrieveBatchResponse:
    # The retrieve rate limit counts each query of the batch (known once the body is read).
    spend(request, "retrieve", principal.rate_key, len(req.requests))
    request_id = request_id_var.get() or uuid.uuid4().hex

    def answer(calls: list[dict]) -> tuple[list[Answer], list[RetrieveResponse]]:
        found = rt.searcher.search_batch(tenant, calls)
        return found, _answered(rt, tenant, request_id, principal.key_id, calls, found)

    calls = [_call(r, settings, principal, tenant) for r in req.requests]
    answers, responses = await run_in_threadpool(answer, calls)
    for r, found in zip(req.requests, answers):
        _record(request, tenant, r.query, found)
    return RetrieveBatchResponse(answers=responses)
