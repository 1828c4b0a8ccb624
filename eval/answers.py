"""The answers /retrieve gave, and the signals reported on them: one store for usage reports (POST /usage, MCP's
report_usage) and feedback (POST /feedback), in the catalog (tables `answers` and `feedback`, migration 0012), so
every API replica and a restarted one find an answer given elsewhere.

Every answer is remembered under its tenant, its request id and whom it was for (the key and the principal the read
ran as): only that reporter finds it, so nobody reports on an answer they were not shown. It keeps the hits in rank
order with their documents (and, once rollouts answer, each hit's arm), so a signal on a hit is credited to its
position and to the arm that put it there; and, under SNAPDEX_FEEDBACK_KEEP_QUERIES, the query text, from which
answers with positive signals become labelled queries (eval/feedback.py). Answers without a signal are dropped after
twice the longer window; answers with signals, and the signals, after SNAPDEX_FEEDBACK_RETENTION_DAYS.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Iterable

from sqlalchemy import Connection, and_, delete, exists, select

from db.engine import Database
from db.tables import answers, feedback
from errors import InvalidInput

log = logging.getLogger(__name__)

LABEL = re.compile(r"\[([0-9]{1,6})\]")  # a citation label, as answers number hits and passages: [1], [2], ...
A, F = answers.c, feedback.c
SIGNALS = ("cited", "clicked", "helpful", "not_helpful")
PURGE_EVERY_S = 60.0


class Refused(InvalidInput):
    """A report on an answer its reporter was not given (in the window), or naming what that answer did not hold."""


def reporter(key_id: str | None, reader) -> list:
    """Whom an answer was for: the key, and the principal the read ran as (`reader`; None: the whole tenant)."""
    return [key_id, reader.user if reader else None, sorted(reader.groups) if reader else []]


def listed(items: list[str]) -> str:
    return ", ".join(repr(u[:80]) for u in items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")


@dataclass(frozen=True)
class Shown:
    """What one answer showed. `hits`: [chunk id, [doc ids of its sources]] in rank order; `passages`, when it had a
    context block: [doc id, [chunk ids of the hits inside it]] in order. A label [n] cites the n-th passage, or the
    n-th hit when there is no context block (as the search tool and the Python client's nodes number them).
    `arms`: the rollout arm of each hit (a rollout's interleaved answer), None when no rollout answered."""

    snapshot: str
    hits: list
    passages: list | None = None
    labelled: bool = True  # False for the merged answers of a batch, whose labels would be ambiguous
    at: float = field(default_factory=time.time)
    arms: list | None = None

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
        Refused naming every reference the answer did not hold."""
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
            raise Refused(f"cited {listed(unknown)} not in answer {request_id}: cite what it showed, its citation "
                          f"labels ({self.labels()}), chunk ids or document ids")
        return out

    def credits(self) -> tuple[dict[str, tuple[int, str, str | None]], dict[str, tuple[int | None, str | None]]]:
        """Where each chunk and document stood: chunk id -> (1-based rank, its first document, its arm); doc id ->
        (rank of its first hit, that hit's arm), rank None for a document only a context passage showed."""
        arms = self.arms or [None] * len(self.hits)
        chunks: dict[str, tuple[int, str, str | None]] = {}
        docs: dict[str, tuple[int | None, str | None]] = {}
        for rank, ((chunk, ids), arm) in enumerate(zip(self.hits, arms), 1):
            if ids:
                chunks.setdefault(chunk, (rank, ids[0], arm))
            for d in ids:
                docs.setdefault(d, (rank, arm))
        for d, _ in self.passages or []:
            docs.setdefault(d, (None, None))
        return chunks, docs


@dataclass(frozen=True)
class Recalled:
    shown: Shown
    query: str | None
    answered_at: float
    rollout: str | None = None  # the rollout that answered


class AnswerStore:
    """Answers by (tenant, request id, reporter), and the signals on them, in the catalog."""

    def __init__(self, db: Database, usage_window_s: float, feedback_window_s: float, keep_queries: bool = True,
                 retention_days: float = 90.0) -> None:
        self.db = db
        self.windows = {"usage": usage_window_s, "feedback": feedback_window_s}
        self.on = max(self.windows.values()) > 0
        # Unanswered answers outlive the longer window (twice it), so a late report is told it came too late rather
        # than that no such answer was given.
        self.keep_s = 2 * max(self.windows.values())
        self.retention_s = retention_days * 86400.0
        self.keep_queries = keep_queries
        self._purged_at = 0.0
        self._lock = threading.Lock()

    def remember(self, tenant: str, request_id: str, who: list, shown: Shown, query: str | None = None,
                 rollout: str | None = None) -> None:
        """`rollout`: the rollout that answered (its arms are `shown.arms`), whose figures count this answer."""
        if not self.on:
            return
        row = {"tenant": tenant, "request_id": request_id, "reporter": json.dumps(who), "snapshot": shown.snapshot,
               "shown": shown.to_json(), "rollout": rollout, "query": query if self.keep_queries else None,
               "answered_at": shown.at}
        try:
            with self.db.tx() as conn:
                self.db.replace(conn, answers, row)
            self._purge_now_and_then()
        except Exception as e:  # the answer is served all the same; only a report on it will be refused
            # The error's type only: a database error's text quotes the statement's parameters, the query among them.
            log.warning("answer %s not remembered for feedback (%s)", request_id, type(e).__name__)

    def recall(self, tenant: str, request_id: str, who: list, kind: str) -> Recalled:
        """The answer `request_id` as given to `who`, if within the `kind` ("usage" or "feedback") window; else
        Refused saying why: no answer of this tenant has that id, it was another key's or principal's, or it is too
        old. The words 'not an answer this key and principal were given' begin each reason."""
        window, setting = self.windows[kind], f"SNAPDEX_{kind.upper()}_WINDOW_S"
        if window <= 0:
            what = "usage reports are" if kind == "usage" else "feedback is"
            raise Refused(f"{what} off on this service ({setting}=0)")
        head = f"request_id {request_id!r} is not an answer this key and principal were given"
        rows = self.db.all(select(answers).where(A.tenant == tenant, A.request_id == request_id))
        mine = next((r for r in rows if r["reporter"] == json.dumps(who)), None)
        if mine is None and rows:
            raise Refused(f"{head}: it was answered for another key or principal, and a principal reports only on "
                          "answers it was shown (a service key names the principal the answer was for)")
        if mine is None:
            raise Refused(f"{head} in the last {window:g} s ({setting}): no answer of this tenant has that id; "
                          "report with the request_id of your own recent search, get_context or /retrieve answer")
        age = time.time() - mine["answered_at"]
        if age > window:
            raise Refused(f"{head} in the last {window:g} s ({setting}): it was answered {age:.0f} s ago; report "
                          "within the window")
        return Recalled(Shown.from_json(mine["shown"]), mine["query"], mine["answered_at"], mine["rollout"])

    def record(self, tenant: str, request_id: str, who: list, shown: Shown, signals: list[tuple[str, str, str]],
               helpful: bool | None, via: str, replace: bool = False, conn: Connection | None = None) -> list[dict]:
        """Store `signals` ((kind "chunk" | "doc", id, signal)) and the answer's `helpful`, each once: a signal
        already stored is kept as it was. `replace`: first drop what `via` reported on this answer before (a usage
        report replaces the last). Refused, storing nothing, when a chunk or document was not in the answer.
        Returns each signal as stored, with `"new"`: whether it was not stored already. `conn`: in that
        transaction, else in one of its own."""
        chunks, docs = shown.credits()
        unknown = [f"{kind}_id {ident}" for kind, ident, _ in signals
                   if ident not in (chunks if kind == "chunk" else docs)]
        if unknown:
            raise Refused(f"{listed(unknown)} not in answer {request_id}: name the chunk_id or doc_id of one of its "
                          f"{len(shown.hits)} hits")
        key = {"tenant": tenant, "request_id": request_id, "reporter": json.dumps(who)}
        rows = []
        for kind, ident, signal in dict.fromkeys(signals):
            if kind == "chunk":
                rank, doc, arm = chunks[ident]
                rows.append({"target": f"chunk:{ident}", "signal": signal, "chunk_id": ident, "doc_id": doc,
                             "position": rank, "arm": arm})
            else:
                rank, arm = docs[ident]
                rows.append({"target": f"doc:{ident}", "signal": signal, "chunk_id": None, "doc_id": ident,
                             "position": rank, "arm": arm})
        if helpful is not None:
            rows.append({"target": "answer", "signal": "helpful" if helpful else "not_helpful", "chunk_id": None,
                         "doc_id": None, "position": None, "arm": None})
        now = time.time()
        match = and_(*(F[k] == v for k, v in key.items()))
        with nullcontext(conn) if conn is not None else self.db.tx() as conn:
            if replace:
                conn.execute(delete(feedback).where(match, F.via == via, F.target != "answer"))
            if helpful is not None:  # the answer's latest verdict stands, not both
                conn.execute(delete(feedback).where(match, F.target == "answer",
                                                    F.signal == ("not_helpful" if helpful else "helpful")))
            for r in rows:
                r["new"] = self.db.insert_ignore(conn, feedback, {**key, **r, "via": via, "snapshot": shown.snapshot,
                                                                  "reported_at": now}) > 0
        return rows

    def signals(self, tenant: str, request_id: str | None = None) -> list[dict]:
        """The tenant's stored signals (of one answer), oldest first."""
        stmt = select(feedback).where(F.tenant == tenant)
        if request_id is not None:
            stmt = stmt.where(F.request_id == request_id)
        return [dict(r) for r in self.db.all(stmt.order_by(F.reported_at, F.target, F.signal))]

    def _purge_now_and_then(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._purged_at < PURGE_EVERY_S:
                return
            self._purged_at = now
        self.purge(now)

    def purge(self, now: float) -> None:
        """Drop answers past twice the longer window that got no signal, and everything past the retention."""
        signalled = exists().where(F.tenant == A.tenant, F.request_id == A.request_id, F.reporter == A.reporter)
        with self.db.tx() as conn:
            conn.execute(delete(feedback).where(F.reported_at < now - self.retention_s))
            conn.execute(delete(answers).where(A.answered_at < now - self.retention_s))
            conn.execute(delete(answers).where(A.answered_at < now - self.keep_s, ~signalled))
