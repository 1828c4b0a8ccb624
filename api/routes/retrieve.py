from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from api.deps import RuntimeDep, TenantDep
from api.schemas import HitSource, RetrieveHit, RetrieveRequest, RetrieveResponse
from index_snapshots.resolve import SnapshotNotFound
from retrieval.search import SearchParams
from snapdex.runtime import Runtime
from store.base import StoreUnavailable

router = APIRouter(tags=["retrieve"])


def _answer(rt: Runtime, tenant: str, req: RetrieveRequest) -> RetrieveResponse:
    t0 = time.perf_counter()
    snap = rt.resolver.resolve(tenant, req.snapshot)
    params = SearchParams(top_k=req.top_k, filters=req.filters)
    # A snapshot built with another embedding model cannot take this model's query vectors: answer from its
    # BM25 leg rather than from a mismatched vector space, and say so.
    same_model = snap.config.get("embedding", {}).get("model") == rt.embedder.model_id
    t1 = time.perf_counter()
    hits = rt.retriever.retrieve(snap.collection, req.query, params, dense=same_model)
    t2 = time.perf_counter()
    return RetrieveResponse(
        hits=[
            RetrieveHit(chunk_id=h.payload["chunk_hash"], doc_id=h.payload["doc_ids"][0],
                        sources=[HitSource(**s) for s in h.payload["sources"]], text=h.payload["text"],
                        score=h.score, metadata=h.payload.get("metadata", {}))
            for h in hits
        ],
        snapshot=snap.hash,
        recipe={"first_stage": "hybrid" if same_model else "bm25", "fusion": params.fusion,
                "candidates": params.candidates, "embedding": snap.config.get("embedding"),
                "bm25": snap.config.get("bm25")},
        timings_ms={"resolve": round((t1 - t0) * 1000, 3), "search": round((t2 - t1) * 1000, 3)},
        warnings=[] if same_model else [
            f"snapshot {snap.hash[:12]} was built with embedding model {snap.config.get('embedding', {}).get('model')}; "
            f"this service loads {rt.embedder.model_id}: answered from BM25 alone until a rebuilt snapshot is live"
        ],
    )


@router.post("/retrieve", response_model=RetrieveResponse, summary="Top chunks for a query, from one named snapshot")
async def retrieve(req: RetrieveRequest, rt: RuntimeDep, tenant: TenantDep) -> RetrieveResponse:
    try:
        response = await run_in_threadpool(_answer, rt, tenant, req)
    except SnapshotNotFound as e:
        raise HTTPException(status_code=404, detail=str(e)) from e
    except ValueError as e:  # bad filters name the bad value
        raise HTTPException(status_code=422, detail=str(e)) from e
    except StoreUnavailable as e:
        raise HTTPException(status_code=503, detail="vector store unavailable",
                            headers={"Retry-After": str(int(e.retry_after) or 1)}) from e
    response.timings_ms["total"] = response.timings_ms["resolve"] + response.timings_ms["search"]
    return response
