"""The service as a user runs it: `snapdex serve` on its embedded default, driven over HTTP."""

from __future__ import annotations

import json
import os

import pytest

from snapdex.keys import digest
from harness.procs import FAKE_MODEL_ID, auth, key_for, snapdex_serve, wait_until

pytestmark = pytest.mark.slow

DOCS = [
    {"id": "kb-1", "text": "# Billing\n\nInvoices are sent on the first working day of each month.\n\n"
                           "## Refunds\n\nRefunds take five to seven business days.", "metadata": {"team": "finance"}},
    {"id": "kb-2", "text": "The VPN client must be updated before connecting from abroad. " * 8,
     "metadata": {"team": "it", "year": 2024}},
    {"id": "kb-2-copy", "text": "The VPN client must be updated before connecting from abroad. " * 8},
]


TENANTS = ("files", "hostile", "snap", "nobody", "contract", "beir", "folder")


@pytest.fixture(scope="module")
def service(tmp_path_factory, module_catalog_env):
    # No rate limit here: the switch-under-load test bursts cached answers from 8 threads (limits: their own test).
    # Every test of this module runs twice: catalog on SQLite, then on PostgreSQL.
    with snapdex_serve(tmp_path_factory.mktemp("api") / "data", tenants=TENANTS, SNAPDEX_RATE_LIMIT_RETRIEVE="",
                       **module_catalog_env) as svc:
        yield svc


