"""Sources: folders, S3 buckets, Git repositories and websites a tenant registers, which snapdex keeps in sync on
request or on a schedule (sources/). See README, "Sources"."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from api.deps import RuntimeDep, SettingsDep, TenantDep
from api.enqueue import enqueue
from api.schemas.common import errors, stored_access
from api.schemas.sources import (SourceDeletedResponse, SourceListResponse, SourcePatch, SourceRequest, SourceResponse,
                                 SyncCounts, SyncListResponse, SyncQueued, SyncResponse)
from api.strict import StrictRoute, invalid, refusal, refused
from snapdex.runtime import Runtime
from snapdex.settings import Settings
from sources import schedule as schedules
from sources.kinds import SourceError, ValidationError, checked, kind_of, split_secrets
from sources.store import COUNTS, SealedUnderAnotherKey, SourceRow

router = APIRouter(tags=["sources"], responses=errors(404, 422, 503), route_class=StrictRoute)


def _not_found(source_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"source {source_id} not found")


async def _unless_busy(source_id: str, action, *args):
    """`action` (which answers None for a source that is not there) off the event loop: 409 while a sync of the
    source runs (SyncRunning, a Conflict), 404 for no such source."""
    done = await run_in_threadpool(action, *args)
    if done is None:
        raise _not_found(source_id)
    return done


def _view(rt: Runtime, row: SourceRow) -> SourceResponse:
    last = rt.sources.last_finished(row.id)
    state = ("syncing" if row.running_sync else "new" if last is None
             else "ok" if last.status == "succeeded" else "failed")
    last_view = SyncResponse.from_row(last, rt.sources.chunks_embedded(last.job_ids)) if last else None
    return SourceResponse(
        id=row.id, tenant=row.tenant, name=row.name, kind=row.kind, config=row.config, credentials=row.secret_names,
        schedule=schedules.shown(row.schedule), metadata=row.metadata, access=row.access, state=state,
        created_at=row.created_at, updated_at=row.updated_at, next_sync_at=row.next_sync_at,
        running_sync=row.running_sync, last_sync=last_view,
        counts=SyncCounts(**{k: last.counts.get(k, 0) for k in COUNTS}) if last else None,
        last_error=last.error if last and last.status == "failed" else None, documents=rt.sources.held(row.id))


def _schedule(value, settings: Settings) -> dict | None:
    raw = value.model_dump() if hasattr(value, "model_dump") else value
    return schedules.parse(raw, settings.source_min_interval_s)  # InvalidInput naming body.schedule


def _config(rt: Runtime, kind_name: str, config: dict) -> tuple[dict, dict]:
    """A config that may be saved, split into (shown, sealed); 422 naming the field, or saying what the operator's
    settings do not allow."""
    kind = kind_of(kind_name)
    try:
        model = checked(kind, config, rt.source_limits)
    except ValidationError as e:
        raise invalid(e, ("body", "config")) from e
    except SourceError as e:
        raise refused(refusal(("body", "config"), "source_config", str(e))) from e
    return split_secrets(kind, model.model_dump(exclude_unset=True))


def _merge(stored: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7396) of a config's top-level fields: a field set to null goes back to its default."""
    out = dict(stored)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@router.post("/sources", status_code=201, response_model=SourceResponse, responses=errors(409),
             summary="Register a source (folder, s3, git, web); its credentials are sealed and never shown")
async def create_source(req: SourceRequest, rt: RuntimeDep, settings: SettingsDep, tenant: TenantDep
                        ) -> SourceResponse:
    stored_schedule = _schedule(req.schedule, settings)

    def create():
        shown, sealed = _config(rt, req.kind, req.config)
        row = rt.sources.create(tenant, req.name, req.kind, shown, sealed, stored_schedule, dict(req.metadata),
                                stored_access(req.access),
                                schedules.next_time(stored_schedule, time.time()))
        return _view(rt, row)

    return await run_in_threadpool(create)  # NameTaken: a 409


