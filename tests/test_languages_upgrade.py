"""Documents ingested before languages were recorded (extracted_metadata null, as migration 0007 leaves them) get
their language at the next build, and their BM25 terms are counted in it; near-duplicates recorded but never indexed
before 0007 are indexed by that build."""

from __future__ import annotations

from sqlalchemy import update

from db.tables import documents
from harness.helpers import ingest, make_runtime, text_doc

GERMAN = "Die Schüler lesen in der Bibliothek jeden Tag viele spannende Bücher über Geschichte und Natur."
POLICY = " ".join(f"Clause {i}: staff file travel claim{i} within {i + 3} days to the finance desk." for i in range(40))


def _hits(rt, query):
    return [h.payload["doc_ids"][0] for h in rt.searcher.search("default", query, 5, first_stage="bm25",
                                                                  rerank="none", use_cache=False).hits]


def test_an_older_document_gets_its_language_at_the_next_build(tmp_path):
    rt = make_runtime(tmp_path)
    assert ingest(rt, [text_doc("de-bib", GERMAN), text_doc("en", "Dogs chase cats in the park.")]).status \
        == "succeeded"
    assert _hits(rt, "Buch") == ["de-bib"]
    with rt.catalog.db.tx() as conn:  # as a catalog from before migration 0007 has it
        conn.execute(update(documents).values(extracted_metadata=None))
    assert rt.catalog.get_document("default", "de-bib").extracted == {}
    rt.snapshots.rebuild("default")
    assert rt.catalog.get_document("default", "de-bib").extracted == {"language": "de"}
    assert _hits(rt, "Buch") == ["de-bib"]


def test_a_near_duplicate_left_out_before_0007_is_indexed_by_the_next_build(tmp_path):
    rt = make_runtime(tmp_path)
    v2 = POLICY.replace("Clause 7: staff", "Clause 7: contractors")
    assert ingest(rt, [text_doc("v1", POLICY)]).status == "succeeded"
    assert ingest(rt, [text_doc("v2", v2)]).counts["near_duplicate"] == 1
    with rt.catalog.db.tx() as conn:  # what 0007's data step does to a v2 recorded the old way
        conn.execute(update(documents).where(documents.c.doc_id == "v2")
                     .values(status="indexed", chunk_spans=None, chunk_hashes="[]"))
    rt.snapshots.rebuild("default")
    assert rt.catalog.get_document("default", "v2").chunk_hashes
    assert "v2" in _hits(rt, "contractors")
