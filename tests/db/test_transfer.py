"""Backup and restore: `db.transfer` export and import, whole or per tenant, between SQLite and PostgreSQL, and a
restored tenant that serves again once its live snapshot is rebuilt from the catalog."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from db import open_catalog
from db.tables import answers, feedback
from db.transfer import ImportRefused, export, import_, tenants
from eval.answers import AnswerStore, Shown, reporter
from eval.benchmarks import BenchmarkStore
from eval.store import EvalStore, LabelledQuery
from index_snapshots.manifest import Manifest
from ingest.jobs import JobStore, NewDocument
from snapdex.keys import KeyStore
from tests.fixtures.make_legacy_catalog import EXPECTED, FIXTURE, dump, with_later_fields
from harness.helpers import ingest, make_runtime, text_doc


@pytest.fixture
def legacy(tmp_path):
    """The catalog of the release before migrations, upgraded: real rows of every table."""
    path = tmp_path / "legacy.sqlite3"
    shutil.copy(FIXTURE, path)
    db = open_catalog(f"sqlite:///{path}")
    yield db
    db.dispose()


def stores(db) -> tuple:
    return JobStore(db), Manifest(db), EvalStore(db), BenchmarkStore(db), KeyStore(db)


def test_a_whole_catalog_moves_to_another_database_and_reads_back_the_same(legacy, catalog_db):
    fixture = json.loads(EXPECTED.read_text())
    buf = io.StringIO()
    written = export(legacy, buf)
    assert written["documents"] > 0 and written["eval_results"] > 0 and written["benchmarks"] == 1
    buf.seek(0)
    loaded = import_(catalog_db, buf)
    assert loaded == written
    got = dump(*stores(catalog_db), fixture["job_ids"], fixture["secrets"])
    assert json.loads(json.dumps(got)) == with_later_fields(fixture["expected"])
    assert tenants(catalog_db) == ["acme", "beta"]


def test_one_tenant_restores_beside_others_with_new_query_set_ids(legacy, catalog_db):
    other = EvalStore(catalog_db)  # the target already holds another tenant's query sets (ids 1 and 2)
    other.put_query_set("zeta", "a", [LabelledQuery("q", "x", {"d": 1})])
    other.put_query_set("zeta", "b", [LabelledQuery("q", "y", {"d": 1})])
    buf = io.StringIO()
    counts = export(legacy, buf, ["acme"])
    assert counts["benchmarks"] == 0 and "beta" not in buf.getvalue().split("\n", 1)[1]
    header = json.loads(buf.getvalue().splitlines()[0])
    assert header["tenants"] == ["acme"] and header["service"] is False
    buf.seek(0)
    import_(catalog_db, buf)

    source, target = EvalStore(legacy), EvalStore(catalog_db)
    src_sets = {(s.name, s.version): s for s in source.query_sets("acme")}
    dst_sets = {(s.name, s.version): s for s in target.query_sets("acme")}
    assert set(src_sets) == set(dst_sets) and all(dst_sets[k].id > 2 for k in dst_sets)
    for key in src_sets:
        assert target.queries(dst_sets[key].id) == source.queries(src_sets[key].id)
    assert [(r.id, r.set_name, r.set_version, r.metrics) for r in target.runs("acme")] == \
        [(r.id, r.set_name, r.set_version, r.metrics) for r in source.runs("acme")]
    run = source.runs("acme")[0].id
    assert target.results(run) == source.results(run)
    assert Manifest(catalog_db).live("acme") == Manifest(legacy).live("acme")
    assert [q.name for q in target.query_sets("zeta")] == ["a", "b"]  # untouched
    assert {k.tenant for k in KeyStore(catalog_db).list(include_revoked=True)} == {"acme"}  # no operator key


def test_an_import_over_a_tenant_that_has_rows_needs_replace(legacy, catalog_db):
    buf = io.StringIO()
    export(legacy, buf, ["beta"])
    import_(catalog_db, io.StringIO(buf.getvalue()))
    with pytest.raises(ImportRefused, match=r"tenants \['beta'\] already have rows.*--replace"):
        import_(catalog_db, io.StringIO(buf.getvalue()))
    JobStore(catalog_db).create("beta", [NewDocument("extra", b"x")])
    assert len(JobStore(catalog_db).unsettled()) == 2
    import_(catalog_db, io.StringIO(buf.getvalue()), replace=True)
    expected = json.loads(EXPECTED.read_text())["expected"]["tenants"]["beta"]["unsettled"]
    assert JobStore(catalog_db).unsettled() == expected


def test_a_tenants_answers_and_feedback_move_with_it_and_a_replacing_import_deletes_them(legacy, catalog_db):
    who, shown = reporter("k1", None), Shown("snap", [["c1", ["d1"]]])
    kept = AnswerStore(legacy, 0, 86400)
    kept.remember("beta", "r1", who, shown, "the query")
    kept.record("beta", "r1", who, shown, [("chunk", "c1", "cited")], True, via="feedback")
    buf = io.StringIO()
    counts = export(legacy, buf, ["beta"])
    assert (counts["answers"], counts["feedback"]) == (1, 2)
    import_(catalog_db, io.StringIO(buf.getvalue()))
    moved = AnswerStore(catalog_db, 0, 86400)
    assert moved.signals("beta") == kept.signals("beta") and moved.recall("beta", "r1", who, "feedback").query == \
        "the query"
    # The tenant replaced by an export made once its feedback was gone: none is left.
    with legacy.tx() as conn:
        conn.execute(feedback.delete())
        conn.execute(answers.delete())
    buf = io.StringIO()
    export(legacy, buf, ["beta"])
    import_(catalog_db, io.StringIO(buf.getvalue()), replace=True)
    assert moved.signals("beta") == [] and catalog_db.all(answers.select()) == []


@pytest.mark.parametrize("text, says", [
    ("", "not JSON"),
    ('{"format": "something-else"}\n', "not a `snapdex db export` file"),
    ('{"format": "snapdex-catalog-export", "version": 1, "schema": "9999", "tenants": []}\n', "9999.*unknown"),
    ('{"format": "snapdex-catalog-export", "version": 1, "schema": "0002", "tenants": ["t"], "service": false}\n'
     '{"table": "nope", "row": {}}\n', "line 2: not a row"),
    ('{"format": "snapdex-catalog-export", "version": 1, "schema": "0002", "tenants": ["t"], "service": false}\n'
     '{"table": "jobs", "row": {"id": "j", "bogus": 1}}\n', "jobs has no column"),
    ('{"format": "snapdex-catalog-export", "version": 1, "schema": "0002", "tenants": ["t"], "service": false}\n'
     '{"table": "benchmarks", "row": {"id": 1}}\n', "service-wide benchmarks row in a per-tenant export"),
])
def test_a_bad_file_is_refused_with_the_reason_and_nothing_written(catalog_db, text, says):
    with pytest.raises(ImportRefused, match=says):
        import_(catalog_db, io.StringIO(text))
    assert tenants(catalog_db) == []


def test_a_restored_tenant_serves_again_once_its_live_snapshot_is_rebuilt(tmp_path, catalog_url):
    """Vectors are not in the catalog: restored on a new host with an empty vector store, the rebuild finds the
    same documents and config, so the same hash, and fills its collection again; it stays live."""
    docs = [text_doc(f"d{i}", f"Document {i} is about topic{i} and refunds in week {i}. " * 6) for i in range(5)]
    old = make_runtime(tmp_path / "old")
    try:
        live = ingest(old, docs, "acme").snapshot
        buf = io.StringIO()
        export(old.db, buf, ["acme"])
    finally:
        old.close()
    new = make_runtime(tmp_path / "new", database_url=catalog_url)
    try:
        buf.seek(0)
        import_(new.db, buf)
        restored = new.manifest.live("acme")
        assert restored.hash == live and not new.store.has_collection(restored.collection)
        result = new.snapshots.rebuild("acme")
        assert result.hash == live and result.built
        snap = new.manifest.live("acme")
        assert snap.hash == live and snap.status == "live" and new.store.count(snap.collection) == snap.chunks
        hits = new.searcher.search("acme", "topic3 refunds", 3).hits
        assert hits and hits[0].payload["doc_ids"] == ["d3"]
    finally:
        new.close()
