"""Self-tuning and retrieval profiles: POST /tuning searches a tenant's stage parameters on its labelled queries;
/profiles lists the versions, and a rollback or a manual activation is one call."""

from __future__ import annotations

from dataclasses import asdict

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool

from api.deps import RuntimeDep, TenantDep
from api.enqueue import enqueue
from api.schemas.common import errors
from api.schemas.tuning import (ProfileListResponse, ProfileResponse, ProfileSwitchResponse, TuningListResponse,
                                TuningQueued, TuningRequestIn, TuningResponse)
from api.strict import StrictRoute
from index_snapshots.tuning import TuningRequest
from snapdex.runtime import Runtime
from store.payload import INT64_MAX  # the catalog's INTEGER and the engine's: nothing larger is stored

router = APIRouter(tags=["tuning"], responses=errors(404, 409, 422, 503), route_class=StrictRoute)


def _queue(rt: Runtime, tenant: str, request: TuningRequest) -> str:
    rt.tuner.check(tenant, request)
    run = rt.profiles.create_tuning(tenant, request.as_dict())
    enqueue("tune_profile", tenant, run.id)
    return run.id


@router.post("/tuning", status_code=202, response_model=TuningQueued,
             summary="Tune the tenant's retrieval profile on its labelled queries (k-fold cross-validation)",
             responses={409: {"description": "no live snapshot to tune on yet"}, **errors(400)})
async def start_tuning(req: TuningRequestIn, rt: RuntimeDep, tenant: TenantDep) -> TuningQueued:
    request = TuningRequest(tuple(req.query_sets), req.folds, req.metric, req.seed, req.level, req.synthetic)
    run_id = await run_in_threadpool(_queue, rt, tenant, request)
    return TuningQueued(tuning_id=run_id, tenant=tenant)


@router.get("/tuning", response_model=TuningListResponse, summary="The tenant's tuning runs, newest first")
async def list_tuning(rt: RuntimeDep, tenant: TenantDep) -> TuningListResponse:
    runs = await run_in_threadpool(rt.profiles.tunings, tenant)
    return TuningListResponse(tenant=tenant, runs=[TuningResponse.from_run(r) for r in runs])


@router.get("/tuning/{tuning_id}", response_model=TuningResponse, summary="One tuning run: progress, then the result")
async def get_tuning(tuning_id: str, rt: RuntimeDep, tenant: TenantDep) -> TuningResponse:
    run = await run_in_threadpool(rt.profiles.tuning, tenant, tuning_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"tuning run {tuning_id} not found")
    return TuningResponse.from_run(run)


def _listing(rt: Runtime, tenant: str) -> ProfileListResponse:
    live = rt.profiles.live(tenant)
    return ProfileListResponse(
        tenant=tenant, live=live.version, previous=rt.profiles.previous(tenant),
        default={k: v for k, v in asdict(rt.pipeline.defaults).items()},
        profiles=[ProfileResponse.from_profile(p) for p in reversed(rt.profiles.list(tenant))],
        switches=rt.profiles.switches(tenant))


@router.get("/profiles", response_model=ProfileListResponse, summary="The tenant's retrieval profiles")
async def list_profiles(rt: RuntimeDep, tenant: TenantDep) -> ProfileListResponse:
    return await run_in_threadpool(_listing, rt, tenant)


@router.post("/profiles/rollback", response_model=ProfileSwitchResponse,
             summary="Make the previous live retrieval profile live again")
async def rollback_profile(rt: RuntimeDep, tenant: TenantDep) -> ProfileSwitchResponse:
    left, live = await run_in_threadpool(rt.profiles.rollback, tenant)
    return ProfileSwitchResponse(tenant=tenant, live=live, previous=left)


@router.post("/profiles/{version}/activate", response_model=ProfileSwitchResponse,
             summary="Make a recorded profile (or 0, the global default) live by hand, e.g. one the test rejected")
async def activate_profile(version: Annotated[int, Path(ge=0, le=INT64_MAX)], rt: RuntimeDep,
                           tenant: TenantDep) -> ProfileSwitchResponse:
    previous = await run_in_threadpool(rt.profiles.activate, tenant, version)
    return ProfileSwitchResponse(tenant=tenant, live=version, previous=previous)
