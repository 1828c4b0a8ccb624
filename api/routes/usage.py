from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import PrincipalDep, ReadingTenantDep, RuntimeDep, SettingsDep, reader_of
from api.schemas import UsageRequest, UsageResponse, errors
from api.strict import StrictRoute
from eval.usage import reporter

router = APIRouter(tags=["retrieve"], responses=errors(403, 422, 503), route_class=StrictRoute)


@router.post("/usage", response_model=UsageResponse,
             summary="Report which parts of a /retrieve answer the answer written from it used (cited passages)")
async def report_usage(body: UsageRequest, rt: RuntimeDep, settings: SettingsDep, tenant: ReadingTenantDep,
                       principal: PrincipalDep) -> UsageResponse:
    # Whom the report is from, by the rules /retrieve reads by: a user key is its own principal, a service key names
    # the one the answer was for. Only that key and principal find the answer (eval/usage.py).
    who = reporter(principal.key_id, reader_of(principal, tenant, settings, body.principal))
    report = await run_in_threadpool(rt.usage.report, tenant, body.request_id, who, body.cited, body.helpful)
    return UsageResponse(**report)
