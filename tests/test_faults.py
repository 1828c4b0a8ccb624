"""Faults done to real processes: Redis goes away and comes back; kill -9 mid-build; SIGTERM with a request in
flight; SIGTERM to a worker mid-task."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from harness.procs import _ping, _stop, free_port, snapdex_serve, wait_until

pytestmark = pytest.mark.slow


class Redis:
    """A redis-server on a fixed port that a test can stop and start again."""

    def __init__(self, tmp) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
        self.port, self.dir, self.binary, self.proc = free_port(), tmp, binary, None
        tmp.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      str(self.dir), "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _ping(redis.Redis(port=self.port)), 20, "redis-server")

    def stop(self) -> None:
        _stop(self.proc)


def test_redis_down_ingest_answers_503_retrieval_keeps_working_and_both_recover(tmp_path):
    redis = Redis(tmp_path / "redis")
    redis.start()
    try:
        # Redis as broker, embedding cache and rate-limit store. (The worker runs in the service's process: the
        # embedded vector engine allows one process per data folder, and no Qdrant server runs here.)
        env = dict(SNAPDEX_BROKER_URL=redis.url + "/0", SNAPDEX_REDIS_URL=redis.url + "/1")
        with snapdex_serve(tmp_path / "data", **env) as svc:
            c = svc.client
            job = c.post("/ingest", json={"documents": [{"id": "a", "text": "Refunds take five business days."}]})
            live = svc.wait_job(job.json()["job_id"])["snapshot"]
            assert c.get("/ready").status_code == 200

            redis.stop()
            r = c.post("/ingest", json={"documents": [{"id": "b", "text": "The VPN needs an update abroad."}]})
            assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
            assert "queue unavailable" in r.json()["detail"]
            for _ in range(5):  # retrieval needs Qdrant and the model, not Redis
                hit = c.post("/retrieve", json={"query": "refund"})
                assert hit.status_code == 200 and hit.json()["snapshot"] == live
            ready = c.get("/ready")
            assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"

            redis.start()  # same port, empty: the API's side of the broker and the cache come back by themselves
            wait_until(lambda: c.get("/ready").status_code == 200, 60, "ready again")
            job = c.post("/ingest", json={"documents": [{"id": "b", "text": "The VPN needs an update abroad."}]})
            assert job.status_code == 202
            assert c.post("/retrieve", json={"query": "refund"}).json()["snapshot"] == live
            # The worker reconnected by itself, and the request refused during the outage left nothing behind (a
            # job left 'queued' by it used to hold back every later build of the tenant).
            view = svc.wait_job(job.json()["job_id"], timeout=120)
            assert view["status"] == "succeeded" and view["snapshot"] != live
            assert 'snapdex_jobs{status="queued",tenant="default"} 0.0' in c.get("/metrics").text
    finally:
        redis.stop()


def scifact(scifact_dir, n: int, skip: int = 0) -> list[dict]:
    with (scifact_dir / "corpus.jsonl").open() as fh:
        rows = [json.loads(line) for line, _ in zip(fh, range(skip + n))][skip:]
    return [{"id": d["_id"], "text": f"{d['title']}\n\n{d['text']}"} for d in rows]


def test_service_killed_mid_build_keeps_live_and_builds_again_on_restart(tmp_path, scifact_dir):
    data = tmp_path / "data"
    fast = {"SNAPDEX_WINDOWS_ENABLED": "false"}  # a fifth of the embedding; the build is what is under test
    with snapdex_serve(data, **fast) as svc:
        c = svc.client
        first = svc.wait_job(c.post("/ingest", json={"documents": scifact(scifact_dir, 20)}).json()["job_id"])
        v1 = first["snapshot"]
        job = c.post("/ingest", json={"documents": scifact(scifact_dir, 400, skip=20)}).json()["job_id"]
        # Poll until the new snapshot is being written, then kill -9: its collection is half written.
        wait_until(lambda: c.get(f"/jobs/{job}").json()["phase"] == "building", 300, "the build", interval=0.05)
        wait_until(lambda: any(x["status"] == "building" for x in c.get("/snapshots").json()["snapshots"]), 60,
                   "the snapshot being written", interval=0.02)
        svc.kill()

    # Straight after the crash, before anything recovers: v1 is still live; the build is unfinished.
    from index_snapshots.manifest import Manifest
    from db import Database

    manifest = Manifest(Database(data / "catalog.sqlite3"))
    assert manifest.live("default").hash == v1
    assert [s.status for s in manifest.unfinished()] == ["building"]

    with snapdex_serve(data, **fast) as svc:
        c = svc.client
        view = svc.wait_job(job)
        assert view["status"] == "succeeded", view
        # Its documents were all in before the crash: only the build was done again, not the ingest.
        assert view["attempts"] == 1 and view["counts"]["new"] == 400 and view["counts"]["failed"] == 0
        listing = c.get("/snapshots").json()
        v2 = listing["live"]
        assert v2 == view["snapshot"] != v1 and listing["previous"] == v1
        # Nothing lost or duplicated: the live snapshot holds v1's chunks plus the job's, each once. The build
        # done again has the interrupted one's hash (same content, same config), so it took its place.
        assert [x["hash"] for x in listing["snapshots"]] == [v2, v1]
        live = listing["snapshots"][0]
        assert live["chunks"] == first["progress"]["chunks_total"] + view["progress"]["chunks_total"]
        assert live["documents"] == 420
        hit = c.post("/retrieve", json={"query": scifact(scifact_dir, 1, skip=300)[0]["text"][:200], "top_k": 1})
        assert hit.json()["snapshot"] == v2 and hit.json()["hits"][0]["doc_id"] == scifact(scifact_dir, 1, skip=300)[0]["id"]
    from store import EdgeStore

    store = EdgeStore(data / "qdrant")  # the service has stopped: no half-written collection was left behind
    assert len(store.list_collections()) == 2
    store.close()


def test_sigterm_lets_the_request_in_flight_finish_and_the_job_resume(tmp_path, scifact_dir):
    import signal
    import threading

    data = tmp_path / "data"
    body = json.dumps({"documents": scifact(scifact_dir, 60)}).encode()
    half_sent, go_on = threading.Event(), threading.Event()

    def slow_body():  # the request is still arriving when the service is told to stop
        yield body[: len(body) // 2]
        half_sent.set()
        go_on.wait(30)
        yield body[len(body) // 2:]

    with snapdex_serve(data, log_level="info") as svc:
        answers: list = []
        sender = threading.Thread(target=lambda: answers.append(svc.client.post(
            "/ingest", content=slow_body(), headers={"content-type": "application/json"})))
        sender.start()
        assert half_sent.wait(30)
        time.sleep(0.5)
        svc.proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        go_on.set()
        sender.join(60)
        assert answers and answers[0].status_code == 202, answers and answers[0].text
        job = answers[0].json()["job_id"]
        # It stops by itself, within the grace (uvicorn exits by re-raising the SIGTERM it handled).
        assert svc.proc.wait(90) in (0, -signal.SIGTERM), svc.logs()
        assert "Finished server process" in svc.log.read_text()

    # The job the request made is kept: finished before the stop, or resumed now.
    with snapdex_serve(data) as svc:
        view = svc.wait_job(job)
        assert view["status"] == "succeeded" and view["counts"]["new"] == 60, view


def test_worker_sigterm_finishes_its_task_and_leaves_the_next_in_redis(tmp_path, scifact_dir):
    import signal

    from ingest.jobs import NewDocument
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings
    from harness.procs import snapdex_worker
    from workers import tasks
    from workers.celery_app import configure

    redis = Redis(tmp_path / "redis")
    redis.start()
    try:
        data = tmp_path / "data"
        env = dict(SNAPDEX_BROKER_URL=redis.url + "/0", SNAPDEX_EMBEDDED_WORKER="false")
        settings = Settings(data_dir=data, broker_url=redis.url + "/0", embedded_worker=False)
        rt = Runtime(settings)  # stages and enqueues as the API does; never opens the store
        configure(settings)
        docs = [NewDocument(d["id"], d["text"].encode(), {}) for d in scifact(scifact_dir, 120)]
        job_id = rt.jobs.create("default", docs)
        tasks.ingest_job.delay(job_id)
        with snapdex_worker(data, "first", **env) as worker:
            wait_until(lambda: rt.jobs.get(job_id).chunks_done > 0, 240, "the worker to be embedding")
            worker.send_signal(signal.SIGTERM)  # warm shutdown: the task in hand runs to its end
            assert worker.wait(300) == 0
        view = rt.jobs.get(job_id)
        assert view.status == "running" and view.phase == "awaiting_build", (view.status, view.phase)
        assert view.attempts == 1 and view.docs_done == 120 and view.chunks_done == view.chunks_total
        # The build it enqueued waits in Redis for the next worker.
        with snapdex_worker(data, "second", **env):
            wait_until(lambda: rt.jobs.get(job_id).status in ("succeeded", "failed"), 240, "the build")
        assert rt.jobs.get(job_id).status == "succeeded" and rt.jobs.get(job_id).attempts == 1
    finally:
        redis.stop()


@pytest.mark.docker
def test_qdrant_unreachable_retrieve_answers_503_and_both_recover(tmp_path, qdrant_server):
    """The server backend (testcontainers; skips without a Docker engine): Qdrant stops answering, comes back."""
    url = f"http://{qdrant_server.get_container_host_ip()}:{qdrant_server.get_exposed_port(6333)}"
    env = dict(SNAPDEX_STORE_BACKEND="qdrant", SNAPDEX_QDRANT_URL=url, SNAPDEX_QDRANT_TIMEOUT_S="2",
               SNAPDEX_RESULT_CACHE_SIZE="0")
    with snapdex_serve(tmp_path / "data", **env) as svc:
        c = svc.client
        job = c.post("/ingest", json={"documents": [{"id": "a", "text": "Refunds take five business days."}]})
        live = svc.wait_job(job.json()["job_id"])["snapshot"]
        container = qdrant_server.get_wrapped_container()
        container.pause()  # answers nothing (a paused process keeps its port, unlike a restarted container)
        try:
            r = c.post("/retrieve", json={"query": "refund"})
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
            assert c.get("/ready").status_code == 503
            job = c.post("/ingest", json={"documents": [{"id": "b", "text": "The VPN needs an update abroad."}]})
            assert job.status_code == 202  # accepted: the build retries with backoff until Qdrant is back
            time.sleep(5)
        finally:
            container.unpause()
        wait_until(lambda: c.post("/retrieve", json={"query": "refund"}).status_code == 200, 60, "retrieval back")
        view = svc.wait_job(job.json()["job_id"], timeout=300)
        assert view["status"] == "succeeded" and view["snapshot"] != live
        assert c.post("/retrieve", json={"query": "vpn abroad"}).json()["hits"][0]["doc_id"] == "b"
