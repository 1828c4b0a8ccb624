"""Issue 19 over HTTP, against one `snapdex serve` for the module: office, mail and e-book files (made by their
writers) ingest by upload, are found by /retrieve with their metadata on the hit, and a malformed or encrypted
file of each kind fails alone; a 300-row sheet is chunked with its header in every part; German, French, Spanish
and Japanese documents are found by BM25 alone from inflected forms; a near-duplicate v2 is retrievable, collapsed
with its v1 at retrieval, and still there after v1 is deleted."""

from __future__ import annotations

import pytest

from tests import office_files as files
from harness.procs import snapdex_serve, wait_until

pytestmark = pytest.mark.slow

BM25 = {"first_stage": "bm25", "rerank": "none"}

UPLOADS = {
    "deck.pptx": files.pptx(),
    "budget.xlsx": files.xlsx(rows=300),
    "cities.csv": files.csv_text(),
    "offsite.eml": files.eml(),
    "audit.msg": files.msg(),
    "sailing.epub": files.epub(),
    "greenhouse.odt": files.odt(),
    "observatory.rtf": files.rtf(),
}
# Each kind's broken file, named so its type cannot be taken from the name: the content decides.
BROKEN = {
    "bad-deck.bin": files.truncated(files.pptx()),
    "locked-deck.bin": files.encrypted(files.pptx()),
    "bad-sheet.bin": files.truncated(files.xlsx()),
    "locked-sheet.bin": files.encrypted(files.xlsx()),
    "bad-csv.bin": b"city,river\x00\x01\x02\x03\x04\x05\x06\x07\x08" * 20,
    "bad-mail.bin": b"From: a@example.com\nSubject: nothing\nMessage-ID: <x@y>\n\n   \n",
    "bad-msg.bin": files.msg()[:600],
    "bad-book.bin": files.truncated(files.epub()),
    "bad-odt.bin": files.truncated(files.odt()),
    "bad-rtf.bin": b"{\\rtf1\\ansi {\\b unclosed groups {{{ ",
}
REASONS = {
    "bad-deck.bin": "corrupt or truncated zip", "locked-deck.bin": "encrypted",
    "bad-sheet.bin": "corrupt or truncated zip", "locked-sheet.bin": "encrypted",
    "bad-csv.bin": "unsupported file type", "bad-mail.bin": "no text found in e-mail",
    "bad-msg.bin": "not a valid Outlook message (MSG)",
    "bad-book.bin": "corrupt or truncated zip", "bad-odt.bin": "corrupt or truncated zip",
    "bad-rtf.bin": "RTF",
}
LANGUAGE_DOCS = [
    {"id": "de-bib", "text": "Die Schüler lesen in der Bibliothek jeden Tag viele spannende Bücher über Geschichte "
                             "und Natur."},
    {"id": "fr-jardin", "text": "Les enfants mangeaient des pommes rouges dans le jardin de leur grand-mère chaque "
                                "été."},
    {"id": "es-abuela", "text": "Los niños comieron manzanas verdes en el jardín de su abuela durante todo el "
                                "verano."},
    {"id": "ja-tosho", "text": "東京都の図書館は毎週月曜日に休館します。開館時間は午前九時から午後八時までです。"},
    {"id": "en-dogs", "text": "The shepherd dogs were herding sheep across the valley before the storm arrived."},
]
POLICY = " ".join(f"Clause {i}: employees file travel claim{i} within {i + 3} days to the finance desk."
                  for i in range(40))


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    with snapdex_serve(tmp_path_factory.mktemp("formats") / "data", SNAPDEX_RATE_LIMIT_RETRIEVE="") as s:
        upload = [("files", (name, data, "application/octet-stream"))
                  for name, data in {**UPLOADS, **BROKEN}.items()]
        s.file_job = s.wait_job(s.client.post("/ingest", files=upload,
                                              data={"metadata": '{"team": "ops"}'}).json()["job_id"])
        s.text_job = s.wait_job(s.client.post("/ingest", json={"documents": LANGUAGE_DOCS}).json()["job_id"])
        yield s


def retrieve(svc, query: str, **options) -> list[dict]:
    r = svc.client.post("/retrieve", json={"query": query, "top_k": 5, "options": options})
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def top(svc, query: str, **options) -> dict:
    hits = retrieve(svc, query, **options)
    assert hits, f"nothing found for {query!r}"
    return hits[0]


def test_each_broken_file_fails_alone_with_its_reason(svc):
    job = svc.file_job
    assert job["status"] == "succeeded", job
    failures = {f["doc_id"]: f["reason"] for f in job["failures"]}
    assert set(failures) == set(BROKEN), failures
    for name, reason in REASONS.items():
        assert reason in failures[name], (name, failures[name])
    # Every good file, and the mails' attachments, ingested.
    assert job["counts"]["new"] == len(UPLOADS) + 2, job["counts"]


