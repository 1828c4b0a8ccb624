"""The embedded default after a crash: kill -9 `snapdex serve` mid-job, start it again, the job finishes."""

from __future__ import annotations

import json

import pytest

from harness.procs import snapdex_serve, wait_until

pytestmark = pytest.mark.slow


def test_killed_service_resumes_its_job_on_restart(tmp_path, scifact_dir):
    docs = []
    with (scifact_dir / "corpus.jsonl").open() as fh:
        for line, _ in zip(fh, range(150)):
            d = json.loads(line)
            docs.append({"id": d["_id"], "text": f"{d['title']}\n\n{d['text']}"})
    data = tmp_path / "data"
    with snapdex_serve(data) as svc:
        job_id = svc.client.post("/ingest", json={"documents": docs}).json()["job_id"]
        wait_until(lambda: svc.client.get(f"/jobs/{job_id}").json()["progress"]["chunks_done"] > 0, 180,
                   "embedding to start")
        svc.kill()
    with snapdex_serve(data) as svc:
        job = svc.wait_job(job_id)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        assert job["counts"]["new"] == 150 and job["progress"]["documents_done"] == 150
        assert job["counts"]["chunks_reused"] > 0  # what was embedded before the crash was not embedded again
        # Re-sending the same documents changes nothing.
        again = svc.wait_job(svc.client.post("/ingest", json={"documents": docs}).json()["job_id"])
        assert again["counts"]["unchanged"] == 150 and again["snapshot"] == job["snapshot"]
