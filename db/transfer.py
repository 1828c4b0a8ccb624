"""Back up and restore the catalog, per tenant or whole: `snapdex db export` / `snapdex db import`.

The format is JSON lines, the same from SQLite and from PostgreSQL, so a backup also moves a catalog from one to
the other. The first line describes the export (schema revision, tenants, whether the service-wide rows, operator
keys and benchmark runs, are in it); then one line per row, `{"table": ..., "row": {...}}`, parents before
children. Binary columns are base64. Vectors are not in the catalog: after a restore onto an empty vector store,
`POST /snapshots` rebuilds the live snapshot's collection from the catalog under the same hash.

Import runs in one transaction. Query sets and benchmark runs get new ids in the target database (another
tenant may hold the old ones there); the rows that point at them follow. A tenant that already has rows in the
target is refused unless `replace`, which deletes that tenant's rows first. Job claims and build leases are not
carried over: they belong to processes of the old database. Webhooks and their delivery log are not exported
either: their signing secrets are sealed under the source service's key (notify/secrets.py); register them again.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from typing import IO, Iterator

from sqlalchemy import Boolean, Connection, LargeBinary, Table, delete, func, select, union

from db.engine import Database
from db.migrate import current, history
from db.tables import (
    answers,
    api_keys,
    benchmarks,
    chunks,
    documents,
    eval_results,
    eval_runs,
    feedback,
    gate_verdicts,
    job_documents,
    jobs,
    live,
    profile_live,
    profile_switches,
    query_set_items,
    query_sets,
    retrieval_profiles,
    rollouts,
    snapshots,
    switches,
    tuning_runs,
)

FORMAT = "snapdex-catalog-export"
VERSION = 1
# Tables with a tenant column, parents before the children that point at them.
TENANT_TABLES: tuple[Table, ...] = (documents, chunks, jobs, snapshots, live, switches, query_sets, eval_runs,
                                    gate_verdicts, retrieval_profiles, profile_live, profile_switches, tuning_runs,
                                    api_keys, answers, feedback, rollouts)
# Children of a tenant's rows: (table, its column, the parent table whose id it holds).
CHILDREN: tuple[tuple[Table, str, Table], ...] = (
    (job_documents, "job_id", jobs), (query_set_items, "set_id", query_sets), (eval_results, "run_id", eval_runs))
ORDER: tuple[Table, ...] = (documents, chunks, jobs, job_documents, snapshots, live, switches, query_sets,
                            query_set_items, eval_runs, eval_results, gate_verdicts, retrieval_profiles, profile_live,
                            profile_switches, tuning_runs, api_keys, answers, feedback, rollouts, benchmarks)
RESET_ON_IMPORT = {"jobs": {"claimed_by": None, "claim_expires_at": None}}  # claims of the old database's workers
BATCH = 500


class ImportRefused(ValueError):
    pass


def tenants(db: Database) -> list[str]:
    """Every tenant with any row in the catalog."""
    stmt = union(*[select(t.c.tenant.label("tenant")).where(t.c.tenant.is_not(None)) for t in TENANT_TABLES])
    return sorted(r["tenant"] for r in db.all(stmt))


def _encode(table: Table, row: dict) -> dict:
    """JSON values, the same from either database: bytes as base64, flags (0/1 in SQLite) as booleans."""
    out = {}
    for k, v in row.items():
        kind = table.c[k].type
        if v is not None and isinstance(kind, LargeBinary):
            v = base64.b64encode(v).decode()
        elif v is not None and isinstance(kind, Boolean):
            v = bool(v)
        out[k] = v
    return out


def _decode(table: Table, row: dict) -> dict:
    unknown = set(row) - set(table.c.keys())
    if unknown:
        raise ImportRefused(f"{table.name} has no column {sorted(unknown)}: the export is from another schema")
    return {k: base64.b64decode(v) if v is not None and isinstance(table.c[k].type, LargeBinary) else v
            for k, v in row.items()}


def _rows(conn: Connection, table: Table, names: list[str] | None) -> Iterator[dict]:
    """The table's rows of these tenants (None: every row); service tables only when names is None."""
    stmt = select(table)
    if table is benchmarks:
        if names is not None:
            return
    elif "tenant" in table.c:
        if names is not None:
            stmt = stmt.where(table.c.tenant.in_(names))
    else:
        child = next((c for c in CHILDREN if c[0] is table), None)
        if child is not None and names is not None:
            _, column, parent = child
            stmt = stmt.where(table.c[column].in_(select(parent.c.id).where(parent.c.tenant.in_(names))))
    pk = [c for c in table.primary_key.columns]
    for r in conn.execution_options(stream_results=True, yield_per=BATCH).execute(stmt.order_by(*pk)).mappings():
        yield dict(r)


