"""Labelled query sets and evaluation runs: upload, list, read, compare."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.concurrency import run_in_threadpool

from api.auth import Principal
from api.deps import PrincipalDep, RuntimeDep, SettingsDep, TenantDep, ViewingTenantDep, reader_of
from api.enqueue import enqueue
from api.schemas.common import errors
from api.schemas.retrieve import check_query_chars
from api.strict import StrictRoute
from eval.metrics import metric_names
from eval.store import LabelledQuery
from ingest.access import Reader
from snapdex.runtime import Runtime
from snapdex.settings import Settings
from store.payload import INT64_MAX  # the catalog's INTEGER and the engine's: nothing larger is stored
from wire.evaluation import (EvalCompareResponse, EvalOverviewResponse, EvalRunDetailResponse, EvalRunListResponse,
                             EvalRunQueued, EvalRunRequest, EvalRunResponse, FromFeedbackRequest, FromFeedbackResponse,
                             LabelledQueryOut, OverviewQuerySet, OverviewRun, QueryChange, QueryResultOut,
                             QuerySetDetailResponse, QuerySetListResponse, QuerySetRequest, QuerySetResponse, SET_NAME)
from wire.snapshots import SnapshotResponse

router = APIRouter(prefix="/eval", tags=["evaluation"], responses=errors(400, 404, 422, 503), route_class=StrictRoute)
HASH = r"^[0-9a-f]{64}$"


@router.post("/query-sets", response_model=QuerySetResponse, status_code=201,
             summary="Upload labelled queries; a changed set under the same name becomes its next version",
             responses={200: {"description": "same content as the newest version: nothing new stored"}})
async def upload_query_set(req: QuerySetRequest, rt: RuntimeDep, settings: SettingsDep, tenant: TenantDep,
                           response: Response) -> QuerySetResponse:
    if len(req.queries) > settings.max_queries_per_set:
        raise HTTPException(422, f"query set has {len(req.queries)} queries; at most {settings.max_queries_per_set}")
    for q in req.queries:
        check_query_chars(q.text, settings.max_query_chars, f"query {q.id!r}")
    queries = [LabelledQuery(q.id, q.text, q.judgments()) for q in req.queries]
    principal = req.principal.model_dump() if req.principal else None
    ref, created = await _put_set(rt, tenant, req.name, queries, req.description, principal, response)
    return QuerySetResponse.from_ref(ref, created=created, evaluation="queued")


async def _put_set(rt: Runtime, tenant: str, name: str, queries: list[LabelledQuery], description: str | None,
                   principal: dict | None, response: Response):
    """Store the set (200 when its newest version has the same content) and queue its evaluation."""
    ref, created = await run_in_threadpool(rt.evals.put_query_set, tenant, name, queries, description, principal)
    if not created:
        response.status_code = 200
    await run_in_threadpool(enqueue, "evaluate", tenant, ref.name)  # score the kept snapshots on it
    return ref, created


# Issue 35 names this route without the /eval prefix the other query-set routes have: both paths serve it.
contract_router = APIRouter(tags=["evaluation"], responses=errors(400, 404, 422, 503), route_class=StrictRoute)
FROM_FEEDBACK = dict(response_model=FromFeedbackResponse, status_code=201,
                     summary="Make a query set of the queries whose answers got positive feedback, and the documents "
                             "credited",
                     responses={200: {"description": "same content as the newest version: nothing new stored"}})


@contract_router.post("/query-sets/{name}/from-feedback", **FROM_FEEDBACK)
@router.post("/query-sets/{name}/from-feedback", **FROM_FEEDBACK)
async def query_set_from_feedback(name: Annotated[str, Path(pattern=SET_NAME)], req: FromFeedbackRequest,
                                  rt: RuntimeDep, settings: SettingsDep, tenant: TenantDep,
                                  response: Response) -> FromFeedbackResponse:
    labels = await run_in_threadpool(rt.feedback.labels, tenant, req.min_signals, req.since_epoch(),
                                     settings.max_queries_per_set)
    if not labels.queries:
        keep = "" if settings.feedback_keep_queries else " (SNAPDEX_FEEDBACK_KEEP_QUERIES is false: no query is kept)"
        raise HTTPException(422, f"no query has a document credited by min_signals={req.min_signals} signals in "
                                 f"{labels.answers} answers with feedback since {req.since or 'the first kept'}"
                                 f"{keep}")
    ref, created = await _put_set(rt, tenant, name, labels.queries, req.description, None, response)
    return FromFeedbackResponse(**QuerySetResponse.from_ref(ref, created=created, evaluation="queued").model_dump(),
                                answers=labels.answers, signals=labels.signals)


@router.get("/query-sets", response_model=QuerySetListResponse, summary="Every version of every query set")
async def list_query_sets(rt: RuntimeDep, tenant: TenantDep) -> QuerySetListResponse:
    refs = await run_in_threadpool(rt.evals.query_sets, tenant)
    return QuerySetListResponse(tenant=tenant, query_sets=[QuerySetResponse.from_ref(r) for r in refs])


def _query_set(rt: Runtime, tenant: str, name: str, version: int | None) -> QuerySetDetailResponse:
    ref = rt.evals.query_set(tenant, name, version)
    if ref is None:
        raise HTTPException(404, f"tenant {tenant} has no query set {name!r}" + (f" v{version}" if version else ""))
    items = [LabelledQueryOut(id=q.id, text=q.text, relevant=q.relevant) for q in rt.evals.queries(ref.id)]
    return QuerySetDetailResponse(**QuerySetResponse.from_ref(ref).model_dump(), items=items)


@router.get("/query-sets/{name}", response_model=QuerySetDetailResponse, summary="One version (default: newest)")
async def get_query_set(name: str, rt: RuntimeDep, tenant: TenantDep,
                        version: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None) -> QuerySetDetailResponse:
    return await run_in_threadpool(_query_set, rt, tenant, name, version)


@router.delete("/query-sets/{name}", response_model=QuerySetResponse,
               summary="Stop running a set after builds; its versions and runs stay")
async def retire_query_set(name: str, rt: RuntimeDep, tenant: TenantDep) -> QuerySetResponse:
    return QuerySetResponse.from_ref(await run_in_threadpool(rt.evals.retire, tenant, name))


def _check_run_request(rt: Runtime, tenant: str, req: EvalRunRequest) -> None:
    # The worker's own check, run now so that a bad request is a 404 (NotFound) here rather than a failed task.
    rt.evaluator.targets(tenant, req.query_set, req.snapshot)


@router.post("/runs", response_model=EvalRunQueued, status_code=202,
             summary="Score kept snapshots on active query sets now (finished runs are reused)",
             responses={404: {"description": "no such active query set, or the snapshot is not readable"}})
async def queue_runs(req: EvalRunRequest, rt: RuntimeDep, tenant: TenantDep) -> EvalRunQueued:
    await run_in_threadpool(_check_run_request, rt, tenant, req)
    await run_in_threadpool(enqueue, "evaluate", tenant, req.query_set, req.snapshot, "manual")
    return EvalRunQueued(tenant=tenant)


@router.get("/runs", response_model=EvalRunListResponse, summary="Evaluation runs, newest first")
async def list_runs(rt: RuntimeDep, tenant: TenantDep, snapshot: Annotated[str | None, Query(pattern=HASH)] = None,
                    query_set: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> EvalRunListResponse:
    rows = await run_in_threadpool(rt.evals.runs, tenant, snapshot, query_set, None, limit)
    return EvalRunListResponse(tenant=tenant, runs=[EvalRunResponse.from_row(r) for r in rows])


def _run_detail(rt: Runtime, tenant: str, run_id: str) -> EvalRunDetailResponse:
    run = rt.evals.run(tenant, run_id)
    if run is None:
        raise HTTPException(404, f"tenant {tenant} has no evaluation run {run_id}")
    labelled = {q.id: q for q in rt.evals.queries(run.set_id)}
    results = [QueryResultOut(query_id=r.query_id, text=labelled[r.query_id].text, metrics=r.metrics,
                              relevant=labelled[r.query_id].relevant, ranks=r.ranks, retrieved=r.retrieved)
               for r in rt.evals.results(run.id)]
    return EvalRunDetailResponse(**EvalRunResponse.from_row(run).model_dump(), recipe=run.recipe, results=results)


@router.get("/runs/{run_id}", response_model=EvalRunDetailResponse, summary="One run with its per-query results")
async def get_run(run_id: str, rt: RuntimeDep, tenant: TenantDep) -> EvalRunDetailResponse:
    return await run_in_threadpool(_run_detail, rt, tenant, run_id)


def visible_changes(rt: Runtime, tenant: str, reader: Reader, entries: list[dict]) -> tuple[list[dict], int]:
    """The changed queries of a drill-down `reader` may see: those whose every relevant document it may read (the
    query's text and ranks are then about its own documents), each naming only the readable documents among those
    that took their place; and how many were left out. A document the catalog does not know is not readable."""
    named = {d for e in entries for d in (*e["ranks_before"], *e["ranks_after"], *e["retrieved_instead"])}
    lists = rt.catalog.access_lists(tenant, named)

    def readable(doc_id: str) -> bool:
        return doc_id in lists and reader.sees_document(lists[doc_id])

    kept = [{**e, "retrieved_instead": [d for d in e["retrieved_instead"] if readable(d)]} for e in entries
            if all(readable(d) for d in (*e["ranks_before"], *e["ranks_after"], *e["missed"]))]
    return kept, len(entries) - len(kept)


def _compare(rt: Runtime, tenant: str, base: str, candidate: str, query_set: str, version: int | None,
             metric: str, reader: Reader | None = None) -> EvalCompareResponse:
    c = rt.evaluator.compare(tenant, base, candidate, query_set, version, metric)
    gained, lost, hidden = c["gained"], c["lost"], 0
    if reader is not None:
        (gained, hidden_gained), (lost, hidden_lost) = (visible_changes(rt, tenant, reader, gained),
                                                        visible_changes(rt, tenant, reader, lost))
        hidden = hidden_gained + hidden_lost
    return EvalCompareResponse(
        tenant=tenant, query_set=c["query_set"].name, version=c["query_set"].version, metric=metric,
        base=EvalRunResponse.from_row(c["base"]), candidate=EvalRunResponse.from_row(c["candidate"]),
        comparable=c["base"].recipe_key == c["candidate"].recipe_key,
        gained=[QueryChange(**e) for e in gained], lost=[QueryChange(**e) for e in lost],
        unchanged=c["unchanged"], hidden=hidden)


def viewer_reader(principal: Principal, tenant: str, settings: Settings) -> Reader | None:
    """Whom a dashboard route filters for: a user key's own principal; None (everything) for an admin key."""
    return reader_of(principal, tenant, settings) if principal.scope == "user" else None


@router.get("/compare", response_model=EvalCompareResponse,
            summary="Which queries gained and which lost between two snapshots, with the documents they missed")
async def compare(rt: RuntimeDep, tenant: ViewingTenantDep, principal: PrincipalDep, settings: SettingsDep,
                  base: Annotated[str, Query(pattern=HASH)],
                  candidate: Annotated[str, Query(pattern=HASH)], query_set: str,
                  version: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
                  metric: str = "recall@10") -> EvalCompareResponse:
    reader = viewer_reader(principal, tenant, settings)
    return await run_in_threadpool(_compare, rt, tenant, base, candidate, query_set, version, metric, reader)


def overview(rt: Runtime, tenant: str, viewer: str = "admin") -> EvalOverviewResponse:
    o = rt.evaluator.overview(tenant)
    order = {s.hash: i for i, s in enumerate(o["snapshots"])}
    active = {r.id for r in rt.evals.active_sets(tenant)}
    sets = []
    for ref in o["query_sets"]:
        runs = sorted(o["series"].get(ref.id, {}).values(), key=lambda r: (order.get(r.snapshot, len(order)), r.created_at))
        sets.append(OverviewQuerySet(
            name=ref.name, version=ref.version, queries=ref.queries, created_at=ref.created_at, retired_at=ref.retired_at,
            active=ref.id in active, runs=[OverviewRun(run_id=r.id, snapshot=r.snapshot, created_at=r.created_at,
                                                       trigger=r.trigger, recipe_key=r.recipe_key,
                                                       current_recipe=r.recipe_key == o["recipe_key"],
                                                       metrics=r.metrics, latency_ms=r.latency_ms) for r in runs]))
    policy = rt.settings.gate_policy
    return EvalOverviewResponse(
        tenant=tenant, tenants=[tenant],  # a key sees its own tenant only
        live=next((s.hash for s in o["snapshots"] if s.status == "live"), None),
        previous=rt.manifest.previous(tenant), gate={"floors": policy.floors, "max_drop": policy.max_drop},
        metrics=metric_names(rt.settings.eval_ks), switches=o["switches"], query_sets=sets, viewer=viewer,
        snapshots=[SnapshotResponse.from_row(s, o["verdicts"].get(s.hash)) for s in o["snapshots"]])


@router.get("/overview", response_model=EvalOverviewResponse,
            summary="Snapshots, gate verdicts and every query set's metrics per snapshot: the dashboard's data")
async def get_overview(rt: RuntimeDep, tenant: ViewingTenantDep, principal: PrincipalDep) -> EvalOverviewResponse:
    # Aggregates only (no query text, no document): a user key sees the same as an admin key.
    return await run_in_threadpool(overview, rt, tenant, principal.scope)
