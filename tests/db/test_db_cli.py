"""`snapdex db` as an operator runs it: migrations on a data folder of the release before migrations, and a backup
of a SQLite catalog restored into PostgreSQL (and back)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from db.migrate import head
from tests.fixtures.make_legacy_catalog import EXPECTED, FIXTURE, with_later_fields
from harness.procs import REPO, snapdex_env


def snapdex(data_dir, *args: str, url: str | None = None) -> subprocess.CompletedProcess:
    extra = {"SNAPDEX_DATABASE_URL": url} if url else {}
    return subprocess.run([sys.executable, "-m", "snapdex", "db", *args], cwd=REPO, capture_output=True, text=True,
                          env=snapdex_env(data_dir, **extra), timeout=120)


def rows(path) -> list[dict]:
    out = [json.loads(line) for line in path.read_text().splitlines()]
    for item in out[1:]:
        item["row"].pop("id" if item["table"] == "query_sets" else "set_id", None)
    return out


def test_migrations_on_a_data_folder_of_the_release_before_migrations(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURE, data / "catalog.sqlite3")
    out = snapdex(data, "current")
    assert out.returncode == 1 and "revision - (empty or written before migrations)" in out.stdout, out.stderr
    out = snapdex(data, "upgrade")
    assert out.returncode == 0 and f"upgraded from nothing to {head()}" in out.stdout, out.stderr
    assert "adopting it at revision 0001" in out.stderr
    out = snapdex(data, "current")
    assert out.returncode == 0 and f"revision {head()} (head)" in out.stdout
    out = snapdex(data, "history", "--mark")
    assert out.stdout.splitlines()[0].startswith("0001  Baseline") and f"{head()} (current) (head)" in out.stdout


def test_a_sqlite_backup_restores_into_postgresql_and_back(tmp_path, postgres):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURE, data / "catalog.sqlite3")
    assert snapdex(data, "upgrade").returncode == 0
    backup = tmp_path / "acme.jsonl"
    out = snapdex(data, "export", "--tenant", "acme", "--out", str(backup))
    assert out.returncode == 0 and "exported tenants acme" in out.stderr, out.stderr

    url = postgres.create_database()
    out = snapdex(tmp_path / "unused", "import", str(backup), url=url)
    assert out.returncode == 0 and "imported into postgresql+psycopg://" in out.stderr, out.stderr
    out = snapdex(tmp_path / "unused", "import", str(backup), url=url)
    assert out.returncode == 1 and "already have rows" in out.stderr and "--replace" in out.stderr
    assert snapdex(tmp_path / "unused", "import", str(backup), "--replace", url=url).returncode == 0

    # Back out of PostgreSQL into a new SQLite folder: the same rows, line for line, but for the export's own
    # header and the query set ids the database handed out (the re-import with --replace took new ones).
    again = tmp_path / "again.jsonl"
    assert snapdex(tmp_path / "unused", "export", "--tenant", "acme", "--out", str(again), url=url).returncode == 0
    first, second = rows(backup), rows(again)
    assert first[0]["tenants"] == second[0]["tenants"] == ["acme"]
    assert first[1:] == second[1:] and len(first) > 50
    restored = tmp_path / "restored"
    assert snapdex(restored, "import", str(again)).returncode == 0
    expected = with_later_fields(json.loads(EXPECTED.read_text())["expected"])["tenants"]["acme"]
    from db import open_catalog
    from index_snapshots.manifest import Manifest

    db = open_catalog(f"sqlite:///{restored / 'catalog.sqlite3'}")
    try:
        assert json.loads(json.dumps(Manifest(db).live("acme").__dict__)) == expected["live"]
    finally:
        db.dispose()


def test_a_bad_url_is_a_message_not_a_traceback(tmp_path):
    out = snapdex(tmp_path, "current", url="postgresql+psycopg2://u:secret@h/x")
    assert out.returncode == 1 and "psycopg 3 only" in out.stderr
    assert "Traceback" not in out.stderr and "secret" not in out.stderr
