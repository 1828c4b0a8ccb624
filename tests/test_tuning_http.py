"""Self-tuning over HTTP, as a tenant's operator uses it against `snapdex serve`: POST /tuning, follow the run,
read the profiles, see the profile named in every answer and evaluation run, roll it back and activate it by hand."""

from __future__ import annotations

import pytest

from harness.procs import auth, snapdex_serve, wait_until
from tests.test_tuning import corpus

pytestmark = pytest.mark.slow


def test_tuning_a_tenant_profile_over_http(tmp_path):
    docs, queries = corpus()
    # A global default that leans on sentence windows, which this tenant's documents make misleading.
    with snapdex_serve(tmp_path / "data", tenants=("acme", "empty"), SNAPDEX_GATE_FLOORS="{}",
                       SNAPDEX_RERANK="late-interaction", SNAPDEX_LATE_WEIGHT_WINDOWS="3",
                       SNAPDEX_LATE_WEIGHT_BM25="0.5") as svc:
        c, h = svc.client, auth("acme")
        r = c.post("/tuning", json={}, headers=h)
        assert r.status_code == 422 and "no labelled query set" in r.json()["detail"]
        assert c.get("/profiles", headers=h).json()["profiles"] == []

        job = c.post("/ingest", json={"documents": [{"id": k, "text": v} for k, v in docs.items()]}, headers=h)
        svc.wait_job(job.json()["job_id"], headers=h)
        labelled = [{"id": q, "text": t, "relevant": [f"d{q[1:]}"]} for q, t in queries.items()]
        assert c.post("/eval/query-sets", json={"name": "faq", "queries": labelled}, headers=h).status_code == 201
        assert c.post("/tuning", json={"metric": "ndcg@7"}, headers=h).status_code == 422
        assert c.post("/tuning", json={"folds": 1}, headers=h).status_code == 422

        r = c.post("/tuning", json={"folds": 4}, headers=h)
        assert r.status_code == 202, r.text
        tuning_id = r.json()["tuning_id"]
        run = wait_until(lambda: (x := c.get(f"/tuning/{tuning_id}", headers=h).json())["status"] in ("done", "failed")
                         and x, 300, "the tuning run", interval=0.5)
        assert run["status"] == "done", run
        result = run["result"]
        assert result["decision"] == "adopted", result["reason"]
        assert result["scores"]["tuned_cv"] > result["scores"]["live"] and result["scores"]["test"]["ci_low"] > 0
        assert run["progress"]["folds_done"] == 4 and run["profile_version"] == 1
        assert [x["id"] for x in c.get("/tuning", headers=h).json()["runs"]] == [tuning_id]

        profiles = c.get("/profiles", headers=h).json()
        assert profiles["live"] == 1 and profiles["previous"] == 0
        assert profiles["profiles"][0]["status"] == "live" and profiles["profiles"][0]["params"] == result["params"]
        assert profiles["default"]["late_windows"] == 3.0 and profiles["switches"][0]["action"] == "adopt"
        # Every answer names the profile that shaped it (each process sees a new one within 2 s).
        answer = wait_until(lambda: (a := c.post("/retrieve", json={"query": queries["q5"]}, headers=h).json())
                            ["recipe"]["profile"]["version"] == 1 and a, 10, "the profile to reach the API")
        assert answer["hits"][0]["doc_id"] == "d5"
        assert {k: answer["recipe"]["stages"][k] for k in result["params"]} == result["params"]
        # The live snapshot is scored under the adopted profile, so the dashboard shows what is served now.
        wait_until(lambda: any(x["trigger"] == "profile" and x["status"] == "done"
                               for x in c.get("/eval/runs", headers=h).json()["runs"]), 60, "the profile's run")

        assert c.post("/profiles/rollback", headers=h).json() == {"tenant": "acme", "live": 0, "previous": 1}
        wait_until(lambda: c.post("/retrieve", json={"query": queries["q5"]}, headers=h).json()
                   ["recipe"]["profile"]["version"] == 0, 10, "the rollback to reach the API")
        assert c.post("/profiles/1/activate", headers=h).json()["live"] == 1
        assert c.post("/profiles/7/activate", headers=h).status_code == 404
        assert c.get("/tuning/nope", headers=h).status_code == 404

        # Another tenant: its own (empty) profiles; tuning with no snapshot yet is a 409.
        e = auth("empty")
        assert c.get("/profiles", headers=e).json() == {"tenant": "empty", "live": 0, "previous": None,
                                                         "default": profiles["default"], "profiles": [], "switches": []}
        assert c.get(f"/tuning/{tuning_id}", headers=e).status_code == 404
        assert c.post("/eval/query-sets", json={"name": "faq", "queries": labelled}, headers=e).status_code == 201
        r = c.post("/tuning", json={}, headers=e)
        assert r.status_code == 409 and "no live snapshot" in r.json()["detail"]
