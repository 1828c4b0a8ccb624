"""Feedback on /retrieve answers (README, "Feedback"), and the labelled queries it becomes.

POST /feedback names an answer by its request id (within SNAPDEX_FEEDBACK_WINDOW_S) and reports signals on the
chunks or documents it held (cited, clicked, helpful, not_helpful) and whether the answer as a whole helped. The
answers and the signals are eval/answers.py's store, which usage reports share.

Production labels: a document becomes relevant to a query when the signals crediting it, over every answer to that
query since a time, reach `min_signals`: one per answer, reporter and signal on the document or one of its chunks
(cited, clicked, helpful count +1, not_helpful -1), an answer its reader called not helpful crediting nothing. The
query and its relevant documents are a labelled query, which the offline gate and self-tuning read as any other.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import and_, select

from db.tables import answers, feedback
from eval.answers import AnswerStore
from eval.store import LabelledQuery

log = logging.getLogger(__name__)
A, F = answers.c, feedback.c
POSITIVE = {"cited": 1, "clicked": 1, "helpful": 1, "not_helpful": -1}


@dataclass(frozen=True)
class Labels:
    queries: list[LabelledQuery]
    answers: int  # answers with query text and signals looked at
    signals: int  # signals on chunks and documents among them


class FeedbackLog:
    def __init__(self, store: AnswerStore, decide: Callable[[str, str], object] | None = None) -> None:
        self.store = store
        # Called with (tenant, rollout id) after new signals on an answer a rollout gave: its decision is taken
        # as feedback arrives (index_snapshots/rollouts.py).
        self.decide = decide

    def record(self, tenant: str, request_id: str, who: list, signals: list[tuple[str, str, str]],
               helpful: bool | None) -> dict:
        recalled = self.store.recall(tenant, request_id, who, "feedback")
        rows = self.store.record(tenant, request_id, who, recalled.shown, signals, helpful, via="feedback")
        new = sum(r["new"] for r in rows)
        # The query is not logged, nor the ids reported: counts only.
        log.info("feedback", extra={"tenant": tenant, "answer": request_id, "snapshot": recalled.shown.snapshot,
                                    "signals": len(rows), "new": new, "helpful": helpful})
        if new and recalled.rollout and self.decide is not None:
            try:
                self.decide(tenant, recalled.rollout)
            except Exception:  # the feedback is stored; the next report on the rollout decides again
                log.exception("rollout %s: no decision after feedback on %s", recalled.rollout, request_id)
        return {"request_id": request_id, "snapshot": recalled.shown.snapshot, "helpful": helpful, "recorded": new,
                "duplicates": len(rows) - new,
                "signals": [{k: r[k] for k in ("chunk_id", "doc_id", "signal", "position", "new")}
                            for r in rows if r["target"] != "answer"]}

    def labels(self, tenant: str, min_signals: int, since: float, limit: int) -> Labels:
        """The labelled queries the tenant's feedback since `since` makes (at most `limit`, those with the most
        signals first)."""
        join = answers.join(feedback, and_(F.tenant == A.tenant, F.request_id == A.request_id,
                                           F.reporter == A.reporter))
        rows = self.store.db.all(select(A.request_id, A.reporter, A.query, F.target, F.signal, F.doc_id)
                                 .select_from(join)
                                 .where(A.tenant == tenant, A.answered_at >= since, A.query.is_not(None)))
        unhelpful = {(r["request_id"], r["reporter"]) for r in rows
                     if r["target"] == "answer" and r["signal"] == "not_helpful"}
        scores: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        texts: dict[str, str] = {}
        credited: set[tuple] = set()
        looked, counted = set(), 0
        for r in rows:
            answer = (r["request_id"], r["reporter"])
            looked.add(answer)
            if r["target"] == "answer" or r["doc_id"] is None:
                continue
            counted += 1
            if answer in unhelpful and POSITIVE[r["signal"]] > 0:
                continue
            # A document cited in two of its chunks in one answer is one signal, not two.
            once = (answer, r["doc_id"], r["signal"])
            if once in credited:
                continue
            credited.add(once)
            key = " ".join(r["query"].split()).casefold()
            texts.setdefault(key, r["query"])
            scores[key][r["doc_id"]] += POSITIVE[r["signal"]]
        queries = []
        for key, docs in scores.items():
            relevant = {d: 1 for d, n in docs.items() if n >= min_signals}
            if relevant:
                qid = "fb-" + hashlib.sha256(key.encode()).hexdigest()[:16]
                queries.append((sum(docs[d] for d in relevant), LabelledQuery(qid, texts[key], relevant)))
        queries.sort(key=lambda x: (-x[0], x[1].id))
        return Labels([q for _, q in queries[:limit]], len(looked), counted)
