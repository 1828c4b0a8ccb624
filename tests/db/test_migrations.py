"""Migrations: the MetaData and the revisions agree on both databases; a catalog written by the release before
migrations (commit ded4eb1, tests/fixtures/catalog-ded4eb1.sqlite3) is upgraded in place and reads back exactly
as that release read it; processes starting together upgrade once; bad URLs and unknown schemas say what is wrong."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from db import CatalogUnavailable, Database, SchemaError, check_url, open_catalog
from db.migrate import current, downgrade, head, history, upgrade
from db.tables import job_documents, metadata
from eval.benchmarks import BenchmarkStore
from eval.store import EvalStore
from index_snapshots.manifest import Manifest
from ingest.jobs import JobStore, NewDocument
from snapdex.keys import KeyStore
from tests.fixtures.make_legacy_catalog import EXPECTED, FIXTURE, dump, with_later_fields
from harness.procs import REPO


def differences(db: Database) -> list:
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def legacy_only(diffs: list) -> list:
    """What is left once two things that release's CREATE TABLE scripts did in their own way are set aside:
    `id TEXT PRIMARY KEY` without NOT NULL (SQLite lets such a key be NULL; snapdex never writes one), and the
    ON DELETE CASCADE of job_documents written inline, which SQLAlchemy's reflection does not read back (it is
    in the DDL, checked here)."""
    assert "REFERENCES jobs(id) ON DELETE CASCADE" in " ".join(legacy_schema()["job_documents"])
    flat = [d for group in diffs for d in (group if isinstance(group, list) else [group])]
    return [d for d in flat if not (d[0] == "modify_nullable" and d[5] is True and d[6] is False)
            and not (d[0] in ("remove_fk", "add_fk") and d[1].parent.name == "job_documents")]


def legacy_schema() -> dict[str, list[str]]:
    """The DDL the release before migrations ran, per table (read from the fixture it wrote)."""
    conn = sqlite3.connect(FIXTURE)
    try:
        out: dict[str, list[str]] = {}
        for kind, name, table, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS "
                                                   "NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type DESC"):
            out.setdefault(table, []).append(sql)
        return out
    finally:
        conn.close()


def test_a_fresh_catalog_matches_the_metadata(catalog_db):
    assert current(catalog_db) == head() == history()[-1].id
    assert [r.id for r in history()][:2] == ["0001", "0002"]
    assert differences(catalog_db) == []  # a change to db/tables.py needs its migration
    assert upgrade(catalog_db) == (head(), head())  # at head: nothing to do


def test_the_catalog_of_the_release_before_migrations_reads_back_the_same_after_upgrade(tmp_path, caplog):
    path = tmp_path / "catalog.sqlite3"
    shutil.copy(FIXTURE, path)
    fixture = json.loads(EXPECTED.read_text())
    with caplog.at_level("WARNING", logger="db.migrate"):
        db = open_catalog(f"sqlite:///{path}")
    assert "written before migrations (14 of 14 tables): adopting it at revision 0001" in caplog.text
    try:
        assert current(db) == head() and legacy_only(differences(db)) == []
        got = dump(JobStore(db), Manifest(db), EvalStore(db), BenchmarkStore(db), KeyStore(db), fixture["job_ids"],
                   fixture["secrets"])
        assert json.loads(json.dumps(got)) == with_later_fields(fixture["expected"])
        # What that release left running goes on: the queued job is still there to be taken up.
        assert JobStore(db).unsettled(unclaimed=True) == fixture["expected"]["tenants"]["beta"]["unsettled"]
    finally:
        db.dispose()
    again = open_catalog(f"sqlite:///{path}")  # the next start finds it at head
    assert current(again) == head()
    again.dispose()


def test_a_partial_catalog_before_migrations_is_completed(tmp_path):
    """`snapdex keys create` before the first start wrote api_keys alone; the old index on documents is replaced."""
    path = tmp_path / "catalog.sqlite3"
    schema = legacy_schema()
    conn = sqlite3.connect(path)
    conn.executescript(";\n".join(schema["api_keys"] + schema["documents"][:1]) + ";")
    conn.execute("CREATE INDEX documents_content ON documents (tenant, content_hash)")  # before commit 1d25910
    conn.execute("INSERT INTO api_keys (id, sha256, tenant, name, created_at) VALUES ('k1', 'abc', 'acme', '', 1.5)")
    conn.commit()
    conn.close()
    db = open_catalog(f"sqlite:///{path}")
    try:
        names = set(inspect(db.engine).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= names
        indexes = {i["name"] for i in inspect(db.engine).get_indexes("documents")}
        assert "documents_by_content" in indexes and "documents_content" not in indexes
        assert [k.id for k in KeyStore(db).list()] == ["k1"] and legacy_only(differences(db)) == []
    finally:
        db.dispose()


def test_a_pre_migration_catalog_that_lacks_columns_is_refused_with_what_is_missing(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, status TEXT NOT NULL)")
    conn.close()
    with pytest.raises(SchemaError, match="jobs lacks phase, created_at"):
        open_catalog(f"sqlite:///{path}")


def test_a_catalog_upgraded_by_a_newer_release_is_refused(catalog_db):
    with catalog_db.tx() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="revision 9999, which this release does not know.*newer snapdex"):
        upgrade(catalog_db)


def test_downgrade_and_upgrade_again_keep_the_rows(catalog_db):
    """0002's downgrade rebuilds jobs on SQLite (batch mode): the rows that reference it must survive."""
    jobs = JobStore(catalog_db)
    job = jobs.create("acme", [NewDocument("d1", b"x"), NewDocument("d2", b"y")])
    assert downgrade(catalog_db, "0001") == (head(), "0001")
    assert "claimed_by" not in {c["name"] for c in inspect(catalog_db.engine).get_columns("jobs")}
    assert upgrade(catalog_db) == ("0001", head())
    assert catalog_db.scalar(select(func.count()).select_from(job_documents)) == 2
    assert jobs.get(job).docs_total == 2 and differences(catalog_db) == []


