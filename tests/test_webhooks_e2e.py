"""Webhooks end to end: a real HTTP receiver on loopback, started here, receives every event type from a real
`snapdex serve`; each signature verifies with the README's snippet and a tampered body fails it; a receiver that is
down gets the event once it is back (deduped by id: exactly one id seen), one that never comes back dead-letters
it; ingestion and builds go on meanwhile. The retry schedule is shrunk (SNAPDEX_WEBHOOK_RETRY_SCHEDULE_S)."""

from __future__ import annotations

import json
import re
import time

import pytest

from harness.procs import MODEL, REPO, auth, free_port, redis_server, snapdex_serve, snapdex_worker, wait_until
from harness.receiver import Receiver

pytestmark = pytest.mark.slow

SCHEDULE = [0.5, 1, 2, 4, 8]  # 15.5 s from the first failure to the dead letter
ENV = dict(SNAPDEX_WEBHOOK_ALLOW_PRIVATE="true", SNAPDEX_WEBHOOK_RETRY_SCHEDULE_S=json.dumps(SCHEDULE),
           SNAPDEX_WEBHOOK_SWEEP_INTERVAL_S="0.2", SNAPDEX_WEBHOOK_TIMEOUT_S="3", SNAPDEX_BUILD_DEBOUNCE_S="0.2",
           SNAPDEX_MAX_DOCUMENT_CHARS="1000")
ALL = ["job.failed", "job.documents_failed", "snapshot.held", "snapshot.promoted", "snapshot.rolled_back",
       "recall.dropped", "config.drift"]
DOCS = [{"id": "ledger", "text": "The alpha ledger closes every quarter on the last Friday of the month."},
        {"id": "vpn", "text": "Staff reach the VPN through the north gateway only, never the south one."},
        {"id": "lunch", "text": "The canteen serves lunch from noon until two in the afternoon."}]
QUERIES = [{"id": "q1", "text": "when does the ledger close", "relevant": ["ledger"]},
           {"id": "q2", "text": "which gateway reaches the VPN", "relevant": ["vpn"]}]


