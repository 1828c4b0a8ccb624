"""The outbox: `emit` writes an event and one pending delivery per subscribed webhook, inside the caller's
transaction, so an event exists exactly when the state change it reports was committed. Delivery happens later
(notify/delivery.py), never on the path of the change itself."""

from __future__ import annotations

import json
import time
import uuid

from sqlalchemy import Connection, select

from db.engine import Database
from db.tables import deliveries, events, webhooks

# Every type a webhook may subscribe to; the contract receivers switch on.
EVENT_TYPES = ("job.failed", "job.documents_failed", "snapshot.held", "snapshot.promoted", "snapshot.rolled_back",
               "recall.dropped", "config.drift", "source.sync_failed", "rollout.advanced", "rollout.promoted",
               "rollout.stopped")
# Sent by POST /webhooks/{id}/test to that webhook only, whatever it subscribed to.
TEST_EVENT = "webhook.test"


def body_of(event_id: str, type_: str, created_at: float, tenant: str, data: dict) -> str:
    return json.dumps({"type": type_, "id": event_id, "created_at": created_at, "tenant": tenant, "data": data},
                      separators=(",", ":"), sort_keys=True, default=str)


def emit(db: Database, conn: Connection, tenant: str, type_: str, data: dict, dedupe: str | None = None,
         webhook_id: str | None = None) -> str | None:
    """Record an event for the tenant's webhooks subscribed to `type_` (or for `webhook_id` alone). Returns the
    event id; None when nobody listens or an event with the same `dedupe` key was recorded already."""
    if type_ not in EVENT_TYPES and type_ != TEST_EVENT:
        raise ValueError(f"unknown event type {type_!r}; known: {', '.join(EVENT_TYPES)}")
    w = webhooks.c
    stmt = select(w.id, w.events).where(w.tenant == tenant)
    if webhook_id is not None:
        stmt = stmt.where(w.id == webhook_id)
    targets = [r["id"] for r in db.all(stmt, conn) if webhook_id is not None or type_ in json.loads(r["events"])]
    if not targets:
        return None  # nothing kept for nobody: the table holds what is to be delivered and its history
    now = time.time()
    event_id = "evt_" + uuid.uuid4().hex
    row = {"id": event_id, "tenant": tenant, "type": type_, "created_at": now, "dedupe_key": dedupe,
           "body": body_of(event_id, type_, now, tenant, data)}
    if dedupe is not None:
        if not db.insert_ignore(conn, events, row):
            return None
    else:
        conn.execute(events.insert().values(**row))
    conn.execute(deliveries.insert(), [
        {"id": "dlv_" + uuid.uuid4().hex, "webhook_id": t, "event_id": event_id, "status": "pending", "attempts": 0,
         "next_attempt_at": now, "created_at": now} for t in targets])
    return event_id
