"""Engines and transactions for the catalog: SQLite (the embedded default) or PostgreSQL through psycopg 3.

Two engines over one database. Writes go through `tx()`: one transaction, taken up front on SQLite (BEGIN
IMMEDIATE, so two writers queue instead of failing half way with "database is locked") and READ COMMITTED on
PostgreSQL, where a store that reads before it writes serialises itself with `lock()` (a transaction-scoped
advisory lock). Reads go through `read()`/`first()`/`all()`/`scalar()` on connections in autocommit: each statement
on its own, no BEGIN/ROLLBACK around it. That matters on `/retrieve`'s path, which reads the live pointer once per
request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from sqlalchemy import Boolean, Connection, Table, create_engine, event, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, RowMapping, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql import ColumnElement, Executable

log = logging.getLogger(__name__)

SUPPORTED = "sqlite:///<path to a file> (the embedded default) or postgresql+psycopg://user:password@host:5432/dbname"


class CatalogUnavailable(RuntimeError):
    """The catalog database cannot be reached (PostgreSQL down, wrong credentials, unreadable file)."""


def check_url(value: str | URL) -> URL:
    """A catalog URL of a supported dialect, or ValueError saying what is wrong and what is supported.

    `postgresql://` and `postgres://` (no driver named) mean psycopg 3, the driver snapdex ships with; any other
    driver is refused rather than tried, since only psycopg is installed and tested."""
    raw = str(value)
    if raw.startswith("postgres://"):  # what Heroku-style services hand out; SQLAlchemy knows it as postgresql
        raw = "postgresql://" + raw[len("postgres://"):]
    try:
        url = make_url(raw)
    except ArgumentError as e:
        raise ValueError(f"SNAPDEX_DATABASE_URL {_safe(raw)!r} is not a database URL ({e}); use {SUPPORTED}") from e
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "postgresql":
        if "+" not in url.drivername:
            url = url.set(drivername="postgresql+psycopg")
        elif driver != "psycopg":
            raise ValueError(f"SNAPDEX_DATABASE_URL names the driver {driver!r}; snapdex talks to PostgreSQL through "
                             f"psycopg 3 only: use postgresql+psycopg://...")
        if not url.database:
            raise ValueError(f"SNAPDEX_DATABASE_URL {_safe(url)!r} names no database: "
                             "postgresql+psycopg://user:password@host:5432/dbname")
        return url
    if backend == "sqlite":
        if "+" in url.drivername and driver != "pysqlite":
            raise ValueError(f"SNAPDEX_DATABASE_URL names the SQLite driver {driver!r}; use sqlite:///<path>")
        if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
            raise ValueError("SNAPDEX_DATABASE_URL points at an in-memory SQLite database: it would vanish at exit "
                             "and is not shared between connections; give a file, sqlite:///<path>")
        return url
    raise ValueError(f"SNAPDEX_DATABASE_URL uses the dialect {backend!r}; supported: {SUPPORTED}")


def _safe(url: str | URL) -> str:
    """A URL fit for a log line or an error message: the password hidden."""
    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url).split("@")[-1]


def lock_key(*parts: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks, stable across processes and releases."""
    digest = hashlib.sha256("\x1f".join(("snapdex", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Database:
    def __init__(self, url: str | URL | Path, pool_size: int = 5) -> None:
        self.url = check_url(f"sqlite:///{url}" if isinstance(url, Path) else url)
        self.dialect = self.url.get_backend_name()
        self._statements: dict[tuple[str, str], Any] = {}
        if self.sqlite:
            Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # Connections are cheap here and each waits its turn for the write lock: allow many.
            kw: dict[str, Any] = dict(connect_args={"timeout": 60, "check_same_thread": False},
                                      pool_size=max(pool_size, 8), max_overflow=64)
            self.engine = create_engine(self.url, **kw)
            self.reader = create_engine(self.url, **kw)
            for engine in (self.engine, self.reader):
                event.listen(engine, "connect", _sqlite_connect)
            # SQLAlchemy's recipe for pysqlite: the driver's own BEGIN is off (_sqlite_connect), ours is IMMEDIATE.
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        else:
            # pre_ping: a connection the server dropped (restart, failover) is replaced, not handed to a request.
            kw = dict(pool_size=pool_size, max_overflow=2 * pool_size, pool_pre_ping=True,
                      connect_args={"connect_timeout": 10, "application_name": "snapdex"})
            self.engine = create_engine(self.url, **kw)
            self.reader = create_engine(self.url, isolation_level="AUTOCOMMIT", **kw)
        # A forked child (Celery's prefork pool) must not share its parent's sockets: it opens its own. (A weak
        # reference: the fork hook must not keep every Database ever opened alive.)
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (db := ref()) is not None and db._after_fork())

    def __repr__(self) -> str:
        return f"Database({self.display_url})"

    @property
    def sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    # --- transactions and reads -------------------------------------------------------------------

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads, each statement on its own (autocommit)."""
        with self.reader.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction: every statement sees the database as it was when the first one ran (a
        consistent backup across tables), writers go on meanwhile."""
        if self.postgresql:
            with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                with conn.begin():
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    yield conn
            return
        with self.reader.connect() as conn:
            conn.exec_driver_sql("BEGIN")  # deferred: WAL keeps this reader's snapshot, no write lock is taken
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")

    # Reads of one statement. `params` fill a prebuilt statement's bindparams: the hot paths (a document per ingest
    # step, the live pointer per request) build their statements once, since building one costs more than running it.

    def first(self, stmt: Executable, conn: Connection | None = None, **params: Any) -> RowMapping | None:
        if conn is not None:
            return conn.execute(stmt, params).mappings().first()
        with self.read() as c:
            return c.execute(stmt, params).mappings().first()

    def all(self, stmt: Executable, conn: Connection | None = None, **params: Any) -> list[RowMapping]:
        if conn is not None:
            return list(conn.execute(stmt, params).mappings())
        with self.read() as c:
            return list(c.execute(stmt, params).mappings())

    def scalar(self, stmt: Executable, conn: Connection | None = None, **params: Any) -> Any:
        if conn is not None:
            return conn.execute(stmt, params).scalar()
        with self.read() as c:
            return c.execute(stmt, params).scalar()

    def lock(self, conn: Connection, *key: str) -> None:
        """Serialise the transaction `conn` is in with every other one that takes the same key, until it ends.

        SQLite needs nothing: BEGIN IMMEDIATE already lets one writer in at a time. PostgreSQL runs writers side by
        side, so a read-then-write (next version number, live pointer switch) takes a transaction advisory lock."""
        if self.postgresql:
            conn.execute(select(func.pg_advisory_xact_lock(lock_key(*key))))

    # --- dialect-specific SQL behind one name ------------------------------------------------------

    def now(self) -> ColumnElement:
        """The database's clock in epoch seconds: leases and claims compare against one clock, whatever host
        wrote them."""
        if self.postgresql:
            return func.extract("epoch", func.clock_timestamp())
        return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)

    def insert(self, table: Table):
        """INSERT with ON CONFLICT support: the same `on_conflict_do_nothing` / `on_conflict_do_update` API on both
        dialects."""
        return (postgresql.insert if self.postgresql else sqlite.insert)(table)

    def insert_ignore(self, conn: Connection, table: Table,
                      rows: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> int:
        """INSERT, skipping rows whose primary key (or a unique key) exists; returns how many went in."""
        if not rows:
            return 0
        stmt = self._statements.get((table.name, "ignore"))
        if stmt is None:
            stmt = self.insert(table).on_conflict_do_nothing().execution_options(preserve_rowcount=True)
            self._statements[(table.name, "ignore")] = stmt
        return conn.execute(stmt, rows).rowcount

    def replace(self, conn: Connection, table: Table, row: Mapping[str, Any]) -> None:
        """What SQLite's INSERT OR REPLACE did: the row as given, every column it leaves out back at its default."""
        key = (table.name, "replace")
        cached = self._statements.get(key)
        if cached is None:
            # Built once per table and reused: building the statement cost more than running it (ingest writes
            # one document per transaction).
            keys = [c.name for c in table.primary_key.columns]
            ins = self.insert(table)
            stmt = ins.on_conflict_do_update(index_elements=keys,
                                             set_={c.name: ins.excluded[c.name] for c in table.columns
                                                   if c.name not in keys})
            defaults = {c.name: _default(c) for c in table.columns if c.name not in keys}
            cached = self._statements[key] = (stmt, defaults)
        stmt, defaults = cached
        conn.execute(stmt, {**defaults, **row})

    def ping(self) -> None:
        with self.read() as c:
            c.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        self.reader.dispose()

    def _after_fork(self) -> None:
        self.engine.dispose(close=False)
        self.reader.dispose(close=False)


def _default(column) -> Any:
    """The value a column takes when an INSERT leaves it out: its default, as a Python value."""
    d = column.default
    if d is not None and d.is_scalar:
        return d.arg
    server = getattr(column.server_default, "arg", None)
    if not isinstance(server, str):
        return None
    kind = column.type.python_type if not isinstance(column.type, Boolean) else bool
    if kind is bool:
        return server not in ("0", "false")
    return int(server) if kind is int else server


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # the driver opens no transaction by itself: tx() does
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; a power cut loses at most the last commits
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
