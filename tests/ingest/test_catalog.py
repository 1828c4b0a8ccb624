"""The catalog's queries on the ingest path use their indexes (a full scan per document is quadratic ingest)."""

from __future__ import annotations

import sqlite3

from ingest.catalog import Catalog
from ingest.db import Database


def test_exact_duplicate_lookup_uses_the_content_index(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    Catalog(Database(path))
    old = sqlite3.connect(path)  # as a catalog made before the index named doc_id: it is replaced on open
    old.executescript("DROP INDEX documents_by_content; CREATE INDEX documents_content ON documents (tenant, content_hash);")
    old.close()
    catalog = Catalog(Database(path))
    conn = catalog.db.conn()
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "documents_by_content" in names and "documents_content" not in names
    # The planner must search by content hash, not walk every document of the tenant in doc_id order.
    plan = " ".join(r[-1] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM documents WHERE tenant = 't' AND content_hash = 'c' AND status = 'indexed'"
        " AND doc_id != 'd' ORDER BY doc_id LIMIT 1"))
    assert "documents_by_content (tenant=? AND content_hash=?)" in plan, plan
    assert catalog.find_by_content("t", "c", exclude="d", conn=conn) is None
