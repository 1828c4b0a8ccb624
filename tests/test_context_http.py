"""Context blocks, offsets, batch and the documents API over HTTP, against one `snapdex serve` for the module."""

from __future__ import annotations

import pytest

from harness.procs import auth, snapdex_serve

pytestmark = pytest.mark.slow

STORY = " ".join(f"Chapter {i} tells how the miller number {i} ground flour{i % 7} for the village." for i in range(60))
MANUAL = ("# Manual\n\n## Install\n\n" + " ".join(f"Step {i}: unpack crate{i} and bolt panel{i}." for i in range(30))
          + "\n\n## Support\n\n" + " ".join(f"Call desk{i} about warranty{i}." for i in range(30)))
DOCS = [{"id": "story", "text": STORY, "metadata": {"title": "Story", "team": "mill"}},
        {"id": "manual", "text": MANUAL, "metadata": {"team": "ops"}},
        {"id": "notes/a b", "text": "Short note about lanterns and harbors. " * 3, "metadata": {"team": "ops"}}]


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    with snapdex_serve(tmp_path_factory.mktemp("ctx") / "data", tenants=("other",),
                       SNAPDEX_RATE_LIMIT_RETRIEVE="", SNAPDEX_CHUNK_SIZE="64", SNAPDEX_CHUNK_OVERLAP="8") as s:
        job = s.wait_job(s.client.post("/ingest", json={"documents": DOCS}).json()["job_id"])
        assert job["status"] == "succeeded", job
        yield s