def test_pptx_slides_notes_and_slide_number(svc):
    hit = top(svc, "marmalade engineers", **BM25)
    assert hit["doc_id"] == "deck.pptx" and hit["pages"] == [2] and hit["headings"] == ["Slide 2"]
    assert hit["metadata"]["slides"] == [3] and hit["metadata"]["team"] == ["ops"]
    notes = top(svc, "quokka team reminder", **BM25)  # speaker notes are text of their slide
    assert notes["doc_id"] == "deck.pptx" and notes["pages"] == [2] and "Speaker notes" in notes["text"]
    text = svc.client.get("/documents/deck.pptx").json()["text"]
    assert text.index("# Slide 1") < text.index("# Slide 2") < text.index("# Slide 3")  # slides in order
    assert text[hit["start"]:hit["end"]] == hit["text"]


def test_xlsx_sheets_as_sections_and_csv_as_a_table(svc):
    hit = top(svc, "Periscope", **BM25)
    assert hit["doc_id"] == "budget.xlsx" and hit["headings"] == ["Sheet: Budget"] and hit["pages"] == [1]
    assert hit["text"].startswith("| Item | Cost |") and hit["table"] == {"number": 1, "rows": [1, 2]}
    assert hit["metadata"]["sheets"] == ["Budget", "Staff"]
    csv_hit = top(svc, "Mondego", **BM25)
    assert csv_hit["doc_id"] == "cities.csv"
    assert csv_hit["text"].startswith("| city | river | population |\n|---|---|---|")


def test_300_row_sheet_every_part_repeats_the_header(svc):
    chunks = svc.client.get("/documents/budget.xlsx/chunks").json()["chunks"]
    staff = [c for c in chunks if c["table"] and c["table"]["number"] == 2]
    assert len(staff) > 3
    assert all(c["text"].startswith("| Name | Role | Code |\n|---|---|---|") for c in staff)
    covered = [r for c in staff for r in range(c["table"]["rows"][0], c["table"]["rows"][1] + 1)]
    assert covered == list(range(1, 301))  # every row once, in order
    hit = top(svc, "code0250x", **BM25)
    assert hit["doc_id"] == "budget.xlsx" and hit["headings"] == ["Sheet: Staff"]
    first, last = hit["table"]["rows"]
    assert first <= 250 <= last and "| Person250 | Clerk | code0250x |" in hit["text"]
    assert hit["text"].startswith("| Name | Role | Code |")
    stored = svc.client.get("/documents/budget.xlsx").json()["text"]
    assert stored[hit["start"]:hit["end"]] == hit["text"]  # the header is in the stored text: offsets exact


def test_eml_metadata_body_and_attachment_as_its_own_document(svc):
    hit = top(svc, "aqueduct sunscreen", **BM25)
    assert hit["doc_id"] == "offsite.eml"
    meta = hit["metadata"]
    assert meta["subject"] == ["Quarterly offsite in Lisbon"] and meta["from"] == ["alice@example.com"]
    assert meta["to"] == ["bob@example.com", "carol@example.com"] and meta["date"] == ["2026-12-01T10:00:00+00:00"]
    assert meta["attachments"] == ["agenda.txt"]
    assert "Subject:" not in hit["text"] and "Content-Type" not in hit["text"]  # no MIME headers in chunks
    att = top(svc, "kayaking flamenco", **BM25)
    assert att["doc_id"] == "offsite.eml/agenda.txt"
    assert att["metadata"]["attachment_of"] == ["offsite.eml"] and att["metadata"]["team"] == ["ops"]
    # Filters reach the extracted fields too.
    r = svc.client.post("/retrieve", json={"query": "offsite", "filters": {"metadata.subject": "Quarterly offsite in Lisbon"}})
    assert {h["doc_id"] for h in r.json()["hits"]} == {"offsite.eml"}


def test_msg_metadata_body_and_attachment(svc):
    hit = top(svc, "pallet racks hall", **BM25)
    assert hit["doc_id"] == "audit.msg"
    meta = hit["metadata"]
    assert meta["subject"] == ["Warehouse inventory audit"] and meta["from"] == ["dana@example.com"]
    assert meta["to"] == ["eve@example.com"] and meta["date"] == ["2026-12-02T09:30:00+00:00"]
    att = top(svc, "forklift batteries", **BM25)
    assert att["doc_id"] == "audit.msg/checklist.txt" and att["metadata"]["attachment_of"] == ["audit.msg"]


@pytest.mark.parametrize("query,doc_id,heading", [
    ("bowline capstan", "sailing.epub", "Knots"),
    ("tomatoes heatwave", "greenhouse.odt", "Greenhouse"),
    ("telescope comet", "observatory.rtf", None),
])
def test_epub_odt_rtf(svc, query, doc_id, heading):
    hit = top(svc, query, **BM25)
    assert hit["doc_id"] == doc_id
    if heading:
        assert hit["headings"] == [heading]
    assert "\\rtf" not in hit["text"] and "\\par" not in hit["text"]  # no RTF control words


