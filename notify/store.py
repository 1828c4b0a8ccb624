"""Webhooks of each tenant and their delivery log (GitHub's model: every attempt kept, a redelivery is a new
delivery of the same event, so a receiver dedupes on the event id)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update

from db.engine import Database
from db.tables import deliveries, delivery_attempts, events, webhooks
from errors import InvalidInput
from notify.events import EVENT_TYPES, TEST_EVENT, emit
from notify.secrets import SecretBox, new_secret


@dataclass
class Webhook:
    id: str
    tenant: str
    url: str
    events: list[str]
    description: str
    created_at: float


@dataclass
class Attempt:
    attempt: int
    at: float
    status_code: int | None
    latency_ms: float
    error: str | None


@dataclass
class Delivery:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: str  # pending | delivered | dead
    attempts: int
    next_attempt_at: float | None
    created_at: float
    delivered_at: float | None
    status_code: int | None
    latency_ms: float | None
    error: str | None
    log: list[Attempt] = field(default_factory=list)


@dataclass
class Outgoing:
    """What one attempt needs: where, under which secret, which bytes."""
    delivery_id: str
    tenant: str
    url: str
    secret: str | None  # None: it cannot be opened (the server key changed); the attempt records why
    event_type: str
    body: bytes
    status: str
    attempts: int
    problem: str | None = None


def check_events(names: list[str]) -> list[str]:
    bad = [n for n in names if n not in EVENT_TYPES]
    if bad or not names:
        raise InvalidInput(f"events {bad or names} not allowed; allowed: {', '.join(EVENT_TYPES)} (one or more)")
    return sorted(set(names))


class WebhookStore:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box

    # --- webhooks -------------------------------------------------------------------------------------

    def create(self, tenant: str, url: str, event_types: list[str], description: str = "") -> tuple[Webhook, str]:
        """A new webhook and its signing secret: the only time the secret leaves the service."""
        hook = Webhook("wh_" + uuid.uuid4().hex[:20], tenant, url, check_events(event_types), description, time.time())
        secret = new_secret()
        with self.db.tx() as conn:
            conn.execute(webhooks.insert().values(id=hook.id, tenant=tenant, url=url, events=json.dumps(hook.events),
                                                  description=description, secret=self.box.seal(secret),
                                                  created_at=hook.created_at))
        return hook, secret

    @staticmethod
    def _hook(r) -> Webhook:
        return Webhook(r["id"], r["tenant"], r["url"], json.loads(r["events"]), r["description"], r["created_at"])

    def list(self, tenant: str) -> list[Webhook]:
        w = webhooks.c
        stmt = select(w.id, w.tenant, w.url, w.events, w.description, w.created_at).where(w.tenant == tenant)
        return [self._hook(r) for r in self.db.all(stmt.order_by(w.created_at))]

    def get(self, tenant: str, webhook_id: str) -> Webhook | None:
        w = webhooks.c
        r = self.db.first(select(w.id, w.tenant, w.url, w.events, w.description, w.created_at)
                          .where(w.tenant == tenant, w.id == webhook_id))
        return self._hook(r) if r else None

    def delete(self, tenant: str, webhook_id: str) -> bool:
        """Its deliveries go with it (pending ones are not attempted any more)."""
        with self.db.tx() as conn:
            w = webhooks.c
            if self.db.scalar(select(w.id).where(w.tenant == tenant, w.id == webhook_id), conn) is None:
                return False
            ids = select(deliveries.c.id).where(deliveries.c.webhook_id == webhook_id)
            conn.execute(delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(ids)))
            conn.execute(delete(deliveries).where(deliveries.c.webhook_id == webhook_id))
            conn.execute(delete(webhooks).where(w.id == webhook_id))
            return True

    def send_test(self, tenant: str, webhook_id: str) -> str | None:
        with self.db.tx() as conn:
            return emit(self.db, conn, tenant, TEST_EVENT, {"webhook_id": webhook_id,
                                                            "message": "a test event from snapdex"},
                        webhook_id=webhook_id)

    def emit(self, tenant: str, type_: str, data: dict, dedupe: str | None = None) -> str | None:
        """An event on its own transaction: for changes that are not a catalog write (config drift at start-up)."""
        with self.db.tx() as conn:
            return emit(self.db, conn, tenant, type_, data, dedupe)

    # --- the delivery log -----------------------------------------------------------------------------------

    _COLUMNS = (deliveries, events.c.type.label("event_type"))

    def _delivery(self, r) -> Delivery:
        d = {k: r[k] for k in ("id", "webhook_id", "event_id", "event_type", "status", "attempts", "next_attempt_at",
                               "created_at", "delivered_at", "status_code", "latency_ms", "error")}
        return Delivery(**d)

    def deliveries(self, tenant: str, webhook_id: str, limit: int = 50) -> list[Delivery]:
        """Newest first, each with its attempts."""
        d = deliveries.c
        rows = self.db.all(select(*self._COLUMNS).join(events, events.c.id == d.event_id)
                           .join(webhooks, webhooks.c.id == d.webhook_id)
                           .where(d.webhook_id == webhook_id, webhooks.c.tenant == tenant)
                           .order_by(d.created_at.desc(), d.id).limit(limit))
        out = [self._delivery(r) for r in rows]
        if out:
            a = delivery_attempts.c
            by_id = {x.id: x for x in out}
            for r in self.db.all(select(delivery_attempts).where(a.delivery_id.in_(list(by_id)))
                                 .order_by(a.delivery_id, a.attempt)):
                by_id[r["delivery_id"]].log.append(Attempt(r["attempt"], r["at"], r["status_code"], r["latency_ms"],
                                                           r["error"]))
        return out

    def redeliver(self, tenant: str, webhook_id: str, delivery_id: str) -> Delivery | None:
        """A new delivery of the same event (same id, same bytes), due now; None when there is no such delivery."""
        d = deliveries.c
        with self.db.tx() as conn:
            row = self.db.first(select(d.event_id).join(webhooks, webhooks.c.id == d.webhook_id)
                                .where(d.id == delivery_id, d.webhook_id == webhook_id, webhooks.c.tenant == tenant),
                                conn)
            if row is None:
                return None
            now = time.time()
            new_id = "dlv_" + uuid.uuid4().hex
            conn.execute(deliveries.insert().values(id=new_id, webhook_id=webhook_id, event_id=row["event_id"],
                                                    status="pending", attempts=0, next_attempt_at=now,
                                                    created_at=now))
        return next(x for x in self.deliveries(tenant, webhook_id) if x.id == new_id)

    def last_deliveries(self, tenant: str, per_webhook: int = 5) -> dict[str, list[Delivery]]:
        return {h.id: self.deliveries(tenant, h.id, per_webhook) for h in self.list(tenant)}

    def counts(self) -> dict[tuple[str, str], int]:
        """Deliveries per (tenant, status), for monitoring: dead ones are what an operator looks at."""
        d = deliveries.c
        rows = self.db.all(select(webhooks.c.tenant, d.status, func.count().label("n"))
                           .join(webhooks, webhooks.c.id == d.webhook_id).group_by(webhooks.c.tenant, d.status))
        return {(r["tenant"], r["status"]): r["n"] for r in rows}

    # --- what the sweeper and the delivery task use ---------------------------------------------------------

    def claim_due(self, lease_s: float, limit: int = 100, now: float | None = None) -> list[str]:
        """Pending deliveries whose attempt is due, each pushed `lease_s` ahead so the next sweep (here or on
        another host) does not enqueue it again while its attempt is queued or running."""
        now = time.time() if now is None else now
        d = deliveries.c
        due = self.db.all(select(d.id, d.next_attempt_at).where(d.status == "pending", d.next_attempt_at <= now)
                          .order_by(d.next_attempt_at).limit(limit))
        claimed = []
        if not due:  # the usual case, once a second: no write transaction to open
            return claimed
        with self.db.tx() as conn:
            for r in due:
                if conn.execute(update(deliveries).where(d.id == r["id"], d.status == "pending",
                                                         d.next_attempt_at == r["next_attempt_at"])
                                .values(next_attempt_at=now + lease_s)).rowcount == 1:
                    claimed.append(r["id"])
        return claimed

    def outgoing(self, delivery_id: str) -> Outgoing | None:
        d, w = deliveries.c, webhooks.c
        r = self.db.first(select(d.id, d.status, d.attempts, w.tenant, w.url, w.secret, events.c.type, events.c.body)
                          .join(webhooks, w.id == d.webhook_id).join(events, events.c.id == d.event_id)
                          .where(d.id == delivery_id))
        if r is None:
            return None
        try:
            secret, problem = self.box.open(r["secret"]), None
        except ValueError as e:
            secret, problem = None, str(e)
        return Outgoing(r["id"], r["tenant"], r["url"], secret, r["type"], r["body"].encode(), r["status"],
                        r["attempts"], problem)

    def record(self, delivery_id: str, status_code: int | None, latency_ms: float, error: str | None,
               delivered: bool, retry_in: float | None) -> str:
        """One attempt, and what follows it: delivered, due again in `retry_in` seconds, or dead (None).
        Returns the delivery's new status."""
        now = time.time()
        status = "delivered" if delivered else "pending" if retry_in is not None else "dead"
        d = deliveries.c
        with self.db.tx() as conn:
            self.db.lock(conn, "delivery", delivery_id)  # two attempts at once (a duplicated message): one at a time
            attempt = (self.db.scalar(select(d.attempts).where(d.id == delivery_id), conn) or 0) + 1
            conn.execute(delivery_attempts.insert().values(delivery_id=delivery_id, attempt=attempt, at=now,
                                                           status_code=status_code, latency_ms=latency_ms,
                                                           error=error))
            conn.execute(update(deliveries).where(d.id == delivery_id).values(
                status=status, attempts=attempt, status_code=status_code, latency_ms=latency_ms, error=error,
                delivered_at=now if delivered else None,
                next_attempt_at=now + retry_in if status == "pending" else None))
        return status