@router.get("/sources", response_model=SourceListResponse, summary="The tenant's sources, each with its last sync")
async def list_sources(rt: RuntimeDep, tenant: TenantDep) -> SourceListResponse:
    return SourceListResponse(tenant=tenant, sources=await run_in_threadpool(
        lambda: [_view(rt, r) for r in rt.sources.list(tenant)]))


def _source(rt: Runtime, tenant: str, source_id: str) -> SourceRow:
    row = rt.sources.get(tenant, source_id)
    if row is None:
        raise _not_found(source_id)
    return row


@router.get("/sources/{source_id}", response_model=SourceResponse,
            summary="A source: its state, last and next sync, counts and last error")
async def get_source(source_id: str, rt: RuntimeDep, tenant: TenantDep) -> SourceResponse:
    return await run_in_threadpool(lambda: _view(rt, _source(rt, tenant, source_id)))


@router.patch("/sources/{source_id}", response_model=SourceResponse, responses=errors(409),
              summary="Change a source's name, config (merged), schedule, metadata or access; the next sync applies it")
async def patch_source(source_id: str, req: SourcePatch, rt: RuntimeDep, settings: SettingsDep, tenant: TenantDep
                       ) -> SourceResponse:
    sent = req.model_fields_set
    new_schedule = _schedule(req.schedule, settings) if "schedule" in sent else None

    def patch():
        row = _source(rt, tenant, source_id)
        values: dict = {}
        secrets = None
        if req.name is not None:
            values["name"] = req.name
        if req.config is not None:
            try:
                sealed = rt.sources.secrets(row)
            except SealedUnderAnotherKey:  # the server key changed: only credentials sent now count
                sealed = {}
            full = _merge({**row.config, **sealed}, req.config)
            values["config"], secrets = _config(rt, row.kind, full)
        if "schedule" in sent:
            values["schedule"] = new_schedule
            values["next_sync_at"] = schedules.next_time(new_schedule, time.time())
        if req.metadata is not None:
            values["metadata"] = dict(req.metadata)
        if "access" in sent:
            values["access"] = stored_access(req.access)
        return _view(rt, rt.sources.update(tenant, source_id, values, secrets))

    return await run_in_threadpool(patch)  # NameTaken: a 409


@router.post("/sources/{source_id}/sync", status_code=202, response_model=SyncQueued, responses=errors(409),
             summary="Sync the source now (one sync of a source runs at a time)")
async def sync_source(source_id: str, rt: RuntimeDep, tenant: TenantDep) -> SyncQueued:
    sync_id = await _unless_busy(source_id, rt.syncer.start, tenant, source_id)
    try:
        await run_in_threadpool(enqueue, "sync_source", sync_id)
    except HTTPException:  # 503: not queued, so the source is free for the next request
        await run_in_threadpool(rt.sources.discard, sync_id)
        raise
    return SyncQueued(sync_id=sync_id, source_id=source_id)


@router.get("/sources/{source_id}/syncs", response_model=SyncListResponse,
            summary="The source's syncs, newest first: status, counts, failures with reasons, seconds")
async def list_syncs(source_id: str, rt: RuntimeDep, tenant: TenantDep,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> SyncListResponse:
    def syncs():
        _source(rt, tenant, source_id)
        return [SyncResponse.from_row(s, rt.sources.chunks_embedded(s.job_ids))
                for s in rt.sources.syncs(source_id, limit)]

    return SyncListResponse(source_id=source_id, syncs=await run_in_threadpool(syncs))


@router.delete("/sources/{source_id}", status_code=202, response_model=SourceDeletedResponse, responses=errors(409),
               summary="Delete a source; its documents leave the next snapshot")
async def delete_source(source_id: str, rt: RuntimeDep, tenant: TenantDep) -> SourceDeletedResponse:
    deleted = await _unless_busy(source_id, rt.syncer.delete_source, tenant, source_id)
    if deleted:
        await run_in_threadpool(enqueue, "build_snapshot", tenant)
    return SourceDeletedResponse(source_id=source_id, documents=deleted)
