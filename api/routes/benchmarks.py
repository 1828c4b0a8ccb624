"""Benchmark runs against the do-it-yourself peer: import one (the operator's), read the history (any key).

Benchmarks measure the service, not a tenant's data: every key reads them, only the operator adds to them (anyone
when the service is keyless, as with /metrics).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import OperatorDep, RuntimeDep
from api.schemas.benchmarks import (BenchmarkDetailResponse, BenchmarkImportRequest, BenchmarkListResponse,
                                    BenchmarkResponse)
from api.schemas.common import errors
from api.strict import StrictRoute
from eval.benchmarks import NAME
from store.payload import INT64_MAX  # the catalog's INTEGER and the engine's: nothing larger is stored

router = APIRouter(prefix="/benchmarks", tags=["benchmarks"], responses=errors(422), route_class=StrictRoute)
BenchmarkName = Annotated[str, Query(pattern=NAME.pattern, description="which benchmark, e.g. peers")]
AnyBenchmarkName = Annotated[str | None, Query(pattern=NAME.pattern, description="only this benchmark's runs")]
BenchmarkId = Annotated[int, Path(ge=1, le=INT64_MAX)]


@router.post("", response_model=BenchmarkResponse, status_code=201,
             summary="Import one run of bench/peer_bench.py (its results JSON); the same run again is kept once",
             responses={200: {"model": BenchmarkResponse,
                              "description": "this run (name, date, commit) was imported before: the stored one"},
                        **errors(400, 413)})
async def import_benchmark(req: BenchmarkImportRequest, rt: RuntimeDep, _: OperatorDep, response: Response,
                           name: BenchmarkName = "peers") -> BenchmarkResponse:
    run, created = await run_in_threadpool(rt.benchmarks.put, name, req.body())
    if not created:
        response.status_code = 200
    return BenchmarkResponse.from_run(run, created=created)


@router.get("", response_model=BenchmarkListResponse, summary="Benchmark runs, newest first, summarised")
async def list_benchmarks(rt: RuntimeDep, name: AnyBenchmarkName = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> BenchmarkListResponse:
    runs = await run_in_threadpool(rt.benchmarks.list, name, limit)
    return BenchmarkListResponse(benchmarks=[BenchmarkResponse.from_run(r) for r in runs])


@router.get("/{benchmark_id}", response_model=BenchmarkDetailResponse, summary="One run, whole",
            responses=errors(404))
async def get_benchmark(benchmark_id: BenchmarkId, rt: RuntimeDep) -> BenchmarkDetailResponse:
    run = await run_in_threadpool(rt.benchmarks.get, benchmark_id)
    if run is None:
        raise HTTPException(404, f"no benchmark run {benchmark_id}")
    return BenchmarkDetailResponse.from_run(run)
