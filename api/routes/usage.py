"""What became of /retrieve answers: usage reports (POST /usage, MCP's report_usage) and feedback (POST /feedback),
recorded into one store (eval/answers.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import PrincipalDep, ReadingTenantDep, RuntimeDep, SettingsDep, reader_of
from api.schemas.common import errors
from api.strict import StrictRoute
from eval.answers import reporter
from wire.usage import FeedbackRequest, FeedbackResponse, UsageRequest, UsageResponse

router = APIRouter(tags=["retrieve"], responses=errors(403, 422, 503), route_class=StrictRoute)


async def _report(record, body: UsageRequest | FeedbackRequest, settings, tenant: str, principal, *args) -> dict:
    # Whom the report is from, by the rules /retrieve reads by: a user key is its own principal, a service key names
    # the one the answer was for. Only that key and principal find the answer (eval/answers.py).
    who = reporter(principal.key_id, reader_of(principal, tenant, settings, body.principal))
    return await run_in_threadpool(record, tenant, body.request_id, who, *args)  # Refused: a 422 (InvalidInput)


@router.post("/usage", response_model=UsageResponse,
             summary="Report which parts of a /retrieve answer the answer written from it used (cited passages)")
async def report_usage(body: UsageRequest, rt: RuntimeDep, settings: SettingsDep, tenant: ReadingTenantDep,
                       principal: PrincipalDep) -> UsageResponse:
    return UsageResponse(**await _report(rt.usage.report, body, settings, tenant, principal, body.cited,
                                         body.helpful))


@router.post("/feedback", response_model=FeedbackResponse,
             summary="Report what became of a /retrieve answer: the hits cited, clicked or judged, and if it helped")
async def post_feedback(body: FeedbackRequest, rt: RuntimeDep, settings: SettingsDep, tenant: ReadingTenantDep,
                        principal: PrincipalDep) -> FeedbackResponse:
    return FeedbackResponse(**await _report(rt.feedback.record, body, settings, tenant, principal,
                                            [s.target() for s in body.signals], body.helpful))
