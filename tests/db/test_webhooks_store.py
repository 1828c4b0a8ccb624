"""The webhooks' tables on both databases: migration 0005 up and down keeping the rows, the outbox written in the
transaction of the change it reports, the delivery schedule (due, claimed once, retried, dead-lettered), and secrets
encrypted at rest."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect, select

from db.migrate import downgrade, head, upgrade
from db.tables import events, webhooks
from ingest.jobs import JobStore, NewDocument
from ingest.phases import JobStatus
from notify.delivery import Deliverer
from notify.secrets import SecretBox
from notify.store import WebhookStore

from tests.db.test_migrations import differences


@pytest.fixture
def store(catalog_db) -> WebhookStore:
    return WebhookStore(catalog_db, SecretBox(b"a server secret for tests"))


def test_migration_0005_goes_down_and_up_again_keeping_earlier_rows(catalog_db, store):
    job = JobStore(catalog_db).create("acme", [NewDocument("d1", b"x")])
    hook, _ = store.create("acme", "https://example.com/hook", ["job.failed"])
    assert downgrade(catalog_db, "0004") == (head(), "0004")
    assert "webhooks" not in inspect(catalog_db.engine).get_table_names()
    assert upgrade(catalog_db) == ("0004", head())
    assert differences(catalog_db) == [] and JobStore(catalog_db).get(job).docs_total == 1
    assert store.list("acme") == []  # 0005's tables were dropped and made again, empty


def test_events_go_to_subscribed_webhooks_in_the_changes_transaction(catalog_db, store):
    jobs = JobStore(catalog_db)
    hook, secret = store.create("acme", "https://example.com/a", ["job.failed", "job.documents_failed"])
    other, _ = store.create("acme", "https://example.com/b", ["snapshot.held"])
    store.create("beta", "https://example.com/c", ["job.failed"])  # another tenant's: never sees acme's events
    job = jobs.create("acme", [NewDocument("d1", b"x"), NewDocument("d2", b"y")])
    jobs.start(job)
    with catalog_db.tx() as conn:
        jobs.mark_document(conn, job, 0, "failed", reason="unreadable PDF")
    jobs.finish(job, JobStatus.FAILED, error="RuntimeError: boom")
    got = store.deliveries("acme", hook.id)
    assert sorted(d.event_type for d in got) == ["job.documents_failed", "job.failed"]
    assert store.deliveries("acme", other.id) == [] and store.deliveries("beta", hook.id) == []
    body = json.loads(store.outgoing(next(d.id for d in got if d.event_type == "job.documents_failed")).body)
    assert body["tenant"] == "acme" and body["type"] == "job.documents_failed" and body["id"].startswith("evt_")
    assert body["data"]["documents"] == [{"doc_id": "d1", "filename": None, "reason": "unreadable PDF"}]
    # The secret is kept encrypted: not in the catalog as such, and opened with the server's key only.
    stored = catalog_db.scalar(select(webhooks.c.secret).where(webhooks.c.id == hook.id))
    assert secret.encode() not in bytes(stored) and store.outgoing(got[0].id).secret == secret
    # Under another server key the secret does not open: the attempt fails with the reason, nothing is sent.
    other = WebhookStore(catalog_db, SecretBox(b"another key"))
    assert other.outgoing(got[0].id).secret is None
    assert Deliverer(other, schedule_s=()).deliver(got[0].id) == "dead"
    assert "sealed under another key" in next(d for d in other.deliveries("acme", hook.id) if d.id == got[0].id).error


def test_a_delivery_is_claimed_once_retried_on_schedule_then_dead(catalog_db, store):
    hook, _ = store.create("acme", "http://127.0.0.1:9/nothing-listens", ["config.drift"])
    assert store.emit("acme", "config.drift", {"parts": ["chunker"]}, dedupe="k1")
    assert store.emit("acme", "config.drift", {"parts": ["chunker"]}, dedupe="k1") is None  # the same drift again
    assert catalog_db.scalar(select(events.c.id).where(events.c.tenant == "acme")) is not None
    (due,) = store.claim_due(lease_s=60)
    assert store.claim_due(lease_s=60) == []  # claimed: not handed out again while its attempt is queued
    deliverer = Deliverer(store, schedule_s=(0.0, 0.0), timeout_s=2.0, allow_private=True)
    assert deliverer.deliver(due) == "pending"  # refused: retried after the first delay
    assert store.claim_due(lease_s=60) == [due]
    assert deliverer.deliver(due) == "pending"
    assert deliverer.deliver(due) == "dead"  # three attempts: the first and one per delay
    (d,) = store.deliveries("acme", hook.id)
    assert d.status == "dead" and d.attempts == 3 and d.next_attempt_at is None and d.status_code is None
    assert [a.attempt for a in d.log] == [1, 2, 3] and "ConnectError" in d.log[-1].error
    assert deliverer.deliver(due) == "dead"  # a duplicated task message does nothing more
    again = store.redeliver("acme", hook.id, due)
    assert again.event_id == d.event_id and again.status == "pending" and again.id != due
    assert store.redeliver("beta", hook.id, due) is None  # another tenant's delivery is not found


def test_private_urls_are_refused_at_delivery_unless_allowed(catalog_db, store):
    hook, _ = store.create("acme", "http://127.0.0.1:9/x", ["config.drift"])
    store.emit("acme", "config.drift", {})
    (due,) = store.claim_due(lease_s=60)
    assert Deliverer(store, schedule_s=(), allow_private=False).deliver(due) == "dead"
    assert "loopback, link-local or private" in store.deliveries("acme", hook.id)[0].error


def test_a_sweep_with_nothing_due_waits_for_no_writer(catalog_db, store):
    # The sweeper runs every second beside ingest, whose transactions hold the catalog's write lock: with nothing
    # due, a sweep must not queue behind them for a write transaction it would not use.
    import threading

    swept: list[list[str]] = []
    with catalog_db.tx() as conn:
        conn.execute(webhooks.insert().values(id="w-held", tenant="acme", url="http://127.0.0.1:9/x", events="[]",
                                              secret=b"", created_at=0.0))
        t = threading.Thread(target=lambda: swept.append(store.claim_due(lease_s=60)), daemon=True)
        t.start()
        t.join(10)
        assert swept == [[]], "a sweep with nothing due waited for the open write transaction"
