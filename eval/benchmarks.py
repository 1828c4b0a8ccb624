"""Benchmark runs against the do-it-yourself peer (`bench/peer_bench.py`), kept in the catalog database for the
dashboard's history.

A run is the JSON the benchmark writes, stored whole. It is identified by its name (e.g. "peers"), the instant it
ran and the commit it measured: importing the same run again returns the stored one. Benchmarks describe the
service, not a tenant's data, so nothing here is per tenant.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from db.engine import Database
from db.tables import benchmarks
from errors import InvalidInput, TooLarge
from wire.common import parse_date

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
MAX_BODY_BYTES = 2 * 1024 * 1024  # peers.json is ~10 KB; profiles included, well under 100 KB
DEFAULT, FIRST_STAGE, PEER = "snapdex default", "snapdex first stage", "peer"


class BenchmarkTooLarge(TooLarge):
    pass


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(f"benchmark name {name!r} must be 1-64 characters of letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    return name


def _get(body: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


@dataclass(frozen=True)
class BenchmarkRun:
    id: int
    name: str
    created_at: float
    run_date: str
    run_at: float
    commit: str
    machine: str | None
    body: dict

    def summary(self) -> dict[str, Any]:
        """The figures the dashboard's history shows: snapdex's default pipeline against the peer on quality, the
        first stage's p95 against the peer's, the 100k-chunk p95, build times, the run's wall time and targets."""
        b, systems = self.body, self.body.get("systems") or {}
        default, first, peer = systems.get(DEFAULT) or {}, systems.get(FIRST_STAGE) or {}, systems.get(PEER) or {}
        first_p95, peer_p95 = _get(first, "latency_ms", "p95"), _get(peer, "latency_ms", "p95")
        targets = b.get("targets") if isinstance(b.get("targets"), dict) else {}
        missed = [name for name, t in targets.items() if not (isinstance(t, dict) and t.get("met") is True)]
        return {
            "id": self.id, "name": self.name, "date": self.run_date, "run_at": self.run_at, "commit": self.commit,
            "dirty": _get(b, "git", "dirty"), "machine": self.machine, "cpu": b.get("cpu"),
            "imported_at": self.created_at,
            "ndcg_at_10": {"snapdex": _get(default, "quality", "ndcg@10"), "peer": _get(peer, "quality", "ndcg@10")},
            "recall_at_100": {"snapdex": _get(default, "quality", "recall@100"),
                              "peer": _get(peer, "quality", "recall@100")},
            "first_stage_p95_ms": first_p95, "peer_p95_ms": peer_p95,
            "first_stage_p95_ratio": _ratio(first_p95, peer_p95),
            "p95_100k_ms": _get(b, "100k", "first_stage_latency_ms", "p95"),
            "build_s": {"snapdex": default.get("build_s"), "peer": peer.get("build_s")},
            "wall_s": b.get("wall_s"),
            "targets": {"met": len(targets) - len(missed), "total": len(targets), "missed": missed},
        }


class BenchmarkStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, name: str, body: dict) -> tuple[BenchmarkRun, bool]:
        """Store a run; returns (run, created). The same run (name, instant, commit) again returns the stored one
        unchanged: a re-import never duplicates a point of the history."""
        check_name(name)
        date, commit = _get(body, "date"), _get(body, "git", "commit")
        if not isinstance(date, str):
            raise InvalidInput("date: missing; the run's ISO 8601 date-time is required")
        if not isinstance(commit, str) or not COMMIT.match(commit):
            raise InvalidInput(f"git.commit: {commit!r} is not a git commit (7-40 of 0-9a-f)")
        run_at = parse_date(date)
        machine = body.get("machine") if isinstance(body.get("machine"), str) else None
        try:
            text = json.dumps(body, allow_nan=False, separators=(",", ":"))
        except ValueError as e:  # json.loads takes NaN and Infinity; no JSON reader of the history could
            raise InvalidInput(f"the run holds a number JSON cannot carry (NaN or Infinity): {e}") from e
        if len(text) > MAX_BODY_BYTES:
            raise BenchmarkTooLarge(f"the run is {len(text):,} bytes of JSON; at most {MAX_BODY_BYTES:,}")
        b = benchmarks.c
        with self.db.tx() as conn:
            created = self.db.insert_ignore(conn, benchmarks, {
                "name": name, "created_at": time.time(), "run_date": date, "run_at": run_at, "git_commit": commit,
                "machine": machine, "body": text}) == 1
            row = self.db.first(select(benchmarks).where(b.name == name, b.run_at == run_at, b.git_commit == commit),
                                conn)
        return self._run(row), created

    def _run(self, r) -> BenchmarkRun:
        return BenchmarkRun(r["id"], r["name"], r["created_at"], r["run_date"], r["run_at"], r["git_commit"],
                            r["machine"], json.loads(r["body"]))

    def get(self, run_id: int) -> BenchmarkRun | None:
        r = self.db.first(select(benchmarks).where(benchmarks.c.id == run_id))
        return self._run(r) if r else None

    def list(self, name: str | None = None, limit: int = 100) -> list[BenchmarkRun]:
        """Newest run first (by when it ran, not when it was imported)."""
        stmt = select(benchmarks)
        if name is not None:
            stmt = stmt.where(benchmarks.c.name == name)
        stmt = stmt.order_by(benchmarks.c.run_at.desc(), benchmarks.c.id.desc()).limit(int(limit))
        return [self._run(r) for r in self.db.all(stmt)]
