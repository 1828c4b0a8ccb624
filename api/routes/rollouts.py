"""Rollouts (README, "Rollouts"): start one for a candidate snapshot, read them, stop one (index_snapshots/rollouts.py
does the work; /retrieve answers from them and POST /feedback decides them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from api.deps import PrincipalDep, RuntimeDep, SettingsDep, TenantDep
from api.routes.snapshots import who
from api.schemas.common import errors
from wire.rollouts import RolloutListResponse, RolloutRequest, RolloutResponse
from api.strict import StrictRoute

router = APIRouter(tags=["rollouts"], responses=errors(404, 409, 422, 503), route_class=StrictRoute)
RolloutId = Annotated[str, Path(pattern=r"^ro_[0-9a-f]{24}$", description="as POST /rollouts answered")]


@router.post("/rollouts", status_code=201, response_model=RolloutResponse,
             summary="Try a candidate snapshot on a share of live traffic, promoted or stopped on its feedback")
async def start_rollout(req: RolloutRequest, rt: RuntimeDep, settings: SettingsDep, tenant: TenantDep,
                        principal: PrincipalDep) -> RolloutResponse:
    plan = rt.rollout_plan(req.candidate, **req.plan_args(settings.rollout_steps))
    return RolloutResponse(**await run_in_threadpool(rt.rollouts.start, tenant, plan, who(principal)))


@router.get("/rollouts", response_model=RolloutListResponse, summary="The tenant's rollouts, newest first")
async def list_rollouts(rt: RuntimeDep, tenant: TenantDep) -> RolloutListResponse:
    return RolloutListResponse(rollouts=await run_in_threadpool(rt.rollouts.list, tenant))


@router.get("/rollouts/{rollout_id}", response_model=RolloutResponse,
            summary="One rollout: its state, step, each arm's figures with intervals, and its decisions")
async def get_rollout(rollout_id: RolloutId, rt: RuntimeDep, tenant: TenantDep) -> RolloutResponse:
    return RolloutResponse(**await run_in_threadpool(rt.rollouts.get, tenant, rollout_id))


@router.post("/rollouts/{rollout_id}/stop", response_model=RolloutResponse,
             summary="Stop a running rollout: the live snapshot answers everything again")
async def stop_rollout(rollout_id: RolloutId, rt: RuntimeDep, tenant: TenantDep,
                       principal: PrincipalDep) -> RolloutResponse:
    return RolloutResponse(**await run_in_threadpool(rt.rollouts.stop, tenant, rollout_id, who(principal)))