def export(db: Database, out: IO[str], names: list[str] | None = None) -> Counter:
    """Write the catalog (or these tenants' part of it) to `out`; returns rows per table."""
    counts: Counter = Counter()
    out.write(json.dumps({"format": FORMAT, "version": VERSION, "schema": current(db), "exported_at": time.time(),
                          "tenants": names if names is not None else tenants(db), "service": names is None}) + "\n")
    with db.snapshot() as conn:  # one consistent view of every table
        for table in ORDER:
            for row in _rows(conn, table, names):
                out.write(json.dumps({"table": table.name, "row": _encode(table, row)}, separators=(",", ":")) + "\n")
                counts[table.name] += 1
    return counts


def _header(line: str) -> dict:
    try:
        header = json.loads(line)
    except ValueError as e:
        raise ImportRefused(f"the first line is not JSON ({e}): not a `snapdex db export` file") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ImportRefused("not a `snapdex db export` file (its first line names no snapdex-catalog-export)")
    if header.get("version") != VERSION:
        raise ImportRefused(f"export format version {header.get('version')!r}; this release reads {VERSION}")
    known = [r.id for r in history()]
    if header.get("schema") not in known:
        raise ImportRefused(f"the export's schema revision {header.get('schema')!r} is unknown here (this release "
                            f"knows {', '.join(known)}): import it with the release that wrote it, or a newer one")
    return header


def import_(db: Database, source: IO[str], replace: bool = False) -> Counter:
    """Load an export into the catalog, in one transaction; returns rows per table."""
    header = _header(source.readline())
    names: list[str] = list(header.get("tenants") or [])
    counts: Counter = Counter()
    by_name = {t.name: t for t in ORDER}
    with db.tx() as conn:
        present = [n for n in names if _has_rows(conn, n)]
        if present and not replace:
            raise ImportRefused(f"tenants {present} already have rows in {db.display_url}: import with --replace "
                                "to delete them first, or into an empty catalog")
        for name in present:
            _delete_tenant(conn, name)
        set_ids: dict[int, int] = {}
        pending: dict[str, list[dict]] = {}
        for n, line in enumerate(source, start=2):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                table = by_name[item["table"]]
                row = _decode(table, item["row"])
            except (ValueError, KeyError, TypeError) as e:
                raise ImportRefused(f"line {n}: not a row of the catalog ({type(e).__name__}: {e})") from e
            if table is query_sets:  # a new id here; the items and runs that follow point at it
                old = row.pop("id")
                _flush(db, conn, pending, by_name, counts)
                set_ids[old] = conn.execute(query_sets.insert().values(**row)).inserted_primary_key[0]
                counts[table.name] += 1
                continue
            if table in (query_set_items, eval_runs):
                if row["set_id"] not in set_ids:
                    raise ImportRefused(f"line {n}: {table.name} points at query set {row['set_id']}, not in the file")
                row["set_id"] = set_ids[row["set_id"]]
            if table is benchmarks:
                row.pop("id")
            if _service_row(table, row) and not header.get("service"):
                raise ImportRefused(f"line {n}: a service-wide {table.name} row in a per-tenant export")
            row.update(RESET_ON_IMPORT.get(table.name, {}))
            batch = pending.setdefault(table.name, [])
            batch.append(row)
            if len(batch) >= BATCH:
                _flush(db, conn, pending, by_name, counts)
        _flush(db, conn, pending, by_name, counts)
    return counts


def _flush(db: Database, conn: Connection, pending: dict[str, list[dict]], by_name: dict[str, Table],
           counts: Counter) -> None:
    """Insert what is pending, parents first. Service rows already in the target (the same benchmark run, the same
    operator key) are kept as they are."""
    for table in ORDER:
        rows = pending.pop(table.name, None)
        if not rows:
            continue
        shared = [r for r in rows if _service_row(table, r)]
        own = [r for r in rows if not _service_row(table, r)]
        if shared:
            counts[table.name] += db.insert_ignore(conn, table, shared)
        if own:
            conn.execute(table.insert(), own)
            counts[table.name] += len(own)


def _service_row(table: Table, row: dict) -> bool:
    """Rows of the service, not of a tenant: benchmark runs and operator keys."""
    return table is benchmarks or (table is api_keys and row.get("tenant") is None)


def _has_rows(conn: Connection, name: str) -> bool:
    return any(conn.execute(select(func.count()).select_from(t).where(t.c.tenant == name)).scalar()
               for t in TENANT_TABLES)


def _delete_tenant(conn: Connection, name: str) -> None:
    for table, column, parent in CHILDREN:
        conn.execute(delete(table).where(table.c[column].in_(select(parent.c.id).where(parent.c.tenant == name))))
    for table in reversed(TENANT_TABLES):
        conn.execute(delete(table).where(table.c.tenant == name))