@pytest.mark.parametrize("query,doc_id", [
    ("Buch", "de-bib"),             # German singular; the document has the plural "Bücher"
    ("Schule", "de-bib"),           # "Schüler"
    ("manger pomme", "fr-jardin"),  # French infinitive; the document has "mangeaient"
    ("manzana", "es-abuela"),       # Spanish singular; the document has "manzanas"
    ("図書館の休館日", "ja-tosho"),  # Japanese: character bigrams meet without word boundaries
    ("dog herds", "en-dogs"),       # English as before
])
def test_languages_inflected_forms_by_bm25_alone(svc, query, doc_id):
    assert svc.text_job["status"] == "succeeded", svc.text_job
    hit = top(svc, query, **BM25)
    assert hit["doc_id"] == doc_id
    assert hit["scores"]["dense"] is None and hit["scores"]["bm25"] > 0


def test_languages_detected_and_named_on_hits_and_snapshot(svc):
    hits = {d["id"]: top(svc, d["text"][:40], **BM25) for d in LANGUAGE_DOCS}
    assert {k: h["metadata"]["language"] for k, h in hits.items()} == {
        "de-bib": ["de"], "fr-jardin": ["fr"], "es-abuela": ["es"], "ja-tosho": ["ja"], "en-dogs": ["en"]}
    snaps = svc.client.get("/snapshots").json()
    live = next(s for s in snaps["snapshots"] if s["hash"] == snaps["live"])
    assert set(live["config"]["languages"]) >= {"de", "en", "es", "fr", "ja"}
    assert live["config"]["bm25"]["tokenizer"].startswith("lex4:")


def test_a_query_is_analysed_in_each_language_weighed_by_how_likely_it_is_in_it(svc):
    r = svc.client.post("/retrieve", json={"query": "Die Schüler lesen Bücher", "top_k": 5, "options": BM25})
    assert r.status_code == 200, r.text
    weights = r.json()["recipe"]["first_stage"]["bm25_language_weights"]
    assert set(weights) >= {"de", "en", "es", "fr", "ja"} and weights["de"] > 0.9
    assert weights["ja"] == weights["en"] < 0.1
    assert r.json()["hits"][0]["doc_id"] == "de-bib"


def test_metadata_language_overrides_detection_and_is_checked(svc):
    job = svc.wait_job(svc.client.post("/ingest", json={"documents": [
        {"id": "lang-given", "text": "Gatos y perros", "metadata": {"language": "es-MX"}},
        {"id": "lang-bad", "text": "whatever text", "metadata": {"language": "klingon"}},
    ]}).json()["job_id"])
    failures = {f["doc_id"]: f["reason"] for f in job["failures"]}
    assert list(failures) == ["lang-bad"] and "klingon" in failures["lang-bad"] and "de" in failures["lang-bad"]
    hit = top(svc, "gato perro", **BM25)  # Spanish plural stemmed: found by the singular
    assert hit["doc_id"] == "lang-given"


def test_near_duplicate_v2_indexed_collapsed_and_kept_after_v1_deleted(svc):
    c = svc.client
    v1 = c.post("/ingest", json={"documents": [{"id": "policy-v1", "text": POLICY}]}).json()["job_id"]
    assert svc.wait_job(v1)["status"] == "succeeded"
    v2_text = POLICY.replace("Clause 7: employees", "Clause 7: contractors") + " Revised: receipts go digital."
    job = svc.wait_job(c.post("/ingest", json={"documents": [{"id": "policy-v2", "text": v2_text}]}).json()["job_id"])
    assert job["counts"]["near_duplicate"] == 1, job

    # v2's own words find it; a query both match answers with v2 alone, naming v1 as its twin.
    assert top(svc, "receipts go digital", **BM25)["doc_id"] == "policy-v2"
    hits = retrieve(svc, "travel claim finance desk", **BM25)
    assert hits and {h["doc_id"] for h in hits} == {"policy-v2"}, [h["doc_id"] for h in hits]
    assert all(h["sources"][0]["twins"] == ["policy-v1"] for h in hits)

    live = c.get("/snapshots").json()["live"]
    assert c.delete("/documents/policy-v1").status_code == 202
    wait_until(lambda: c.get("/snapshots").json()["live"] != live, 120, "the rebuild after the delete")
    hits = retrieve(svc, "travel claim finance desk", **BM25)
    assert hits and {h["doc_id"] for h in hits} == {"policy-v2"}
    assert all(h["sources"][0].get("twins", []) == [] for h in hits)


def test_folder_cli_ingests_every_format(svc, tmp_path):
    import json
    import os
    import subprocess
    import sys

    folder = tmp_path / "office"
    (folder / "mail").mkdir(parents=True)
    names = {"cli-deck.pptx": files.pptx(), "cli-sheet.xlsx": files.xlsx(), "cli.csv": files.csv_text(),
             "mail/cli.eml": files.eml(attachment=False), "mail/cli.msg": files.msg(attachment=False), "cli.epub": files.epub(), "cli.odt": files.odt(),
             "cli.rtf": files.rtf()}
    for name, data in names.items():
        (folder / name).write_bytes(data)
    run = subprocess.run([sys.executable, "-m", "snapdex", "ingest", str(folder), "--url", svc.url],
                         env={k: v for k, v in os.environ.items() if k != "SNAPDEX_API_KEY"}, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    counts = json.loads(run.stdout.strip().splitlines()[-1])["counts"]
    assert counts["failed"] == 0 and counts["new"] + counts["duplicate"] == len(names), counts