def test_retrieve_with_context_cites_exact_passages_within_budget(svc):
    c = svc.client
    texts = {d["id"]: c.get(f"/documents/{d['id']}").json()["text"] for d in DOCS}
    plain = c.post("/retrieve", json={"query": "miller number 30 ground flour", "top_k": 6}).json()
    assert plain["context"] is None
    for h in plain["hits"]:
        assert texts[h["doc_id"]][h["start"]:h["end"]] == h["text"]
        for hl in h["highlights"]:
            assert h["start"] <= hl["start"] < hl["end"] <= h["end"]
    assert any(h["highlights"] for h in plain["hits"])
    body = {"query": "miller number 30 ground flour", "top_k": 6,
            "context": {"max_tokens": 150, "expand": {"neighbors": 1}, "max_per_document": 2}}
    r = c.post("/retrieve", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [h["chunk_id"] for h in out["hits"]] == [h["chunk_id"] for h in plain["hits"]]  # hits unchanged
    ctx = out["context"]
    assert ctx["tokenizer"].startswith("embedder:")
    assert ctx["tokens"] == sum(p["tokens"] for p in ctx["passages"]) <= 150
    for i, p in enumerate(ctx["passages"], 1):
        assert p["citation"] == f"[{i}]"
        assert texts[p["doc_id"]][p["start"]:p["end"]] == p["text"]
        assert set(p) >= {"doc_id", "title", "text", "start", "end", "pages", "headings", "tokens", "highlights"}
    assert ctx["passages"][0]["title"] == "Story"
    tik = c.post("/retrieve", json={**body, "context": {"max_tokens": 400, "expand": "section",
                                                         "tokenizer": "cl100k_base"}}).json()["context"]
    assert tik["tokenizer"] == "tiktoken:cl100k_base" and tik["tokens"] <= 400
    section = c.post("/retrieve", json={"query": "unpack crate12 and bolt panel12", "top_k": 3,
                                        "context": {"max_tokens": 2000, "expand": "section"}}).json()["context"]
    first = section["passages"][0]
    assert first["headings"] == ["Manual", "Install"] and "warranty" not in first["text"]
    bad = c.post("/retrieve", json={**body, "context": {"max_tokens": 100, "tokenizer": "p50k_base"}})
    assert bad.status_code == 422 and "tokenizer" in bad.text
    bad = c.post("/retrieve", json={**body, "context": {"max_tokens": 100, "expand": {"neighbors": 99}}})
    assert bad.status_code == 422


def test_batch_answers_equal_single_calls(svc):
    c = svc.client
    requests = [{"query": q, "top_k": k, **({"context": {"max_tokens": 120, "expand": {"neighbors": 1}}} if k % 2 else {})}
                for q, k in (("miller flour village", 3), ("warranty desk", 4), ("lanterns", 2), ("crate panel", 5))]
    r = c.post("/retrieve/batch", json={"requests": requests})
    assert r.status_code == 200, r.text
    answers = r.json()["answers"]
    singles = [c.post("/retrieve", json=q).json() for q in requests]
    assert len(answers) == len(requests)
    for a, s in zip(answers, singles):
        assert a["snapshot"] == s["snapshot"]
        assert [(h["chunk_id"], round(h["score"], 6)) for h in a["hits"]] == \
            [(h["chunk_id"], round(h["score"], 6)) for h in s["hits"]]
        assert a["context"] == s["context"]
    assert c.post("/retrieve/batch", json={"requests": []}).status_code == 422
    assert c.post("/retrieve/batch", json={"requests": [{"query": "x"}] * 65}).status_code == 422


def test_documents_api_pages_filters_and_tenants(svc):
    c = svc.client
    seen, cursor = [], None
    while True:
        page = c.get("/documents", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["documents"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d["doc_id"] for d in seen] == sorted(d["id"] for d in DOCS)
    live = c.get("/snapshots").json()
    assert all(d["snapshots"] and d["content_hash"] and d["chunks"] >= 1 for d in seen), (seen, live)
    ops = c.get("/documents", params={"filters": '{"team": "ops"}'}).json()["documents"]
    assert sorted(d["doc_id"] for d in ops) == ["manual", "notes/a b"]
    assert c.get("/documents", params={"filters": '{"metadata.team": "ops"}'}).json()["documents"] == ops
    assert c.get("/documents", params={"filters": "[1"}).status_code == 422
    assert c.get("/documents", params={"cursor": "%%%"}).status_code == 422
    doc = c.get("/documents/notes/a b").json()
    assert doc["metadata"] == {"team": "ops"} and doc["text"].startswith("Short note")
    chunks = c.get("/documents/manual/chunks").json()["chunks"]
    text = c.get("/documents/manual").json()["text"]
    assert len(chunks) > 2 and all(text[ch["start"]:ch["end"]] == ch["text"] for ch in chunks)
    assert {tuple(ch["headings"]) for ch in chunks} >= {("Manual", "Install"), ("Manual", "Support")}
    assert c.get("/documents/nope/chunks").status_code == 404
    # Another tenant sees none of it.
    assert c.get("/documents", headers=auth("other")).json()["documents"] == []
    assert c.get("/documents/manual", headers=auth("other")).status_code == 404
    # DELETE still works under the :path routes, and the document is gone from the listing.
    assert c.delete("/documents/notes/a b").status_code == 202
    assert c.get("/documents/notes/a b").status_code == 404


def test_group_by_document_answers_documents_each_with_its_best_chunks(svc):
    c = svc.client
    body = {"query": "miller ground flour for the village, unpack crate and bolt panel", "top_k": 2}
    flat = c.post("/retrieve", json=body).json()
    assert flat["documents"] is None and len({h["doc_id"] for h in flat["hits"]}) == 1  # two chunks of one
    r = c.post("/retrieve", json={**body, "group_by": "document", "options": {"max_per_document": 2},
                                  "context": {"max_tokens": 300}})
    assert r.status_code == 200, r.text
    out = r.json()
    docs = out["documents"]
    assert sorted(d["doc_id"] for d in docs) == ["manual", "story"]
    assert {d["doc_id"]: d["title"] for d in docs}["story"] == "Story"
    assert docs[0]["doc_id"] == flat["hits"][0]["doc_id"]  # the best chunk's document leads
    assert [i for d in docs for i in d["hits"]] == list(range(len(out["hits"])))
    for d in docs:
        assert 1 <= len(d["hits"]) <= 2 and d["score"] == out["hits"][d["hits"][0]]["score"]
        assert {out["hits"][i]["doc_id"] for i in d["hits"]} == {d["doc_id"]}
    assert out["recipe"]["group_by"]["chunks_per_document"] == 2
    assert {p["doc_id"] for p in out["context"]["passages"]} <= {"story", "manual"}
    bad = c.post("/retrieve", json={**body, "group_by": "chunk"})
    assert bad.status_code == 422 and "group_by" in bad.text