STARTER = """
import sys
from db import open_catalog
from db.migrate import current
db = open_catalog(sys.argv[1])
print(current(db), flush=True)
"""


def test_processes_starting_together_upgrade_once(catalog_url):
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, catalog_url], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == [head()] * 4
    db = Database(catalog_url)
    try:
        assert db.scalar(text("SELECT COUNT(*) FROM alembic_version")) == 1 and differences(db) == []
    finally:
        db.dispose()


@pytest.mark.parametrize("url, says", [
    ("mysql://u:p@h/db", "dialect 'mysql'; supported: sqlite:///"),
    ("postgresql+psycopg2://u:secret@h/db", "driver 'psycopg2'.*psycopg 3 only"),
    ("postgresql+psycopg://u@h", "names no database"),
    ("sqlite://", "in-memory"),
    ("sqlite:///:memory:", "in-memory"),
    ("not a url", "is not a database URL"),
])
def test_a_bad_database_url_says_what_is_wrong_and_what_is_supported(url, says):
    with pytest.raises(ValueError, match=says) as e:
        check_url(url)
    assert "secret" not in str(e.value)


def test_urls_without_a_driver_mean_psycopg_and_settings_check_them(tmp_path):
    assert check_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert check_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    from pydantic import ValidationError

    from snapdex.settings import Settings

    with pytest.raises(ValidationError, match="supported"):
        Settings(database_url="oracle://x/y")
    assert Settings(data_dir=tmp_path).catalog_url == f"sqlite:///{tmp_path.absolute() / 'catalog.sqlite3'}"
    assert Settings(data_dir=tmp_path, database_url=" ").catalog_url.startswith("sqlite:///")


def test_an_unreachable_server_is_named_without_its_password():
    from harness.procs import free_port

    with pytest.raises(CatalogUnavailable, match=r"postgresql\+psycopg://snapdex:\*\*\*@127.0.0.1") as e:
        open_catalog(f"postgresql+psycopg://snapdex:hunter2@127.0.0.1:{free_port()}/nothing")
    assert "hunter2" not in str(e.value)