def readme_verifier():
    """The verification snippet exactly as the README documents it."""
    text = (REPO / "README.md").read_text()
    code = re.search(r"<!-- webhook-verify -->\n```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - our own README
    return scope["verify_snapdex_signature"]


def wait_event(rx: Receiver, type_: str, timeout: float = 120, **data) -> dict:
    def found():
        return next((e for e in rx.of_type(type_) if all(e["data"].get(k) == v for k, v in data.items())), None)

    return wait_until(found, timeout, f"a {type_} event with {data}", interval=0.1)


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    with snapdex_serve(tmp_path_factory.mktemp("wh") / "data", tenants=("events", "retry", "dead", "other"),
                       **ENV) as service:
        yield service


def register(svc, tenant: str, url: str, events=ALL) -> dict:
    r = svc.client.post("/webhooks", json={"url": url, "events": events, "description": tenant}, headers=auth(tenant))
    assert r.status_code == 201, r.text
    return r.json()


def test_every_event_type_reaches_the_receiver_signed(svc, tmp_path):
    c, A = svc.client, auth("events")
    rx = Receiver().start()
    try:
        hook = register(svc, "events", rx.url)
        assert hook["secret"].startswith("whsec_") and set(hook["events"]) == set(ALL)
        listed = c.get("/webhooks", headers=A).json()
        assert [h["id"] for h in listed["webhooks"]] == [hook["id"]] and "secret" not in json.dumps(listed)
        assert hook["secret"] not in svc.logs()

        r = c.post(f"/webhooks/{hook['id']}/test", headers=A)
        assert r.status_code == 202
        wait_event(rx, "webhook.test")

        # A job with a document that fails (too long for SNAPDEX_MAX_DOCUMENT_CHARS): one event listing it.
        job = c.post("/ingest", json={"documents": DOCS + [{"id": "huge", "text": "word " * 400}]},
                     headers=A).json()["job_id"]
        first = svc.wait_job(job, headers=A)
        assert first["status"] == "succeeded"
        failed = wait_event(rx, "job.documents_failed", job_id=job)
        assert [d["doc_id"] for d in failed["data"]["documents"]] == ["huge"]
        assert "SNAPDEX_MAX_DOCUMENT_CHARS" in failed["data"]["documents"][0]["reason"]
        wait_event(rx, "snapshot.promoted", snapshot=first["snapshot"], action="promote", by="gate")

        # Labelled queries, then a build that loses a relevant document: the gate holds it.
        assert c.post("/eval/query-sets", json={"name": "qa", "queries": QUERIES}, headers=A).status_code == 201
        wait_until(lambda: any(r["status"] == "done" for r in c.get("/eval/runs", headers=A).json()["runs"]), 120,
                   "the first evaluation run")
        assert c.delete("/documents/vpn", headers=A).status_code == 202
        held = wait_event(rx, "snapshot.held")
        assert held["data"]["live"] == first["snapshot"] and held["data"]["verdict"]["passed"] is False
        assert any("below the floor" in r for r in held["data"]["verdict"]["reasons"])

        # Promoted by hand over the hold: who did it, and the live recall now below its floor.
        snap = held["data"]["snapshot"]
        assert c.post(f"/snapshots/{snap}/promote", headers=A).status_code == 200
        promoted = wait_event(rx, "snapshot.promoted", snapshot=snap)
        assert promoted["data"]["action"] == "override" and promoted["data"]["by"].startswith("api key ")
        dropped = wait_event(rx, "recall.dropped", snapshot=snap)
        assert dropped["data"]["previous"] == first["snapshot"] and dropped["data"]["checks"]

        assert c.post("/snapshots/rollback", headers=A).status_code == 200
        wait_event(rx, "snapshot.rolled_back", to=first["snapshot"])

        verify = readme_verifier()
        for _, headers, body in rx.received:
            event = json.loads(body)
            assert headers["X-Snapdex-Event"] == event["type"] and event["tenant"] == "events"
            assert verify(hook["secret"], body, headers["X-Snapdex-Signature"])
            tampered = body.replace(b'"tenant":"events"', b'"tenant":"evil"')
            assert tampered != body and not verify(hook["secret"], tampered, headers["X-Snapdex-Signature"])
            assert not verify("whsec_wrong", body, headers["X-Snapdex-Signature"])
        # A signature older than the tolerance is refused even with the right secret.
        _, headers, body = rx.received[0]
        old = re.sub(r"t=\d+", f"t={int(time.time()) - 3600}", headers["X-Snapdex-Signature"])
        assert not verify(hook["secret"], body, old)

        deliveries = c.get(f"/webhooks/{hook['id']}/deliveries", headers=A).json()["deliveries"]
        assert {d["event_type"] for d in deliveries} >= set(ALL) - {"job.failed", "config.drift"} | {"webhook.test"}
        assert all(d["status"] == "delivered" and d["status_code"] == 204 for d in deliveries)
        report("events seen", sorted({e["type"] for e in rx.events().values()}))
        latencies = [(t - json.loads(b)["created_at"]) * 1000 for t, _, b in rx.received]
        report("event-to-receiver ms (p50, max)", (round(sorted(latencies)[len(latencies) // 2]), round(max(latencies))))

        # Another tenant sees none of it; a wrong event type is a 422 naming the allowed ones.
        assert c.get("/webhooks", headers=auth("other")).json()["webhooks"] == []
        assert c.get(f"/webhooks/{hook['id']}/deliveries", headers=auth("other")).status_code == 404
        r = c.post("/webhooks", json={"url": rx.url, "events": ["job.exploded"]}, headers=A)
        assert r.status_code == 422 and "job.exploded" in r.text and "snapshot.held" in r.text
        assert c.delete(f"/webhooks/{hook['id']}", headers=A).status_code == 204
        assert c.get("/webhooks", headers=A).json()["webhooks"] == []
    finally:
        rx.stop()


def test_a_receiver_that_is_down_gets_the_event_once_back_and_ingestion_goes_on(svc):
    c, R = svc.client, auth("retry")
    rx = Receiver().start()
    hook = register(svc, "retry", rx.url, ["snapshot.promoted"])
    rx.stop()  # down: connections refused
    job = c.post("/ingest", json={"documents": DOCS}, headers=R).json()["job_id"]
    done = svc.wait_job(job, headers=R)  # ingestion and the build do not wait for the receiver
    assert done["status"] == "succeeded"

    def deliveries():
        return c.get(f"/webhooks/{hook['id']}/deliveries", headers=R).json()["deliveries"]

    wait_until(lambda: deliveries() and deliveries()[0]["attempts"] >= 2, 30, "two failed attempts")
    rx.fail_next = 1  # back, but the first request it gets answers 500: the same event comes again
    rx.start()
    (d,) = wait_until(lambda: [x for x in deliveries() if x["status"] == "delivered"], 30, "the delivery")
    assert [e["type"] for e in rx.events().values()] == ["snapshot.promoted"]  # exactly one id, deduped
    assert len(rx.received) == 2 and json.loads(rx.received[0][2])["id"] == json.loads(rx.received[1][2])["id"]
    log = d["attempt_log"]
    assert [a["status_code"] for a in log][-2:] == [500, 204] and all(a["status_code"] is None for a in log[:-2])
    assert log[0]["error"] and d["next_attempt_at"] is None and d["delivered_at"]
    gaps = [round(b["at"] - a["at"], 2) for a, b in zip(log, log[1:])]
    # Each retry waits at least its delay (the sweep and the queue add a little).
    assert all(g >= s - 0.05 for g, s in zip(gaps, SCHEDULE)), gaps
    report("retry gaps s (receiver down, then 500, then 204)", gaps)

    # A redelivery by hand: a new delivery of the same event (same id): the receiver still has one event.
    r = c.post(f"/webhooks/{hook['id']}/deliveries/{d['id']}/redeliver", headers=R)
    assert r.status_code == 202 and r.json()["event_id"] == d["event_id"]
    wait_until(lambda: len(rx.received) == 3, 30, "the redelivery")
    assert len(rx.events()) == 1
    rx.stop()


def test_a_receiver_that_never_comes_back_dead_letters_and_redirects_are_not_followed(svc):
    c, D = svc.client, auth("dead")
    rx = Receiver().start()
    gone = register(svc, "dead", f"http://127.0.0.1:{free_port()}/nobody")
    moved = register(svc, "dead", rx.url.replace("/hook", "/redirect"), ["job.failed"])
    try:
        for hook in (gone, moved):
            assert c.post(f"/webhooks/{hook['id']}/test", headers=D).status_code == 202
        started = time.time()
        job = c.post("/ingest", json={"documents": DOCS[:1]}, headers=D).json()["job_id"]
        assert svc.wait_job(job, headers=D)["status"] == "succeeded"

        def dead(hook):
            found = c.get(f"/webhooks/{hook['id']}/deliveries", headers=D).json()["deliveries"]
            return [x for x in found if x["event_type"] == "webhook.test" and x["status"] == "dead"]

        (d,) = wait_until(lambda: dead(gone), 60, "the dead letter")
        assert d["attempts"] == len(SCHEDULE) + 1 and d["next_attempt_at"] is None
        assert all(a["status_code"] is None and a["error"] for a in d["attempt_log"])
        report("dead-lettered after s", round(d["attempt_log"][-1]["at"] - d["attempt_log"][0]["at"], 1))
        (m,) = wait_until(lambda: dead(moved), 60, "the redirected dead letter")
        assert {a["status_code"] for a in m["attempt_log"]} == {302} and "not followed" in m["error"]
        # Each attempt reached the redirecting receiver once; the redirect's target (/hook) was never asked.
        assert [json.loads(b)["type"] for _, _, b in rx.received] == ["webhook.test"] * (len(SCHEDULE) + 1)
        assert time.time() - started < 120
    finally:
        rx.stop()


def broken_model(tmp_path) -> dict[str, str]:
    """Settings under which the packaged model's ONNX export, in a models folder of the test's own, is junk: the
    service starts (the model loads on first use), and every job fails as a whole when its chunks are embedded.
    (Junk weights fail the same way, but only after an export in a child process: most of this test's time.)"""
    import shutil

    from encoders.onnx_backend import ONNX_BACKENDS, export_dir, packaged_model_path

    models = tmp_path / "broken-models"
    out = export_dir(packaged_model_path(), models, ONNX_BACKENDS[MODEL["SNAPDEX_EMBEDDER_BACKEND"]])
    out.mkdir(parents=True)
    shutil.copy(packaged_model_path() / "tokenizer.json", out)
    (out / "model.onnx").write_bytes(b"this is not a model")
    (out / "export.json").write_text("{}")  # what marks an export as done
    return {**MODEL, "SNAPDEX_MODELS_DIR": str(models)}


def test_private_urls_are_refused_unless_allowed(tmp_path):
    with snapdex_serve(tmp_path / "data") as svc:
        r = svc.client.post("/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["job.failed"]})
        assert r.status_code == 422 and "loopback, link-local or private" in r.text
        assert "SNAPDEX_WEBHOOK_ALLOW_PRIVATE" in r.text
        r = svc.client.post("/webhooks", json={"url": "http://169.254.169.254/latest", "events": ["job.failed"]})
        assert r.status_code == 422
        r = svc.client.post("/webhooks", json={"url": "ftp://example.com/x", "events": ["job.failed"]})
        assert r.status_code == 422 and "http://" in r.text


def test_job_failed_and_config_drift(tmp_path):
    """A job that fails as a whole (here: the embedding model is junk), and a restart whose index
    config differs from the live snapshot's."""
    rx = Receiver().start()
    try:
        data = tmp_path / "data"
        with snapdex_serve(data, **ENV) as svc:
            hook = register(svc, "default", rx.url)
            job = svc.client.post("/ingest", json={"documents": DOCS}).json()["job_id"]
            live = svc.wait_job(job)["snapshot"]
        with snapdex_serve(data, **ENV, SNAPDEX_CHUNK_SIZE="128") as svc:
            drift = wait_event(rx, "config.drift", live=live)
            assert "chunker" in json.dumps(drift["data"]["parts"])
        with snapdex_serve(tmp_path / "broken", **ENV, **broken_model(tmp_path)) as svc:
            hook = register(svc, "default", rx.url, ["job.failed"])
            job = svc.client.post("/ingest", json={"documents": DOCS}).json()["job_id"]
            assert svc.wait_job(job)["status"] == "failed"
            failed = wait_event(rx, "job.failed", job_id=job)
            assert failed["data"]["error"]
            verify = readme_verifier()
            assert all(verify(hook["secret"], b, h["X-Snapdex-Signature"]) for _, h, b in rx.received
                       if json.loads(b)["type"] == "job.failed")
    finally:
        rx.stop()


def test_queued_deliveries_go_through_a_worker_of_the_webhooks_queue(tmp_path):
    """The production shape: Redis as the broker, the sweep enqueuing each due delivery on snapdex-webhooks, and a
    `snapdex worker` consuming that queue alone delivering it."""
    from functools import partial

    from api.enqueue import enqueue
    from notify.delivery import Sweeper
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings
    from workers.celery_app import configure

    data = tmp_path / "data"
    rx = Receiver().start()
    with redis_server(tmp_path / "redis") as redis_url:
        env = dict(ENV, SNAPDEX_BROKER_URL=redis_url + "/0", SNAPDEX_EMBEDDED_WORKER="false")
        settings = Settings(data_dir=data, broker_url=redis_url + "/0", embedded_worker=False)
        rt = Runtime(settings)  # the test process plays the API: it never opens the vector store
        configure(settings)
        hook, secret = rt.webhooks.create("acme", rx.url, ["config.drift"])
        event = rt.webhooks.emit("acme", "config.drift", {"live": None, "parts": ["chunker"]})
        sweeper = Sweeper(rt.webhooks, partial(enqueue, "deliver_webhook"), 0.2, lease_s=60)
        assert sweeper.sweep() == 1  # enqueued on snapdex-webhooks
        try:
            with snapdex_worker(data, "hooks", "--queues", "snapdex-webhooks", **env):
                got = wait_until(lambda: rx.events().get(event), 180, "the delivery through the worker")
            assert got["type"] == "config.drift" and got["tenant"] == "acme"
            _, headers, body = rx.received[0]
            assert readme_verifier()(secret, body, headers["X-Snapdex-Signature"])
            (d,) = rt.webhooks.deliveries("acme", hook.id)
            assert d.status == "delivered" and d.attempts == 1
        finally:
            rx.stop()
            rt.close()


def report(what: str, value) -> None:
    print(f"\n[webhooks] {what}: {value}")
