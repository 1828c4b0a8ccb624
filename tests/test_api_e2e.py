"""The service as a user runs it: `snapdex serve` on its embedded default, driven over HTTP."""

from __future__ import annotations

import json

import pytest

from tests.procs import snapdex_serve, wait_until

pytestmark = pytest.mark.slow

DOCS = [
    {"id": "kb-1", "text": "# Billing\n\nInvoices are sent on the first working day of each month.\n\n"
                           "## Refunds\n\nRefunds take five to seven business days.", "metadata": {"team": "finance"}},
    {"id": "kb-2", "text": "The VPN client must be updated before connecting from abroad. " * 8,
     "metadata": {"team": "it", "year": 2024}},
    {"id": "kb-2-copy", "text": "The VPN client must be updated before connecting from abroad. " * 8},
]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with snapdex_serve(tmp_path_factory.mktemp("api") / "data") as svc:
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
                            headers={"X-Tenant": "files"})
    assert r.status_code == 202, r.text
    job = service.wait_job(r.json()["job_id"], headers={"X-Tenant": "files"})
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
                          "--tenant", "beir", "--batch-size", "10"], capture_output=True, text=True, timeout=300)
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
    run = subprocess.run([sys.executable, "-m", "snapdex", "ingest", str(folder), "--url", service.url,
                          "--tenant", "folder"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["counts"]["new"] == 3 and summary["counts"]["failed"] == 0
