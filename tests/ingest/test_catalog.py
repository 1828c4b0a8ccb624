"""The catalog's queries on the ingest path use their indexes (a full scan per document is quadratic ingest), and
documents round-trip with every field on both databases."""

from __future__ import annotations

from sqlalchemy import event

from ingest.catalog import Catalog, ChunkRow, DocumentRow


def test_exact_duplicate_lookup_uses_the_content_index(catalog_db):
    catalog = Catalog(catalog_db)
    seen: list[tuple[str, object]] = []
    event.listen(catalog_db.engine, "before_cursor_execute",
                 lambda conn, cursor, stmt, params, context, many: seen.append((stmt, params)))
    with catalog_db.tx() as conn:
        assert catalog.find_by_content("t", "c", exclude="d", conn=conn) is None
    stmt, params = next((s, p) for s, p in seen if "content_hash" in s)
    with catalog_db.engine.connect() as c:
        cursor = c.connection.dbapi_connection.cursor()
        if catalog_db.sqlite:
            # The planner must search by content hash, not walk every document of the tenant in doc_id order.
            cursor.execute("EXPLAIN QUERY PLAN " + stmt, params)
            plan = " ".join(str(r[-1]) for r in cursor.fetchall())
            assert "documents_by_content (tenant=? AND content_hash=?)" in plan, plan
        else:
            cursor.execute("SET enable_seqscan = off")  # an empty table would be scanned whatever the indexes
            cursor.execute("EXPLAIN " + stmt, params)
            plan = " ".join(str(r[0]) for r in cursor.fetchall())
            assert "documents_by_content" in plan and "Index Cond" in plan, plan


def test_documents_and_chunks_round_trip(catalog_db):
    catalog = Catalog(catalog_db)
    doc = DocumentRow(tenant="t", doc_id="b/ü.md", status="indexed", content_hash="c1", raw_hash="r1", source="ü.md",
                      title="Ü", metadata={"team": "hr", "year": 2024, "tags": ["a", "b"]}, chunk_hashes=["h1", "h2"],
                      minhash=bytes(range(256)), text="# Ü\n\ntext", structured=True, chunker="fp1")
    twin = DocumentRow(tenant="t", doc_id="B-upper", status="indexed", content_hash="c1", raw_hash="r2", source=None,
                       title=None, chunk_hashes=["h1", "h2"])
    with catalog_db.tx() as conn:
        catalog.put_chunks(conn, "t", [ChunkRow.of("h1", "first chunk text"), ChunkRow.of("h2", "second chunk")])
        catalog.put_chunks(conn, "t", [ChunkRow.of("h1", "first chunk text")])  # known chunks are kept as they are
        catalog.put_document(conn, doc)
        catalog.put_document(conn, twin)
    got = catalog.get_document("t", "b/ü.md")
    assert got == doc
    # Code point order, whatever the database's collation: "B-upper" before "b/ü.md".
    assert [d.doc_id for d in catalog.documents("t")] == ["B-upper", "b/ü.md"]
    with catalog_db.tx() as conn:
        assert catalog.find_by_content("t", "c1", exclude="B-upper", conn=conn).doc_id == "b/ü.md"
    assert dict(catalog.minhashes("t")) == {"b/ü.md": bytes(range(256))}
    chunks = catalog.chunks("t", ["h1", "h2", "h3"])
    assert set(chunks) == {"h1", "h2"} and chunks["h1"].terms == ChunkRow.of("h1", "first chunk text").terms
    # A replaced document takes every field anew (what INSERT OR REPLACE did).
    with catalog_db.tx() as conn:
        catalog.put_document(conn, DocumentRow(tenant="t", doc_id="b/ü.md", status="near_duplicate",
                                               content_hash="c2", raw_hash="r3", source=None, title=None))
        catalog.set_chunks(conn, "t", "B-upper", ["h2"], "fp2")
    replaced = catalog.get_document("t", "b/ü.md")
    assert replaced.minhash is None and replaced.metadata == {} and replaced.structured is False
    assert catalog.get_document("t", "B-upper").chunk_hashes == ["h2"]
    assert catalog.mark_deleted("t", "B-upper") and not catalog.mark_deleted("t", "B-upper")
    assert [d.doc_id for d in catalog.documents("t", status=None)] == ["B-upper", "b/ü.md"]
    assert list(catalog.documents("t")) == [] and catalog.get_document("other", "b/ü.md") is None