def test_json_ingest_then_reingest(service):
    r = service.client.post("/ingest", json={"documents": DOCS})
    assert r.status_code == 202, r.text
    job = service.wait_job(r.json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["counts"]["new"] == 2 and job["counts"]["duplicate"] == 1
    assert job["progress"]["documents_done"] == job["progress"]["documents_total"] == 3
    assert job["counts"]["chunks_embedded"] + job["counts"]["chunks_reused"] == job["progress"]["chunks_total"]
    assert job["snapshot"]

    again = service.wait_job(service.client.post("/ingest", json={"documents": DOCS}).json()["job_id"])
    assert again["counts"]["unchanged"] == 3
    assert again["counts"]["chunks_embedded"] == 0
    assert again["snapshot"] == job["snapshot"]


def test_file_uploads_of_every_format_and_a_bad_file(service, documents_dir):
    files = [("files", (p.name, p.read_bytes())) for p in sorted(documents_dir.iterdir()) if p.name != "README.md"]
    files.append(("files", ("broken.pdf", b"%PDF-1.7\n garbage that is not a pdf")))
    r = service.client.post("/ingest", files=files, data={"metadata": json.dumps({"batch": "samples"})},
                            headers=auth("files"))
    assert r.status_code == 202, r.text
    job = service.wait_job(r.json()["job_id"], headers=auth("files"))
    assert job["status"] == "succeeded", job
    failed = {f["doc_id"]: f["reason"] for f in job["failures"]}
    assert "broken.pdf" in failed and failed["broken.pdf"]
    assert job["counts"]["failed"] == 1, failed
    assert job["counts"]["new"] + job["counts"]["duplicate"] + job["counts"]["near_duplicate"] == len(files) - 1
    # Another tenant cannot see the job.
    assert service.client.get(f"/jobs/{job['job_id']}").status_code == 404


def test_bad_requests_say_what_is_wrong(service):
    r = service.client.post("/ingest", json={"documents": []})
    assert r.status_code == 422 and "documents" in r.text
    r = service.client.post("/ingest", json={"documents": [{"id": "x", "text": "   "}]})
    assert r.status_code == 422 and "blank" in r.text
    r = service.client.post("/ingest", json={"documents": [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]})
    assert r.status_code == 422 and "repeat" in r.text
    r = service.client.post("/ingest", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = service.client.post("/ingest", json={"documents": [{"id": "x", "text": "a"}]}, headers={"X-Tenant": "Bad Tenant!"})
    assert r.status_code == 422 and "tenant" in r.text
    assert service.client.get("/jobs/does-not-exist").status_code == 404


def test_hostile_inputs_fail_alone_with_a_reason_and_leave_the_index_untouched(service):
    import io
    import zipfile

    from ingest.formats import MAX_UNZIPPED_BYTES

    h = auth("hostile")
    c = service.client
    legit = [("files", ("ok", b"Plain words here.")),  # a legacy encoding is read, not refused
             ("files", ("latin1.txt", "Caf\xe9 cr\xe8me, na\xefve.".encode("latin-1")))]
    good = service.wait_job(c.post("/ingest", files=legit, headers=h).json()["job_id"], headers=h)
    live = c.get("/snapshots", headers=h).json()["live"]
    assert good["snapshot"] == live and good["failures"] == [] and good["counts"]["new"] == 2

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (MAX_UNZIPPED_BYTES + 1))
    files = [("files", ("bomb.docx", bomb.getvalue())), ("files", ("broken.pdf", b"%PDF-1.7\n1 0 obj <<garbage"))]
    view = service.wait_job(c.post("/ingest", files=files, headers=h).json()["job_id"], headers=h)
    reasons = {f["doc_id"]: f["reason"] for f in view["failures"]}
    assert "refused as a possible zip bomb" in reasons["bomb.docx"] and "broken.pdf" in reasons
    long_line = {"id": "one-line", "text": "word " * 1_000_001}  # 5,000,005 characters, no line break
    view = service.wait_job(c.post("/ingest", json={"documents": [long_line]}, headers=h).json()["job_id"], headers=h)
    assert view["failures"][0]["reason"].startswith("document has 5000005 characters; at most 5000000")
    r = c.post("/ingest", content=b'{"documents": [{"id": "x", "text": "\xff\xfe bad"}]}',
               headers={**h, "content-type": "application/json"})
    assert r.status_code == 422  # invalid UTF-8 in JSON
    for bad in ({"metadata.team') OR 1=1 --": "x"}, {"$where": "sleep(1)"}, {"metadata.a": {"b": {"c": 1}}},
                {"metadata.year": {"gte": "2020; DROP"}}):
        r = c.post("/retrieve", json={"query": "words", "filters": bad}, headers=h)
        assert r.status_code == 422, (bad, r.text)

    listing = c.get("/snapshots", headers=h).json()
    assert listing["live"] == live and [s["hash"] for s in listing["snapshots"]] == [live]
    hit = c.post("/retrieve", json={"query": "plain words"}, headers=h).json()
    assert hit["snapshot"] == live and hit["hits"][0]["doc_id"] == "ok"


def test_oversized_bodies_are_refused_before_they_are_read(tmp_path):
    """SNAPDEX_MAX_REQUEST_BYTES bounds every body, JSON or multipart as a whole, while it streams; each file of an
    upload is bounded by SNAPDEX_MAX_UPLOAD_BYTES too. Nothing of a refused request is stored."""
    import sqlite3

    with snapdex_serve(tmp_path / "data", SNAPDEX_MAX_REQUEST_BYTES="4096", SNAPDEX_MAX_UPLOAD_BYTES="2048") as svc:
        r = svc.client.post("/ingest", json={"documents": [{"id": "big", "text": "x" * 5000}]})
        assert r.status_code == 413 and "SNAPDEX_MAX_REQUEST_BYTES" in r.json()["detail"]

        def chunks(part: bytes = b" " * 1000, times: int = 10):  # no Content-Length: the limit applies while streaming
            for _ in range(times):
                yield part

        r = svc.client.post("/ingest", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "over 4096 bytes" in r.json()["detail"]
        # Multipart: four files each within the per-file cap, over the total together.
        r = svc.client.post("/ingest", files=[("files", (f"f{i}.txt", b"x" * 1500)) for i in range(4)])
        assert r.status_code == 413 and "SNAPDEX_MAX_REQUEST_BYTES" in r.json()["detail"], r.text
        boundary = "cap"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="s.txt"\r\n\r\n').encode()
        r = svc.client.post("/ingest", content=chunks(head + b"y" * 1000, 6),
                            headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413 and "over 4096 bytes" in r.json()["detail"], r.text
        r = svc.client.post("/ingest", files=[("files", ("big.txt", b"x" * 3000))])
        assert r.status_code == 413 and "SNAPDEX_MAX_UPLOAD_BYTES" in r.json()["detail"], r.text
        # Every other body is bounded too.
        r = svc.client.post("/retrieve", json={"query": "x" * 5000})
        assert r.status_code == 413 and "SNAPDEX_MAX_REQUEST_BYTES" in r.json()["detail"], r.text
        with sqlite3.connect(f"file:{tmp_path / 'data' / 'catalog.sqlite3'}?mode=ro", uri=True) as db:
            assert db.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
        assert svc.client.post("/ingest", json={"documents": [{"id": "ok", "text": "fits"}]}).status_code == 202
        assert svc.client.post("/ingest", files=[("files", ("ok.txt", b"fits " * 300))]).status_code == 202


def test_rate_limits_answer_429_with_retry_after_per_key(tmp_path):
    env = {"SNAPDEX_RATE_LIMIT_RETRIEVE": "3/minute", "SNAPDEX_RATE_LIMIT_INGEST": "1/minute"}
    with snapdex_serve(tmp_path / "data", tenants=("other",), **env) as svc:
        c = svc.client
        codes = [c.post("/retrieve", json={"query": "q"}).status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]  # no snapshot yet: answered, and counted
        r = c.post("/retrieve", json={"query": "q"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        key_id = digest(key_for("default"))[:8]
        assert f"rate limit of 3 per 1 minute on retrieve reached for key {key_id}" in r.json()["detail"]
        assert c.post("/retrieve", json={"query": "q"}, headers=auth("other")).status_code == 404  # its own budget
        doc = {"documents": [{"id": "a", "text": "a"}]}
        assert [c.post("/ingest", json=doc).status_code for _ in range(2)] == [202, 429]
        assert c.get("/health").status_code == 200  # only /retrieve and /ingest are limited


def test_health_ready_and_openapi(service):
    assert service.client.get("/health").json() == {"status": "ok"}
    ready = wait_until(lambda: service.client.get("/ready").json()["ready"], 60, "/ready")
    assert ready is True
    spec = service.client.get("/openapi.json").json()
    body = spec["paths"]["/ingest"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)


def test_cli_ingest_of_a_beir_corpus_and_a_folder(service, tmp_path, scifact_dir, documents_dir):
    import subprocess
    import sys

    corpus = tmp_path / "corpus.jsonl"
    with (scifact_dir / "corpus.jsonl").open() as src:
        corpus.write_text("".join(line for line, _ in zip(src, range(25))))
    run = subprocess.run([sys.executable, "-m", "snapdex", "ingest", str(corpus), "--url", service.url,
                          "--api-key", key_for("beir"), "--batch-size", "10"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["jobs"] == 3 and summary["failed_jobs"] == 0
    assert summary["counts"]["new"] == 25 and summary["snapshot"]
    assert "ingest" in run.stderr  # the progress bar

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    for name in ("fake-text.txt", "fake.docx", "umlauts-utf8.md"):
        (folder / "sub" / name).write_bytes((documents_dir / name).read_bytes())
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    run = subprocess.run([sys.executable, "-m", "snapdex", "ingest", str(folder), "--url", service.url],
                         env={**os.environ, "SNAPDEX_API_KEY": key_for("folder")}, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["counts"]["new"] == 3 and summary["counts"]["failed"] == 0


def test_snapshots_retrieve_promote_rollback_and_delete_over_http(service):
    from concurrent.futures import ThreadPoolExecutor

    h = auth("snap")
    c = service.client
    v1 = service.wait_job(c.post("/ingest", json={"documents": DOCS}, headers=h).json()["job_id"], headers=h)["snapshot"]
    extra = {"id": "kb-3", "text": "Passwords rotate every ninety days; the helpdesk resets them.", "metadata": {"team": "it"}}
    v2 = service.wait_job(c.post("/ingest", json={"documents": [extra]}, headers=h).json()["job_id"], headers=h)["snapshot"]
    assert v1 != v2

    listing = c.get("/snapshots", headers=h).json()
    assert listing["live"] == v2 and listing["previous"] == v1
    assert [s["hash"] for s in listing["snapshots"]] == [v2, v1]
    newest = listing["snapshots"][0]
    assert newest["parent"] == v1 and newest["embedded"] >= 1 and newest["reused"] >= 1
    assert newest["config"]["embedding"]["dim"] == 384

    r = c.post("/retrieve", json={"query": "how often do passwords rotate", "top_k": 3}, headers=h).json()
    assert r["snapshot"] == v2 and r["hits"][0]["doc_id"] == "kb-3"
    pinned = c.post("/retrieve", json={"query": "how often do passwords rotate", "snapshot": v1}, headers=h).json()
    assert pinned["snapshot"] == v1 and all(hit["doc_id"] != "kb-3" for hit in pinned["hits"])
    r = c.post("/retrieve", json={"query": "refund", "filters": {"metadata.team": "it"}}, headers=h).json()
    assert r["hits"] and all("it" in hit["metadata"]["team"] for hit in r["hits"])

    # Switches under concurrent load: no errors, every answer names exactly one of the two snapshots.
    def ask(_):
        resp = c.post("/retrieve", json={"query": "VPN abroad"}, headers=h)
        return resp.status_code, resp.json().get("snapshot")

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, i) for i in range(200)]
        for _ in range(10):
            assert c.post("/snapshots/rollback", headers=h).json() == {"tenant": "snap", "live": v1, "previous": v2}
            assert c.post(f"/snapshots/{v2}/promote", headers=h).json()["live"] == v2
        answers = [f.result() for f in futures]
    assert {code for code, _ in answers} == {200}
    assert {snap for _, snap in answers} <= {v1, v2}

    assert c.post(f"/snapshots/{'0' * 64}/promote", headers=h).status_code == 404
    assert c.delete("/documents/kb-3", headers=h).status_code == 202
    assert c.delete("/documents/kb-3", headers=h).status_code == 404

    # Without kb-3 the tenant holds exactly v1's documents again: the rebuild lands on v1's hash and reuses it.
    wait_until(lambda: c.get("/snapshots", headers=h).json()["live"] == v1, 60, "the rebuild after the delete")
    assert len(c.get("/snapshots", headers=h).json()["snapshots"]) == 2
    r = c.post("/retrieve", json={"query": "how often do passwords rotate"}, headers=h).json()
    assert r["snapshot"] == v1 and all(hit["doc_id"] != "kb-3" for hit in r["hits"])
    assert c.post("/retrieve", json={"query": "x", "snapshot": "abc"}, headers=h).status_code == 422
    assert c.post("/retrieve", json={"query": "x"}, headers=auth("nobody")).status_code == 404
    assert c.post("/retrieve", json={"query": "x", "filters": {"a": {"zz": 1}}}, headers=h).status_code == 422


def test_retrieve_contract_stages_recipe_cache_and_errors(service):
    h = auth("contract")
    c = service.client
    docs = [
        {"id": "sec-1", "text": "Security policy\n\nPasswords rotate every ninety days. The helpdesk resets locked "
                                "accounts. Two-factor login is required for remote access.", "metadata": {"team": "it"}},
        {"id": "sec-1b", "text": "Security policy (2023 copy)\n\nPasswords rotate every ninety days. The helpdesk "
                                 "resets locked accounts. Two-factor login is required for remote access!",
         "metadata": {"team": "it", "year": 2023}},
        {"id": "fin-1", "text": "Expenses\n\nTravel expenses are refunded within two weeks of the receipt. Hotel "
                                "costs above the cap need the manager's approval.", "metadata": {"team": "finance"}},
    ]
    job = service.wait_job(c.post("/ingest", json={"documents": docs}, headers=h).json()["job_id"], headers=h)
    snap = job["snapshot"]
    # the second stage is off by default (README, "Every shape of data"): asked for, every stage scores
    body = {"query": "how often must passwords   change", "top_k": 3, "options": {"rerank": "late-interaction"}}
    r = c.post("/retrieve", json=body, headers=h)
    assert r.status_code == 200, r.text
    r = r.json()
    assert r["snapshot"] == snap and len(r["request_id"]) == 32 and r["cached"] is False
    top = r["hits"][0]
    assert top["doc_id"] in ("sec-1", "sec-1b")
    # Every stage's score is there; the order is the second stage's.
    assert set(top["scores"]) == {"dense", "bm25", "windows", "fused", "rerank"}
    assert top["score"] == top["scores"]["rerank"]
    assert all(v is not None for v in top["scores"].values())
    assert [x["score"] for x in r["hits"]] == sorted((x["score"] for x in r["hits"]), reverse=True)
    assert len({x["chunk_id"] for x in r["hits"]}) == len(r["hits"])
    recipe = r["recipe"]
    # The embedder that served the query, by its model id (the tests serve the hash fake: tests/procs.py).
    assert recipe["first_stage"]["fusion"] == "zscore" and recipe["first_stage"]["embedding"] == FAKE_MODEL_ID
    assert recipe["rerank"]["name"] == "late-interaction" and recipe["rerank"]["weights"]
    assert recipe["prune"]["near_duplicate_jaccard"] == 0.8
    assert {"rewrite", "embed", "first_stage", "rerank", "prune", "total"} <= set(r["timings_ms"])

    # Same snapshot, same request (spacing aside): served from the cache, same hits.
    again = c.post("/retrieve", json={**body, "query": "how often must passwords change"}, headers=h).json()
    assert again["cached"] is True and [x["chunk_id"] for x in again["hits"]] == [x["chunk_id"] for x in r["hits"]]

    plain = c.post("/retrieve", json={**body, "options": {"rerank": "none", "fusion": "rrf"}}, headers=h).json()
    assert plain["recipe"]["rerank"] is None and plain["recipe"]["first_stage"]["rrf_k"] == 60
    assert plain["hits"][0]["scores"]["rerank"] is None and plain["hits"][0]["score"] == plain["hits"][0]["scores"]["fused"]
    capped = c.post("/retrieve", json={"query": "policy expenses passwords", "top_k": 5,
                                       "options": {"max_per_document": 1}}, headers=h).json()
    assert len({x["doc_id"] for x in capped["hits"]}) == len(capped["hits"])
    normalized = c.post("/retrieve", json={**body, "options": {"rewrite": "normalize"}}, headers=h).json()
    assert normalized["recipe"]["rewrite"]["name"] == "normalize"

    # Clear 422s: a stage this service has not configured, an unknown option, out-of-range numbers.
    bad = c.post("/retrieve", json={**body, "options": {"rerank": "cross-encoder"}}, headers=h)
    assert bad.status_code == 422 and "cross-encoder" in bad.text
    assert c.post("/retrieve", json={**body, "options": {"magic": 1}}, headers=h).status_code == 422
    assert c.post("/retrieve", json={**body, "top_k": 0}, headers=h).status_code == 422
    assert c.post("/retrieve", json={**body, "options": {"rerank_depth": 1000}}, headers=h).status_code == 422
    assert c.post("/retrieve", json={"query": "   "}, headers=h).status_code == 422

    spec = c.get("/openapi.json").json()["components"]["schemas"]
    assert {"RetrieveOptions", "HitScores", "RetrieveResponse"} <= set(spec)
    assert "rerank" in spec["HitScores"]["properties"] and "recipe" in spec["RetrieveResponse"]["properties"]


def test_long_queries_up_to_the_setting_are_embedded_in_windows_and_longer_ones_refused(service):
    h = auth("contract")
    c = service.client
    docs = [{"id": "lq-1", "text": "Leave policy\n\nStaff get twenty-five days of paid leave each year. Unused days "
                                   "carry over until March."},
            {"id": "lq-2", "text": "Laptops\n\nLaptops are replaced every four years by the IT department."}]
    service.wait_job(c.post("/ingest", json={"documents": docs}, headers=h).json()["job_id"], headers=h)
    # A pasted message: 15,000 characters, far past MiniLM's 256 word pieces, the question at its end.
    filler = "We talked about many things in the meeting today and took notes on all of them. "
    message = (filler * 200)[:14_900] + " How many days of paid leave do staff get each year?"
    assert len(message) < 16_000
    # Unbounded (a request's query_embed_tokens 0): every word piece embedded, in windows that fit the model.
    r = c.post("/retrieve", json={"query": message, "top_k": 2, "options": {"query_embed_tokens": 0}}, headers=h)
    assert r.status_code == 200, r.text
    windows = r.json()["recipe"]["first_stage"]["query_windows"]
    assert windows["windows"] > 10 and windows["tokens"] > 2_000 and windows["combine"] in ("mean", "max-sim")
    assert "embedded" not in windows
    assert r.json()["hits"][0]["doc_id"] == "lq-1"  # the last window's question still counts: nothing was cut off
    # The service's bound (SNAPDEX_QUERY_EMBED_TOKENS, 128), and a request's own: both ends kept, the question too.
    for options, bound in (({}, 128), ({"query_embed_tokens": 64}, 64)):
        r = c.post("/retrieve", json={"query": message, "top_k": 2, "options": options}, headers=h)
        assert r.status_code == 200, r.text
        windows = r.json()["recipe"]["first_stage"]["query_windows"]
        assert windows["tokens"] > 2_000 and 0 < windows["embedded"] <= bound and windows["keep"] == "ends"
        assert r.json()["recipe"]["first_stage"]["long_queries"]["embed_tokens"] == bound
        assert r.json()["hits"][0]["doc_id"] == "lq-1"
    r = c.post("/retrieve", json={"query": message, "options": {"query_embed_tokens": 100_001}}, headers=h)
    assert r.status_code == 422 and "query_embed_tokens" in r.text and "100000" in r.text, r.text
    # Past SNAPDEX_MAX_QUERY_CHARS (16,000 by default): a 422 naming the limit and its setting.
    r = c.post("/retrieve", json={"query": "x " * 8_001, "top_k": 2}, headers=h)
    assert r.status_code == 422 and "16,000" in r.text and "SNAPDEX_MAX_QUERY_CHARS" in r.text
    r = c.post("/eval/query-sets", headers=h, json={"name": "long", "queries": [
        {"id": "q1", "text": "y " * 8_001, "relevant": ["lq-1"]}]})
    assert r.status_code == 422 and "query 'q1'" in r.text and "SNAPDEX_MAX_QUERY_CHARS" in r.text
