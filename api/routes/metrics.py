from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import OperatorDep
from api.strict import StrictRoute

router = APIRouter(tags=["operations"], route_class=StrictRoute)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, _: OperatorDep) -> Response:
    body = await run_in_threadpool(generate_latest, request.app.state.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
