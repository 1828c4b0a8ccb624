"""Usage reports: which parts of an answer the answer a model wrote from it used (README, "MCP: agents call snapdex
as a tool").

Every /retrieve answer (MCP's `search` and `get_context` are /retrieve answers) is remembered in the catalog under
its tenant, its request id and whom it was for: the key and the principal the read ran as (eval/answers.py, the
store feedback uses too). A report (MCP's `report_usage`, POST /usage) names a request id, within
SNAPDEX_USAGE_WINDOW_S, and what was cited; it finds the answer only under the reporter's own key and principal, and
takes only what that answer held (its citation labels, chunk ids and document ids). So nobody reports on an answer
they were not given, or claims a document it did not show them. Reports go to the catalog (`usage_reports`,
migration 0010), one per answer and reporter: a new one replaces the last; what they cite is recorded as `cited`
signals in `feedback` too (a new report replacing the last one's), with the answer's `helpful`.
"""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import select

from db.engine import Database
from db.tables import usage_reports
from eval.answers import AnswerStore, Refused, Shown, reporter

__all__ = ["AnswerStore", "Shown", "UsageLog", "UsageRefused", "reporter"]

log = logging.getLogger(__name__)
U = usage_reports.c
UsageRefused = Refused


class UsageLog:
    def __init__(self, db: Database, answers: AnswerStore) -> None:
        self.db, self.answers = db, answers

    def report(self, tenant: str, request_id: str, reporter: list, refs: list[str], helpful: bool | None) -> dict:
        """Record which parts of the answer `request_id` were used; UsageRefused when the reporter was not given
        that answer (in the window) or it held no such part."""
        recalled = self.answers.recall(tenant, request_id, reporter, "usage")
        shown = recalled.shown
        cited = shown.resolve(request_id, refs)
        # The same citations as feedback signals: the chunks a reference covers, or the document when it covers none
        # (a passage whose hits fell outside it).
        signals = [("chunk", c, "cited") for ref in cited for c in ref["chunk_ids"]] + \
            [("doc", ref["doc_id"], "cited") for ref in cited if not ref["chunk_ids"]]
        key = {"tenant": tenant, "request_id": request_id, "reporter": json.dumps(reporter)}
        with self.db.tx() as conn:
            replaced = self.db.first(select(U.tenant).where(*(U[k] == v for k, v in key.items())), conn) is not None
            self.db.replace(conn, usage_reports, {**key, "snapshot": shown.snapshot, "cited": json.dumps(cited),
                                                  "helpful": helpful, "answered_at": recalled.answered_at,
                                                  "reported_at": time.time()})
            self.answers.record(tenant, request_id, reporter, shown, signals, helpful, via="usage", replace=True,
                                conn=conn)
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
