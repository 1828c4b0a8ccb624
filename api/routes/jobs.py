from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from api.deps import RuntimeDep, TenantDep
from api.schemas.common import errors
from api.strict import StrictRoute
from wire.jobs import JobResponse

router = APIRouter(tags=["ingest"], responses=errors(404, 422), route_class=StrictRoute)


@router.get("/jobs/{job_id}", response_model=JobResponse, summary="Status, progress, counts and failures of a job")
async def get_job(job_id: str, rt: RuntimeDep, tenant: TenantDep) -> JobResponse:
    view = await run_in_threadpool(rt.jobs.get, job_id)
    if view is None or view.tenant != tenant:
        raise HTTPException(status_code=404, detail=f"job {job_id} not found")
    snap = await run_in_threadpool(rt.manifest.get, tenant, view.snapshot) if view.snapshot else None
    return JobResponse.from_view(view, snap.status if snap else None)
