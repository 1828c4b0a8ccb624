"""Usage reports: which parts of an answer the answer a model wrote from it used (README, "MCP: agents call snapdex
as a tool").

Every /retrieve answer (MCP's `search` and `get_context` are /retrieve answers) is remembered for
SNAPDEX_USAGE_WINDOW_S under its tenant, its request id and whom it was for: the key and the principal the read ran
as. A report (MCP's `report_usage`, POST /usage) names a request id and what was cited; it finds the answer only
under the reporter's own key and principal, and takes only what that answer held (its citation labels, chunk ids
and document ids). So nobody reports on an answer they were not given, or claims a document it did not show them.
Reports go to the catalog (`usage_reports`, migration 0010), one per answer and reporter: a new one replaces the last.

Answers are remembered in the process (a bounded TTL cache) or, when SNAPDEX_REDIS_URL is set, in Redis, which every
API replica reads: a report may reach another replica than the one that answered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

from cachetools import TTLCache
from sqlalchemy import select

from db.engine import Database
from db.tables import usage_reports
from errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

LABEL = re.compile(r"\[([0-9]{1,6})\]")  # a citation label, as answers number hits and passages: [1], [2], ...
U = usage_reports.c


class UsageRefused(InvalidInput):
    """A report on an answer its reporter was not given, or naming what that answer did not hold."""


class MemoryUnavailable(Unavailable):
    """Redis, where recent answers are remembered, did not answer."""


def reporter(key_id: str | None, reader) -> list:
    """Whom an answer was for: the key, and the principal the read ran as (`reader`; None: the whole tenant)."""
    return [key_id, reader.user if reader else None, sorted(reader.groups) if reader else []]


@dataclass(frozen=True)
class Shown:
    """What one answer showed. `hits`: [chunk id, [doc ids of its sources]] in rank order; `passages`, when it had a
    context block: [doc id, [chunk ids of the hits inside it]] in order. A label [n] cites the n-th passage, or the
    n-th hit when there is no context block (as the search tool and the Python client's nodes number them)."""

    snapshot: str
    hits: list
    passages: list | None = None
    labelled: bool = True  # False for the merged answers of a batch, whose labels would be ambiguous
    at: float = field(default_factory=time.time)

    @classmethod
    def of(cls, snapshot: str, hits: Iterable[tuple[str, list[tuple[str, int | None, int | None]]]],
           passages: Iterable[tuple[str, int | None, int | None]] | None, labelled: bool = True) -> "Shown":
        """From hits as (chunk id, [(doc id, start, end) of each source]) and passages as (doc id, start, end)."""
        hits = list(hits)

        def inside(doc_id: str, start: int | None, end: int | None) -> list[str]:
            # A hit is in a passage of one of its documents when its span there lies within the passage's (any hit
            # of the document when offsets are unknown: a snapshot built before they were recorded).
            return [chunk for chunk, sources in hits
                    if any(d == doc_id and (start is None or s is None or start <= s and e <= end)
                           for d, s, e in sources)]

        return cls(snapshot, [[chunk, [d for d, _, _ in sources]] for chunk, sources in hits],
                   None if passages is None else [[d, inside(d, s, e)] for d, s, e in passages], labelled)

    @classmethod
    def merged(cls, shown: list["Shown"]) -> "Shown":
        """The answers of one batch (they share its request id): every hit and passage, but no labels."""
        hits = {chunk: docs for s in shown for chunk, docs in s.hits}
        passages = [p for s in shown for p in s.passages or []]
        return cls(shown[0].snapshot if shown else "", [[c, d] for c, d in hits.items()], passages, labelled=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Shown":
        return cls(**json.loads(text))

    def labels(self) -> str:
        n = len(self.passages) if self.passages is not None else len(self.hits)
        return "none" if not self.labelled or n == 0 else "[1]" if n == 1 else f"[1] to [{n}]"

    def resolve(self, request_id: str, refs: list[str]) -> list[dict]:
        """Each reference as what it cites: {"ref", "citation" (the label, if one was given), "doc_id", "chunk_ids"};
        UsageRefused naming every reference the answer did not hold."""
        chunks = {chunk: docs for chunk, docs in self.hits}
        docs: dict[str, list[str]] = {}
        for chunk, ids in self.hits:
            for d in ids:
                docs.setdefault(d, []).append(chunk)
        for d, _ in self.passages or []:
            docs.setdefault(d, [])
        out, unknown = [], []
        for ref in dict.fromkeys(refs):  # the same reference twice counts once
            label = LABEL.fullmatch(ref)
            if label and self.labelled:
                n = int(label.group(1))
                if self.passages is not None and 1 <= n <= len(self.passages):
                    doc, inside = self.passages[n - 1]
                    out.append({"ref": ref, "citation": ref, "doc_id": doc, "chunk_ids": inside})
                elif self.passages is None and 1 <= n <= len(self.hits):
                    chunk, ids = self.hits[n - 1]
                    out.append({"ref": ref, "citation": ref, "doc_id": ids[0], "chunk_ids": [chunk]})
                else:
                    unknown.append(ref)
            elif ref in chunks and chunks[ref]:
                out.append({"ref": ref, "citation": None, "doc_id": chunks[ref][0], "chunk_ids": [ref]})
            elif ref in docs:
                out.append({"ref": ref, "citation": None, "doc_id": ref, "chunk_ids": docs[ref]})
            else:
                unknown.append(ref)
        if unknown:
            shown = ", ".join(repr(u[:80]) for u in unknown[:10]) + (f" and {len(unknown) - 10} more"
                                                                      if len(unknown) > 10 else "")
            raise UsageRefused(f"cited {shown} not in answer {request_id}: cite what it showed, its citation labels "
                               f"({self.labels()}), chunk ids or document ids")
        return out


class AnswerMemory:
    """Recent answers by (tenant, request id, reporter): in this process, or in Redis when `redis_url` is given."""

    def __init__(self, window_s: float, size: int, redis_url: str | None = None) -> None:
        self.window_s = window_s
        self.on = window_s > 0 and (size > 0 or redis_url is not None)
        self.redis = None
        if self.on and redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        self.local = TTLCache(size, window_s) if self.on and self.redis is None else None
        self.lock = threading.Lock()

    @staticmethod
    def key(tenant: str, request_id: str, reporter: list) -> str:
        who = hashlib.sha256(json.dumps(reporter).encode()).hexdigest()[:24]
        return f"snapdex:answer:{tenant}:{request_id}:{who}"

    def remember(self, tenant: str, request_id: str, reporter: list, shown: Shown) -> None:
        if not self.on:
            return
        key = self.key(tenant, request_id, reporter)
        if self.redis is None:
            with self.lock:
                self.local[key] = shown
            return
        try:
            self.redis.set(key, shown.to_json(), ex=max(1, math.ceil(self.window_s)))
        except Exception as e:  # the answer is served all the same; only a report on it will be refused
            log.warning("answer %s not remembered for usage reports (%s: %s)", request_id, type(e).__name__, e)

    def recall(self, tenant: str, request_id: str, reporter: list) -> Shown | None:
        if not self.on:
            return None
        key = self.key(tenant, request_id, reporter)
        if self.redis is None:
            with self.lock:
                return self.local.get(key)
        try:
            raw = self.redis.get(key)
        except Exception as e:
            raise MemoryUnavailable(f"recent answers are kept in Redis, which did not answer ({type(e).__name__})") \
                from e
        return Shown.from_json(raw) if raw else None


class UsageLog:
    def __init__(self, db: Database, memory: AnswerMemory) -> None:
        self.db, self.memory = db, memory

    def remember(self, tenant: str, request_id: str, reporter: list, shown: Shown) -> None:
        self.memory.remember(tenant, request_id, reporter, shown)

    def report(self, tenant: str, request_id: str, reporter: list, refs: list[str], helpful: bool | None) -> dict:
        """Record which parts of the answer `request_id` were used; UsageRefused when the reporter was not given
        that answer (in the window) or it held no such part."""
        if not self.memory.on:
            raise UsageRefused("usage reports are off on this service (SNAPDEX_USAGE_WINDOW_S=0)")
        shown = self.memory.recall(tenant, request_id, reporter)
        if shown is None:
            raise UsageRefused(
                f"request_id {request_id!r} is not an answer this key and principal were given in the last "
                f"{self.memory.window_s:g} s (SNAPDEX_USAGE_WINDOW_S): report with the request_id of your own "
                "recent search, get_context or /retrieve answer")
        cited = shown.resolve(request_id, refs)
        key = {"tenant": tenant, "request_id": request_id, "reporter": json.dumps(reporter)}
        with self.db.tx() as conn:
            replaced = self.db.first(select(U.tenant).where(*(U[k] == v for k, v in key.items())), conn) is not None
            self.db.replace(conn, usage_reports, {**key, "snapshot": shown.snapshot, "cited": json.dumps(cited),
                                                  "helpful": helpful, "answered_at": shown.at,
                                                  "reported_at": time.time()})
        log.info("usage", extra={"tenant": tenant, "answer": request_id, "snapshot": shown.snapshot,
                                 "cited": len(cited), "helpful": helpful, "replaced": replaced})
        return {"request_id": request_id, "snapshot": shown.snapshot, "cited": cited, "helpful": helpful,
                "replaced": replaced}

    def reports(self, tenant: str, limit: int = 100) -> list[dict]:
        """The tenant's latest reports, newest first."""
        rows = self.db.all(select(usage_reports).where(U.tenant == tenant)
                           .order_by(U.reported_at.desc()).limit(limit))
        return [{**r, "reporter": json.loads(r["reporter"]), "cited": json.loads(r["cited"]),
                 "helpful": None if r["helpful"] is None else bool(r["helpful"])} for r in rows]
