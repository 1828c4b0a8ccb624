"""/webhooks (api/routes/webhooks.py): subscriptions, their deliveries and test events."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from notify import EVENT_TYPES
from wire.common import NonBlank, _no_control


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[NonBlank, AfterValidator(_no_control)] = Field(max_length=2048,
                                                                  description="http(s) URL the events are POSTed to")
    events: list[str] = Field(min_length=1, max_length=32, description="event types to receive",
                              json_schema_extra={"items": {"enum": list(EVENT_TYPES)}})
    description: str = Field(default="", max_length=500)


class WebhookResponse(BaseModel):
    id: str = Field(description="wh_...: names it in /webhooks/{id}/...")
    tenant: str
    url: str = Field(description="where events are POSTed; checked again before every attempt")
    events: list[str] = Field(description="the event types it receives")
    description: str
    created_at: float = Field(description="epoch seconds")

    @classmethod
    def from_hook(cls, h, **extra) -> "WebhookResponse":
        return cls(**vars(h), **extra)  # notify.store.Webhook: the same fields


class WebhookCreatedResponse(WebhookResponse):
    secret: str = Field(description="signs every delivery (X-Snapdex-Signature); shown this once, keep it")


class WebhookListResponse(BaseModel):
    tenant: str
    event_types: list[str] = Field(description="every type a webhook may subscribe to")
    webhooks: list[WebhookResponse]


class DeliveryAttemptResponse(BaseModel):
    attempt: int
    at: float
    status_code: int | None = Field(description="null: no HTTP answer (refused, timed out)")
    latency_ms: float
    error: str | None


class DeliveryResponse(BaseModel):
    id: str
    webhook_id: str
    event_id: str = Field(description="the idempotency id: a redelivery carries the same one")
    event_type: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    status_code: int | None = Field(description="of the last attempt")
    latency_ms: float | None = Field(description="of the last attempt")
    error: str | None = Field(description="of the last attempt")
    next_attempt_at: float | None = Field(description="when it is tried again; null once delivered or dead")
    created_at: float
    delivered_at: float | None
    attempt_log: list[DeliveryAttemptResponse]

    @classmethod
    def from_delivery(cls, d) -> "DeliveryResponse":
        return cls(id=d.id, webhook_id=d.webhook_id, event_id=d.event_id, event_type=d.event_type, status=d.status,
                   attempts=d.attempts, status_code=d.status_code, latency_ms=d.latency_ms, error=d.error,
                   next_attempt_at=d.next_attempt_at, created_at=d.created_at, delivered_at=d.delivered_at,
                   attempt_log=[DeliveryAttemptResponse(**vars(a)) for a in d.log])


class DeliveryListResponse(BaseModel):
    webhook_id: str
    deliveries: list[DeliveryResponse]


class WebhookTestResponse(BaseModel):
    webhook_id: str
    event_id: str

