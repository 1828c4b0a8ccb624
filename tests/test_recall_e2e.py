"""Recall tracking as an operator uses it: `snapdex serve`, query sets over HTTP and from BEIR files, a rebuild
that hurts recall held back by the gate, rollback, drill-down, Prometheus, a manual override."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.procs import MODEL, REPO, auth, key_for, snapdex_env, snapdex_serve, wait_until
from tests.test_recall_gate import BROKEN, TOPICS

pytestmark = pytest.mark.slow

H = auth("acme")
GATE = {"SNAPDEX_GATE_FLOORS": json.dumps({"recall@1": 0.5}),
        "SNAPDEX_GATE_MAX_DROP": json.dumps({"recall@1": 0.0, "ndcg@10": 0.05})}


def documents(**texts):
    return [{"id": d, "text": texts.get(d.replace("-", "_"), text), "metadata": {"topic": q}}
            for d, (q, text) in TOPICS.items()]


QUERIES = [{"id": f"q{i}", "text": q, "relevant": [d]} for i, (d, (q, _)) in enumerate(TOPICS.items())]


def ingest(svc, docs) -> dict:
    r = svc.client.post("/ingest", json={"documents": docs}, headers=H)
    assert r.status_code == 202, r.text
    view = svc.wait_job(r.json()["job_id"], headers=H)
    assert view["status"] == "succeeded", view
    return view


def runs(svc, **params) -> list[dict]:
    r = svc.client.get("/eval/runs", params=params, headers=H)
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def test_query_sets_gate_rollback_drilldown_and_metrics_over_http(tmp_path, catalog_env):
    with snapdex_serve(tmp_path / "data", tenants=("acme",), **GATE, **catalog_env, **MODEL) as svc:
        a = ingest(svc, documents())["snapshot"]

        # Upload a labelled set: 201 and version 1; the same content again is kept, not a new version.
        r = svc.client.post("/eval/query-sets", json={"name": "kb", "queries": QUERIES}, headers=H)
        assert r.status_code == 201 and r.json()["version"] == 1 and r.json()["evaluation"] == "queued", r.text
        again = svc.client.post("/eval/query-sets", json={"name": "kb", "queries": QUERIES[::-1]}, headers=H)
        assert again.status_code == 200 and again.json()["version"] == 1 and again.json()["created"] is False
        bad = svc.client.post("/eval/query-sets", json={"name": "kb", "queries": [{**QUERIES[0], "relevant": []}]},
                              headers=H)
        assert bad.status_code == 422 and "relevant" in bad.text
        # The upload scored the live snapshot in the background.
        wait_until(lambda: any(x["status"] == "done" and x["snapshot"] == a for x in runs(svc)), 120, "run on a")
        assert runs(svc, snapshot=a)[0]["metrics"]["recall@1"] == 1.0

        # A good rebuild goes live through the gate.
        b_view = ingest(svc, [*documents(), {"id": "kb-6", "text": "The cafeteria opens at eight and closes at three."}])
        b = b_view["snapshot"]
        assert b_view["snapshot_status"] == "live"

        # A rebuild that loses the answers of four documents: held, with its reason; live keeps serving.
        c_view = ingest(svc, documents(**BROKEN))
        c = c_view["snapshot"]
        assert c_view["snapshot_status"] == "candidate"
        listing = svc.client.get("/snapshots", headers=H).json()
        assert listing["live"] == b and listing["previous"] == a
        held = next(s for s in listing["snapshots"] if s["hash"] == c)
        assert held["status"] == "candidate" and held["gate"]["passed"] is False and held["gate"]["baseline"] == b
        assert any(x.startswith("kb v1: recall@1 fell") for x in held["gate"]["reasons"]), held["gate"]
        assert held["reason"].startswith("held by the gate")
        hit = svc.client.post("/retrieve", json={"query": "vpn client abroad", "top_k": 1}, headers=H).json()
        assert hit["snapshot"] == b and hit["hits"][0]["doc_id"] == "kb-1"

        # Runs as JSON, and the drill-down between the live snapshot and the held one.
        [run_c] = runs(svc, snapshot=c)
        assert run_c["trigger"] == "build" and run_c["queries"] == 6 and run_c["latency_ms"]["p95"] > 0
        detail = svc.client.get(f"/eval/runs/{run_c['id']}", headers=H).json()
        per_query = {q["query_id"]: q for q in detail["results"]}
        assert per_query["q1"]["ranks"]["kb-1"] != 1 and per_query["q5"]["ranks"] == {"kb-5": 1}
        assert per_query["q1"]["text"] == "vpn client abroad" and detail["recipe"]["stages"]["rerank"]
        cmp = svc.client.get("/eval/compare", params={"base": b, "candidate": c, "query_set": "kb",
                                                      "metric": "recall@1"}, headers=H).json()
        assert {q["query_id"] for q in cmp["lost"]} == {"q0", "q1", "q2", "q3"} and cmp["gained"] == []
        assert next(q for q in cmp["lost"] if q["query_id"] == "q1")["missed"] == ["kb-1"]
        assert svc.client.get("/eval/compare", params={"base": b, "candidate": c, "query_set": "nope"},
                              headers=H).status_code == 404
        assert svc.client.get("/eval/runs/nope", headers=H).status_code == 404
        assert runs(svc, snapshot=c) and svc.client.get("/eval/runs", params={"snapshot": c}).json()["runs"] == []
        assert svc.client.post("/eval/runs", json={"query_set": "nope"}, headers=H).status_code == 404
        assert svc.client.post("/eval/runs", json={"snapshot": "0" * 64}, headers=H).status_code == 404
        assert svc.client.post("/eval/runs", json={"snapshot": c, "query_set": "kb"}, headers=H).status_code == 202

        # Prometheus: the live snapshot's numbers per tenant and query set, and the held count.
        text = svc.client.get("/metrics", headers=auth(None)).text
        assert f'snapdex_eval_metric{{metric="recall@1",query_set="kb",snapshot="{b[:12]}",tenant="acme",version="1"}} 1.0' in text
        assert 'snapdex_snapshots_held{tenant="acme"} 1.0' in text

        # Rollback is unaffected by the held candidate: back to a, the snapshot live before b.
        r = svc.client.post("/snapshots/rollback", headers=H)
        assert r.status_code == 200 and r.json() == {"tenant": "acme", "live": a, "previous": b}

        # An operator promotes the held one by hand: recorded as an override.
        assert svc.client.post(f"/snapshots/{c}/promote", headers=H).status_code == 200
        promoted = next(s for s in svc.client.get("/snapshots", headers=H).json()["snapshots"] if s["hash"] == c)
        assert promoted["status"] == "live" and promoted["gate"]["override_at"] is not None

        # `snapdex eval import`: a BEIR split becomes a query set; --wait prints the live snapshot's run.
        beir = tmp_path / "beir"
        (beir / "qrels").mkdir(parents=True)
        (beir / "corpus.jsonl").write_text("")
        (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": q["id"], "text": q["text"]}) + "\n"
                                                    for q in QUERIES))
        (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
            f"{q['id']}\t{q['relevant'][0]}\t1\n" for q in QUERIES))
        out = subprocess.run([sys.executable, "-m", "snapdex", "eval", "import", "--dataset", str(beir), "--name",
                              "beir-kb", "--url", svc.url, "--api-key", key_for("acme"), "--wait", "120"], cwd=REPO,
                             env=snapdex_env(tmp_path / "cli"), capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        assert "query set beir-kb v1: 6 queries (new version)" in out.stdout
        assert f"live snapshot {c[:12]} on beir-kb v1" in out.stdout and "recall@1" in out.stdout
        sets = svc.client.get("/eval/query-sets", headers=H).json()["query_sets"]
        assert [(s["name"], s["version"]) for s in sets] == [("beir-kb", 1), ("kb", 1)]
