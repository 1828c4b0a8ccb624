from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from api.deps import PrincipalDep, ReadingTenantDep, RuntimeDep, SettingsDep, reader_of
from api.schemas import FeedbackRequest, FeedbackResponse, errors
from api.strict import StrictRoute
from eval.answers import Refused, reporter

router = APIRouter(tags=["retrieve"], responses=errors(403, 422, 503), route_class=StrictRoute)


@router.post("/feedback", response_model=FeedbackResponse,
             summary="Report what became of a /retrieve answer: the hits cited, clicked or judged, and if it helped")
async def post_feedback(body: FeedbackRequest, rt: RuntimeDep, settings: SettingsDep, tenant: ReadingTenantDep,
                        principal: PrincipalDep) -> FeedbackResponse:
    # Whom the feedback is from, by the rules /retrieve reads by (as POST /usage): only the key and principal the
    # answer was for find it (eval/answers.py).
    who = reporter(principal.key_id, reader_of(principal, tenant, settings, body.principal))
    try:
        out = await run_in_threadpool(rt.feedback.record, tenant, body.request_id, who,
                                      [s.target() for s in body.signals], body.helpful)
    except Refused as e:
        raise HTTPException(status_code=422, detail=str(e)) from e
    return FeedbackResponse(**out)
