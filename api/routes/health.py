from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import RuntimeDep
from api.schemas.common import errors
from api.schemas.health import HealthResponse, ReadyResponse
from api.strict import StrictRoute

router = APIRouter(tags=["operations"], route_class=StrictRoute)


@router.get("/health", response_model=HealthResponse, summary="Liveness")
async def health() -> HealthResponse:
    return HealthResponse()


@router.get("/ready", response_model=ReadyResponse, summary="Readiness: catalog, vector store, Redis, models",
            responses={503: {"model": ReadyResponse, "description": "not ready: the failing check says why"},
                       **errors(401)})
async def ready(rt: RuntimeDep) -> JSONResponse:
    checks = await run_in_threadpool(rt.readiness)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(ReadyResponse(ready=ok, checks=checks).model_dump(), status_code=200 if ok else 503)
