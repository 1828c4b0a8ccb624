"""Faults done to real processes: Redis goes away under a running service, and comes back."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.procs import _ping, _stop, free_port, snapdex_serve, wait_until

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