def test_the_migrations_ship_with_the_package():
    """Alembic finds them as package data (db:migrations), whatever the working folder."""
    out = subprocess.run([sys.executable, "-c", "from db.migrate import history; print(len(history()))"],
                         cwd=Path("/"), capture_output=True, text=True, env={"PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and int(out.stdout) == len(history()), out.stderr


def test_keys_made_before_scopes_become_admin_keys(catalog_db):
    """0006: every tenant key that existed before key scopes reads its whole tenant, as it did."""
    assert downgrade(catalog_db, "0005") == (head(), "0005")
    with catalog_db.tx() as conn:
        conn.execute(text("INSERT INTO api_keys (id, sha256, tenant, name, created_at) "
                          "VALUES ('old1', :sha, 'acme', 'before scopes', 1.0)"), {"sha": "a" * 64})
    assert upgrade(catalog_db) == ("0005", head())
    old = next(k for k in KeyStore(catalog_db).list() if k.id == "old1")
    assert old.scope == "admin" and old.user is None and old.groups == ()
    assert differences(catalog_db) == []


def test_documents_staged_before_parse_starts_are_parsed_from_a_count_of_zero(catalog_db, tmp_path):
    """0009: a job staged before the upgrade goes on, each document's parse starts counted from 0; the queued job
    the release before migrations left behind too."""
    assert downgrade(catalog_db, "0008") == (head(), "0008")
    jobs = JobStore(catalog_db)
    job = jobs.create("acme", [NewDocument("d1", b"x"), NewDocument("d2", b"y")])
    assert "parse_starts" not in {c["name"] for c in inspect(catalog_db.engine).get_columns("job_documents")}
    assert upgrade(catalog_db) == ("0008", head())
    assert [d.parse_starts for d in jobs.pending(job)] == [0, 0]
    jobs.parse_started(job, 1)
    assert [d.parse_starts for d in jobs.pending(job)] == [0, 1] and differences(catalog_db) == []

    path = tmp_path / "legacy.sqlite3"
    shutil.copy(FIXTURE, path)
    legacy = open_catalog(f"sqlite:///{path}")
    try:
        (queued,) = JobStore(legacy).unsettled(unclaimed=True)
        assert [d.parse_starts for d in JobStore(legacy).pending(queued)] == [0] * len(JobStore(legacy).doc_ids(queued))
    finally:
        legacy.dispose()


def test_answers_given_before_rollouts_are_kept_and_the_rollouts_table_comes_and_goes(catalog_db):
    """0013: answers and feedback written at 0012 read back the same (no rollout answered them); a downgrade drops
    the rollouts table alone."""
    from db.tables import rollouts
    from eval.answers import AnswerStore, Shown, reporter

    assert downgrade(catalog_db, "0012") == (head(), "0012")
    assert "rollouts" not in inspect(catalog_db.engine).get_table_names()
    store, who = AnswerStore(catalog_db, 3600, 86400), reporter("k1", None)
    store.remember("acme", "r1", who, Shown.of("s" * 64, [("c1", [("d1", 0, 5)])], None), "a query")
    store.record("acme", "r1", who, store.recall("acme", "r1", who, "feedback").shown, [("chunk", "c1", "cited")],
                 True, via="feedback")
    assert upgrade(catalog_db) == ("0012", head()) and differences(catalog_db) == []
    recalled = store.recall("acme", "r1", who, "feedback")
    assert (recalled.query, recalled.rollout, recalled.shown.arms) == ("a query", None, None)
    assert sorted(s["signal"] for s in store.signals("acme", "r1")) == ["cited", "helpful"]
    assert catalog_db.scalar(select(func.count()).select_from(rollouts)) == 0
    assert downgrade(catalog_db, "0012") == (head(), "0012")
    assert "rollouts" not in inspect(catalog_db.engine).get_table_names()
    assert store.recall("acme", "r1", who, "feedback").query == "a query"
    assert upgrade(catalog_db) == ("0012", head())
