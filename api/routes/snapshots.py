from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.auth import Principal
from api.deps import PrincipalDep, RuntimeDep, TenantDep
from api.enqueue import enqueue
from api.schemas.common import errors
from api.strict import StrictRoute
from snapdex.runtime import Runtime
from wire.snapshots import RebuildResponse, SnapshotListResponse, SnapshotResponse, SwitchResponse

router = APIRouter(tags=["snapshots"], responses=errors(404, 409, 422, 503), route_class=StrictRoute)


def who(principal: Principal) -> str:
    """Who switched by hand, as events and logs name them: the API key's public id (never the key)."""
    return f"api key {principal.key_id}" if principal.key_id else "keyless caller"


def _listing(rt: Runtime, tenant: str) -> SnapshotListResponse:
    rows = rt.manifest.list(tenant)
    live = next((r.hash for r in rows if r.status == "live"), None)
    drift = rt.config_drift().get(tenant, []) if rt.models_loaded else []
    verdicts = rt.evals.verdicts(tenant)
    return SnapshotListResponse(tenant=tenant, live=live, previous=rt.manifest.previous(tenant), config_drift=drift,
                                snapshots=[SnapshotResponse.from_row(r, verdicts.get(r.hash)) for r in reversed(rows)])


@router.get("/snapshots", response_model=SnapshotListResponse, summary="Every snapshot of the tenant, newest first")
async def list_snapshots(rt: RuntimeDep, tenant: TenantDep) -> SnapshotListResponse:
    return await run_in_threadpool(_listing, rt, tenant)


@router.post("/snapshots", status_code=202, response_model=RebuildResponse, summary="Rebuild the tenant's snapshot now")
async def rebuild(tenant: TenantDep) -> RebuildResponse:
    await run_in_threadpool(enqueue, "build_snapshot", tenant, True)
    return RebuildResponse(tenant=tenant)


@router.post("/snapshots/rollback", response_model=SwitchResponse, summary="Make the previous live snapshot live again")
async def rollback(rt: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> SwitchResponse:
    left, live = await run_in_threadpool(rt.snapshots.rollback, tenant, who(principal))
    return SwitchResponse(tenant=tenant, live=live, previous=left)


@router.post("/snapshots/{snap_hash}/promote", response_model=SwitchResponse, summary="Make a built snapshot live")
async def promote(snap_hash: str, rt: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> SwitchResponse:
    previous = await run_in_threadpool(rt.snapshots.promote, tenant, snap_hash, who(principal))
    return SwitchResponse(tenant=tenant, live=snap_hash, previous=previous)
