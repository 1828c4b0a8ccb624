"""Alembic, configured in code: `upgrade` (run by `snapdex db upgrade` and by every start of the service, the workers
and the command line), `current` and `history`.

An upgrade runs inside one lock and one transaction: a PostgreSQL transaction holding an advisory lock, or SQLite's
BEGIN IMMEDIATE. Two processes starting together queue; the second finds the catalog at head and does nothing. A
catalog written by a release before migrations (its tables there, no alembic_version) is recognised, brought to
revision 0001 (the tables it lacks are created) and upgraded in place.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.exc import DBAPIError, OperationalError

from db.engine import CatalogUnavailable, Database, lock_key

log = logging.getLogger(__name__)
# Alembic says which implementation it chose on every start; the upgrade itself is logged below.
logging.getLogger("alembic").setLevel(logging.WARNING)

BASELINE = "0001"


class SchemaError(RuntimeError):
    """The catalog's schema is not one this release can read or upgrade."""


@dataclass(frozen=True)
class Revision:
    id: str
    down: str | None
    title: str


def config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "db:migrations")
    cfg.attributes["connection"] = conn
    return cfg


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    return scripts().get_current_head()


def history() -> list[Revision]:
    """Every revision, oldest first."""
    out = [Revision(s.revision, s.down_revision, (s.doc or "").strip().splitlines()[0] if s.doc else "")
           for s in scripts().walk_revisions()]
    return list(reversed(out))


def current(db: Database) -> str | None:
    """The revision the catalog is at; None for an empty database (or one written before migrations)."""
    try:
        with db.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except (OperationalError, DBAPIError) as e:
        raise CatalogUnavailable(f"cannot reach the catalog at {db.display_url}: {_reason(e)}") from e


def upgrade(db: Database, target: str = "head") -> tuple[str | None, str | None]:
    """Bring the catalog to `target`; returns (revision before, revision after)."""

    def run(conn: Connection, before: str | None) -> None:
        if before is None:
            _adopt_pre_migration_catalog(conn, db)
        elif before not in {r.id for r in history()}:
            raise SchemaError(
                f"the catalog at {db.display_url} is at revision {before}, which this release does not know "
                f"(its newest is {head()}): it was upgraded by a newer snapdex; run that release, or restore "
                "a backup made before the upgrade")
        command.upgrade(config(conn), target)

    before, after = _locked(db, run, f"upgrade the catalog at {db.display_url} to {target!r}")
    if before != after:
        log.info("catalog %s upgraded from %s to %s", db.display_url, before or "nothing", after)
    return before, after


def downgrade(db: Database, target: str) -> tuple[str | None, str | None]:
    """Take the catalog back to `target` (a revision, or "base"), before running an older release. Columns and
    tables added since are dropped, with what they held."""
    before, after = _locked(db, lambda conn, _: command.downgrade(config(conn), target),
                            f"downgrade the catalog at {db.display_url} to {target!r}")
    log.info("catalog %s downgraded from %s to %s", db.display_url, before, after or "nothing")
    return before, after


def _locked(db: Database, run, what: str) -> tuple[str | None, str | None]:
    """`run(conn, revision before)` under the migration lock, in one transaction; (before, after)."""
    try:
        with _migration_lock(db) as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            try:
                run(conn, before)
            except CommandError as e:
                raise SchemaError(f"cannot {what}: {e}") from e
            return before, MigrationContext.configure(conn).get_current_revision()
    except (OperationalError, DBAPIError) as e:
        raise CatalogUnavailable(f"cannot reach the catalog at {db.display_url}: {_reason(e)}") from e


@contextmanager
def _migration_lock(db: Database) -> Iterator[Connection]:
    with db.engine.connect() as conn:
        if db.sqlite:
            # Batch migrations copy a table and drop the old one; with foreign keys on, that DROP would delete the
            # rows that reference it (job_documents cascade from jobs). The pragma is ignored inside a
            # transaction, so it is set before BEGIN, on the driver's connection, and checked before COMMIT.
            raw = conn.connection.dbapi_connection
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():  # BEGIN IMMEDIATE: the write lock for the whole upgrade
                    yield conn
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise SchemaError(f"the upgrade left rows whose references are gone: {broken[:5]}")
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
        else:
            with conn.begin():
                conn.execute(select(func.pg_advisory_xact_lock(lock_key("migrate"))))
                yield conn


def _adopt_pre_migration_catalog(conn: Connection, db: Database) -> None:
    """A catalog from before migrations has some of revision 0001's tables and no alembic_version: check that
    what is there has 0001's columns, so that revision can fill in the rest and be recorded."""
    from importlib import import_module

    baseline = import_module("db.migrations.versions.0001_baseline").TABLES
    present = set(inspect(conn).get_table_names()) & set(baseline)
    if not present:
        return  # an empty database: the migrations create everything
    problems = []
    for name in sorted(present):
        columns = {c["name"] for c in inspect(conn).get_columns(name)}
        missing = [c for c in baseline[name] if c not in columns]
        if missing:
            problems.append(f"{name} lacks {', '.join(missing)}")
    if problems:
        raise SchemaError(f"the catalog at {db.display_url} has no migration history and its tables are not those of "
                          f"revision {BASELINE}: {'; '.join(problems)}")
    log.warning("catalog %s was written before migrations (%d of %d tables): adopting it at revision %s",
                db.display_url, len(present), len(baseline), BASELINE)


def _reason(e: Exception) -> str:
    orig = getattr(e, "orig", None)
    return str(orig or e).strip().splitlines()[0] if str(orig or e).strip() else type(e).__name__


def open_catalog(url: str, pool_size: int = 5) -> Database:
    """The catalog at `url`, upgraded to this release's schema (under the migration lock)."""
    db = Database(url, pool_size=pool_size)
    try:
        upgrade(db)
    except BaseException:
        db.dispose()
        raise
    return db
