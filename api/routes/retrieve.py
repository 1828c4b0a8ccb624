from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import RuntimeDep, SettingsDep, TenantDep
from api.ratelimit import RetrieveLimit
from api.schemas import (ErrorResponse, HitScores, HitSource, RetrieveHit, RetrieveRequest, RetrieveResponse,
                         check_query_chars, errors)
from index_snapshots.querying import Answer
from index_snapshots.resolve import SnapshotNotFound
from snapdex.logs import request_id_var, text_digest
from store.base import StoreUnavailable

router = APIRouter(tags=["retrieve"], responses=errors(400, 404, 422, 429, 503))
log = logging.getLogger("snapdex.retrieve")


def _record(request: Request, tenant: str, query: str, answer: Answer) -> None:
    request.app.state.http_metrics.observe_stages(answer.timings_ms)
    # Who asked what of which snapshot, how: the query itself stays out of the log (a digest stands in).
    log.info("retrieve", extra={"tenant": tenant, "snapshot": answer.snapshot, "cached": answer.cached,
                                "query": text_digest(query), "hits": len(answer.hits),
                                "recipe": {"stages": answer.recipe.get("stages"),
                                           "rerank": (answer.recipe.get("rerank") or {}).get("name")},
                                "timings_ms": answer.timings_ms, "warnings": len(answer.warnings)})


def _response(answer: Answer, request_id: str) -> RetrieveResponse:
    hits = [
        RetrieveHit(chunk_id=h.payload["chunk_hash"], doc_id=h.payload["doc_ids"][0],
                    sources=[HitSource(**s) for s in h.payload["sources"]], text=h.payload["text"], score=h.score,
                    scores=HitScores(**{k: v for k, v in h.scores.items() if k in HitScores.model_fields}),
                    metadata=h.payload.get("metadata", {}))
        for h in answer.hits
    ]
    return RetrieveResponse(hits=hits, snapshot=answer.snapshot, recipe=answer.recipe, timings_ms=answer.timings_ms,
                            request_id=request_id, cached=answer.cached, warnings=answer.warnings)


@router.post("/retrieve", response_model=RetrieveResponse, summary="Top chunks for a query, from one named snapshot",
             responses={404: {"model": ErrorResponse, "description": "no live snapshot, or the pinned one is not readable"}})
async def retrieve(req: RetrieveRequest, rt: RuntimeDep, settings: SettingsDep, tenant: TenantDep, request: Request,
                   _: RetrieveLimit) -> RetrieveResponse:
    try:
        check_query_chars(req.query, settings.max_query_chars)
        answer = await run_in_threadpool(rt.searcher.search, tenant, req.query, req.top_k, req.filters, req.snapshot,
                                         **req.options.model_dump())
    except SnapshotNotFound as e:
        raise HTTPException(status_code=404, detail=str(e)) from e
    except ValueError as e:  # bad filters, or a stage this service has not configured: the message names it
        raise HTTPException(status_code=422, detail=str(e)) from e
    except StoreUnavailable as e:
        raise HTTPException(status_code=503, detail="vector store unavailable",
                            headers={"Retry-After": str(max(int(e.retry_after), 1))}) from e
    _record(request, tenant, req.query, answer)
    return _response(answer, request_id_var.get() or uuid.uuid4().hex)
