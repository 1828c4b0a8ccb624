"""Webhooks: a tenant registers URLs for the events it wants (signed deliveries, retried ~24 h), sees every attempt
and redelivers by hand. See README, "Webhooks"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from api.deps import RuntimeDep, SettingsDep, TenantDep
from api.schemas.common import errors
from api.schemas.webhooks import (DeliveryListResponse, DeliveryResponse, WebhookCreatedResponse, WebhookListResponse,
                                  WebhookRequest, WebhookResponse, WebhookTestResponse)
from api.strict import StrictRoute
from notify import EVENT_TYPES
from notify.store import check_events
from notify.urls import check_webhook_url
from snapdex.runtime import Runtime

router = APIRouter(tags=["webhooks"], responses=errors(400, 404, 422, 503), route_class=StrictRoute)


def _create(rt: Runtime, tenant: str, req: WebhookRequest, allow_private: bool):
    check_webhook_url(req.url, allow_private)
    return rt.webhooks.create(tenant, req.url, check_events(req.events), req.description)


@router.post("/webhooks", status_code=201, response_model=WebhookCreatedResponse,
             summary="Register a webhook; the answer carries its signing secret, shown this once")
async def create_webhook(req: WebhookRequest, rt: RuntimeDep, settings: SettingsDep,
                         tenant: TenantDep) -> WebhookCreatedResponse:
    hook, secret = await run_in_threadpool(_create, rt, tenant, req, settings.webhook_allow_private)
    return WebhookCreatedResponse.from_hook(hook, secret=secret)


@router.get("/webhooks", response_model=WebhookListResponse, summary="The tenant's webhooks (secrets never shown)")
async def list_webhooks(rt: RuntimeDep, tenant: TenantDep) -> WebhookListResponse:
    hooks = await run_in_threadpool(rt.webhooks.list, tenant)
    return WebhookListResponse(tenant=tenant, event_types=list(EVENT_TYPES),
                               webhooks=[WebhookResponse.from_hook(h) for h in hooks])


@router.delete("/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook; pending deliveries stop")
async def delete_webhook(webhook_id: str, rt: RuntimeDep, tenant: TenantDep) -> None:
    if not await run_in_threadpool(rt.webhooks.delete, tenant, webhook_id):
        raise HTTPException(status_code=404, detail=f"webhook {webhook_id} not found")


@router.post("/webhooks/{webhook_id}/test", status_code=202, response_model=WebhookTestResponse,
             summary="Send a webhook.test event to this webhook now")
async def test_webhook(webhook_id: str, rt: RuntimeDep, tenant: TenantDep) -> WebhookTestResponse:
    event_id = await run_in_threadpool(rt.webhooks.send_test, tenant, webhook_id)
    if event_id is None:
        raise HTTPException(status_code=404, detail=f"webhook {webhook_id} not found")
    return WebhookTestResponse(webhook_id=webhook_id, event_id=event_id)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryListResponse,
            summary="The webhook's deliveries, newest first, each with every attempt")
async def list_deliveries(webhook_id: str, rt: RuntimeDep, tenant: TenantDep,
                          limit: Annotated[int, Query(ge=1, le=500)] = 50) -> DeliveryListResponse:
    if await run_in_threadpool(rt.webhooks.get, tenant, webhook_id) is None:
        raise HTTPException(status_code=404, detail=f"webhook {webhook_id} not found")
    found = await run_in_threadpool(rt.webhooks.deliveries, tenant, webhook_id, limit)
    return DeliveryListResponse(webhook_id=webhook_id, deliveries=[DeliveryResponse.from_delivery(d) for d in found])


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             response_model=DeliveryResponse, summary="Deliver the same event (same id, same body) again, now")
async def redeliver(webhook_id: str, delivery_id: str, rt: RuntimeDep, tenant: TenantDep) -> DeliveryResponse:
    again = await run_in_threadpool(rt.webhooks.redeliver, tenant, webhook_id, delivery_id)
    if again is None:
        raise HTTPException(status_code=404, detail=f"delivery {delivery_id} of webhook {webhook_id} not found")
    return DeliveryResponse.from_delivery(again)
