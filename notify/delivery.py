"""One delivery attempt, and the sweep that schedules them.

An attempt POSTs the event's stored bytes, signed now, with bounded timeouts and no redirects followed (a 3xx is a
failure: following it would let a receiver point the service anywhere). A 2xx delivers; anything else is retried on
the backoff schedule (SNAPDEX_WEBHOOK_RETRY_SCHEDULE_S, ~24 h in all by default), then the delivery is dead-lettered:
kept with every attempt, redeliverable by hand. Nothing here runs on the path of ingestion, builds or retrieval."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import httpx

from notify.signing import EVENT_HEADER, SIGNATURE_HEADER, sign
from notify.store import WebhookStore
from notify.urls import check_webhook_url

log = logging.getLogger(__name__)

USER_AGENT = "snapdex-webhooks/1"


@dataclass
class Deliverer:
    store: WebhookStore
    schedule_s: Sequence[float]  # wait before retry n (1-based); past the end: dead
    timeout_s: float = 10.0
    allow_private: bool = False

    def deliver(self, delivery_id: str) -> str | None:
        """Attempt one pending delivery; returns its status afterwards (None: no such delivery, e.g. its webhook
        was deleted). A delivery already settled is left alone: a duplicated task message does nothing."""
        out = self.store.outgoing(delivery_id)
        if out is None or out.status != "pending":
            return out.status if out else None
        started = time.perf_counter()
        code, error = None, None
        try:
            if out.secret is None:
                raise ValueError(out.problem)
            check_webhook_url(out.url, self.allow_private)  # again: DNS may point elsewhere now
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_HEADER: out.event_type,
                       SIGNATURE_HEADER: sign(out.secret, out.body)}
            timeout = httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s))
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                r = client.post(out.url, content=out.body, headers=headers)
            code = r.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
        except (httpx.HTTPError, ValueError, OSError) as e:
            error = f"{type(e).__name__}: {e}"
        latency = (time.perf_counter() - started) * 1000.0
        delivered = error is None
        n = out.attempts + 1
        retry_in = None if delivered or n > len(self.schedule_s) else float(self.schedule_s[n - 1])
        status = self.store.record(delivery_id, code, latency, error, delivered, retry_in)
        if status == "dead":
            log.warning("webhook delivery %s of %s to tenant %s dead after %d attempts: %s", delivery_id,
                        out.event_type, out.tenant, n, error)
        elif not delivered:
            log.info("webhook delivery %s attempt %d failed (%s); next in %.1f s", delivery_id, n, error, retry_in)
        return status


class Sweeper:
    """Every `interval_s`: hand the deliveries that are due to `enqueue` (a Celery task per delivery). The catalog
    is the schedule, so retries survive restarts and no 24 h countdown sits in a broker."""

    def __init__(self, store: WebhookStore, enqueue: Callable[[str], None], interval_s: float, lease_s: float) -> None:
        self.store, self.enqueue, self.interval_s, self.lease_s = store, enqueue, interval_s, lease_s
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="webhook-sweeper", daemon=True)

    def start(self) -> "Sweeper":
        self.thread.start()
        return self

    def sweep(self) -> int:
        ids = self.store.claim_due(self.lease_s)
        for delivery_id in ids:
            self.enqueue(delivery_id)
        return len(ids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sweep()
            except Exception:  # the catalog or the broker is down for now: the next sweep tries again
                log.exception("webhook sweep failed")

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
