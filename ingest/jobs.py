"""Ingest jobs: the staged documents of each request, their per-document outcome, and progress.

The API stages the documents here and enqueues only the job id; a worker reads them back. Per-document
outcomes are written in the same transaction as the catalog change they describe, so a redelivered task
skips exactly the documents that were done. The worker ingesting a job holds a claim on it (a lease it renews,
taken with SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL), so a message delivered twice is ingested once.
Phases move only as `ingest/phases.py` allows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Sequence

from sqlalchemy import Connection, and_, bindparam, case, func, or_, select, update

from db.engine import Database
from db.locks import Renewer, holder_gone, holder_id
from db.tables import documents, job_documents, jobs
from notify import emit
from ingest.phases import BUILD_PHASES, SETTLED, InvalidTransition, JobPhase, JobStatus, check, sources_of

OUTCOMES = ("new", "updated", "unchanged", "duplicate", "near_duplicate", "failed")
MAX_EVENT_DOCUMENTS = 1000  # failed documents listed in one job.documents_failed event
PROGRESS_FIELDS = {"chunks_total", "chunks_done", "chunks_embedded", "chunks_reused", "snapshot"}
STAGE_BATCH_BYTES = 8 * 1024 * 1024  # payload bytes staged in one INSERT


class JobBusy(RuntimeError):
    """Another live worker is ingesting this job now: try again later (its claim runs out if it died)."""


@dataclass(frozen=True)
class StagedDocument:
    seq: int
    doc_id: str
    filename: str | None
    payload: bytes
    metadata: dict
    access: dict | None = None
    parse_starts: int = 0  # times its parse was started before (none of them finished)

    @property
    def is_file(self) -> bool:
        return self.filename is not None


@dataclass(frozen=True)
class NewDocument:
    doc_id: str
    payload: bytes | BinaryIO  # a file (an upload's spooled part) is read only when it is staged
    metadata: dict = field(default_factory=dict)
    filename: str | None = None
    access: dict | None = None  # normalised (ingest/access.py); None: the whole tenant


@dataclass
class JobView:
    id: str
    tenant: str
    status: JobStatus
    phase: JobPhase | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    docs_total: int
    docs_done: int
    chunks_total: int
    chunks_done: int
    chunks_embedded: int
    chunks_reused: int
    attempts: int
    snapshot: str | None
    error: str | None
    counts: dict[str, int]
    failures: list[dict]

    @property
    def settled(self) -> bool:
        return self.status in SETTLED


_j = job_documents.c
# Built once: one of these runs per document or per batch of chunks.
_MARK = (update(job_documents).where(_j.job_id == bindparam("job"), _j.seq == bindparam("s"))
         .values(done=True, outcome=bindparam("o"), reason=bindparam("r"), chunks=bindparam("n")))
_PARSE_STARTED = (update(job_documents).where(_j.job_id == bindparam("job"), _j.seq == bindparam("s"))
                  .values(parse_starts=_j.parse_starts + 1))
_ADD_EMBEDDED = (update(jobs).where(jobs.c.id == bindparam("job")).values(
    chunks_done=jobs.c.chunks_done + bindparam("done"), chunks_embedded=jobs.c.chunks_embedded + bindparam("emb"),
    chunks_reused=jobs.c.chunks_reused + bindparam("reused")))
_PENDING = (select(_j.seq, _j.doc_id, _j.filename, _j.payload, _j.metadata, _j.access, _j.parse_starts)
            .where(_j.job_id == bindparam("job"), _j.done == False, _j.seq > bindparam("after"))  # noqa: E712
            .order_by(_j.seq).limit(64))


# Since when a job waits, for the oldest-job gauge: a queued job since it was last queued (a job that gave its worker
# up after a parse limit is queued again, and has not waited since its creation), any other since its creation.
_WAITING_SINCE = case((jobs.c.status == JobStatus.QUEUED, func.coalesce(jobs.c.queued_at, jobs.c.created_at)),
                      else_=jobs.c.created_at)


def _phase_in(phases) -> object:
    """SQL: the job's phase is one of `phases` (None meaning a queued job with no phase yet)."""
    named = [str(p) for p in phases if p is not None]
    cond = jobs.c.phase.in_(named)
    return or_(cond, jobs.c.phase.is_(None)) if None in phases else cond


def sent_at(db: Database, tenant: str, doc_ids: Sequence[str]) -> dict[str, float]:
    """When each document was last sent with something to write (the creation time of the last job that wrote it:
    an "unchanged" re-send or a failure does not count). One request's documents share the time: the order it
    wrote them in (their `updated_at`) is its processing order, not which was sent later. Documents no kept job
    names are absent."""
    out: dict[str, float] = {}
    ids = sorted(set(doc_ids))
    for i in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        rows = db.all(select(job_documents.c.doc_id, func.max(jobs.c.created_at).label("at"))
                      .join(jobs, jobs.c.id == job_documents.c.job_id)
                      .where(jobs.c.tenant == tenant, job_documents.c.doc_id.in_(ids[i:i + 500]),
                             job_documents.c.outcome.notin_(("unchanged", "failed")))
                      .group_by(job_documents.c.doc_id))
        out.update({r["doc_id"]: float(r["at"]) for r in rows})
    return out


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, tenant: str, documents: Sequence[NewDocument]) -> str:
        if not documents:
            raise ValueError("a job needs at least one document")
        job_id = uuid.uuid4().hex
        with self.db.tx() as conn:
            conn.execute(jobs.insert().values(id=job_id, tenant=tenant, status=JobStatus.QUEUED,
                                              created_at=time.time(), docs_total=len(documents)))
            # A few megabytes of payload an INSERT: an upload's files are read from their spool one after another,
            # so staging holds about one file in memory, not all of a request's at once.
            rows, size = [], 0
            for i, d in enumerate(documents):
                payload = d.payload if isinstance(d.payload, bytes) else d.payload.read()
                rows.append({"job_id": job_id, "seq": i, "doc_id": d.doc_id, "filename": d.filename,
                             "payload": payload, "metadata": json.dumps(d.metadata, sort_keys=True),
                             "access": None if d.access is None else json.dumps(d.access, sort_keys=True)})
                size += len(payload)
                if size >= STAGE_BATCH_BYTES or i == len(documents) - 1:
                    conn.execute(job_documents.insert(), rows)
                    rows, size = [], 0
        return job_id

    def append(self, conn: Connection, job_id: str, documents: Sequence[NewDocument]) -> None:
        """More documents for a running job (a mail's attachments), after its last: `pending` reaches them."""
        last = conn.execute(select(func.max(job_documents.c.seq)).where(job_documents.c.job_id == job_id)).scalar()
        conn.execute(job_documents.insert(), [
            {"job_id": job_id, "seq": (last or 0) + 1 + i, "doc_id": d.doc_id, "filename": d.filename,
             "payload": d.payload, "metadata": json.dumps(d.metadata, sort_keys=True)}
            for i, d in enumerate(documents)])
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(docs_total=jobs.c.docs_total + len(documents)))

    def discard(self, job_id: str) -> None:
        """Forget a job that was never queued (the broker refused it): the caller was told to send it again, and a
        job left 'queued' would hold back every later build of its tenant (builds wait for queued jobs)."""
        with self.db.tx() as conn:
            conn.execute(job_documents.delete().where(job_documents.c.job_id == job_id))
            conn.execute(jobs.delete().where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED))

    def tenant_of(self, job_id: str) -> str | None:
        return self.db.scalar(select(jobs.c.tenant).where(jobs.c.id == job_id))

    # --- claims: one worker ingests a job at a time ------------------------------------------------

    def claim(self, job_id: str, holder: str, lease_s: float) -> bool:
        """Take the job for `holder` for `lease_s` seconds; False while another live holder has it. KeyError when
        there is no such job."""
        with self.db.tx() as conn:
            row = conn.execute(
                select(jobs.c.claimed_by, jobs.c.claim_expires_at, self.db.now().label("now"))
                .where(jobs.c.id == job_id).with_for_update(skip_locked=True)  # PostgreSQL: a claimer in the middle
            ).first()                                                          # of taking it is skipped, not awaited
            if row is None:
                if self.tenant_of(job_id) is None:
                    raise KeyError(f"job {job_id} does not exist")
                return False  # being claimed this instant by someone else
            if (row.claimed_by not in (None, holder) and row.claim_expires_at is not None
                    and row.claim_expires_at > row.now and not holder_gone(row.claimed_by)):
                return False
            conn.execute(update(jobs).where(jobs.c.id == job_id)
                         .values(claimed_by=holder, claim_expires_at=self.db.now() + lease_s))
        return True

    def renew_claim(self, job_id: str, holder: str, lease_s: float) -> bool:
        with self.db.tx() as conn:
            return conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.claimed_by == holder)
                                .values(claim_expires_at=self.db.now() + lease_s)).rowcount == 1

    def release_claim(self, job_id: str, holder: str) -> None:
        with self.db.tx() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.claimed_by == holder)
                         .values(claimed_by=None, claim_expires_at=None))

    @contextmanager
    def claimed(self, job_id: str, lease_s: float = 30.0) -> Iterator[str]:
        """Hold the job's claim for the block, renewed in the background; JobBusy if a live worker holds it."""
        holder = holder_id()
        if not self.claim(job_id, holder, lease_s):
            raise JobBusy(f"job {job_id} is being ingested by another worker")
        renewer = Renewer(lease_s / 3, lambda: self.renew_claim(job_id, holder, lease_s), f"job {job_id}")
        try:
            yield holder
        finally:
            renewer.stop()
            self.release_claim(job_id, holder)

    # --- phases --------------------------------------------------------------------------------------

    def _move(self, conn: Connection, job_id: str, phase: JobPhase, values: dict,
              statuses: Sequence[JobStatus] | None = None) -> None:
        """Set the phase (and `values`) if the job's current phase may go there; InvalidTransition otherwise."""
        cond = [jobs.c.id == job_id, _phase_in(sources_of(phase))]
        if statuses is not None:
            cond.append(jobs.c.status.in_([str(s) for s in statuses]))
        if conn.execute(update(jobs).where(*cond).values(phase=phase, **values)).rowcount == 1:
            return
        row = conn.execute(select(jobs.c.phase, jobs.c.status).where(jobs.c.id == job_id)).first()
        if row is None:
            raise KeyError(f"job {job_id} does not exist")
        check(row.phase, phase)  # raises with the allowed steps
        raise InvalidTransition(f"job {job_id} is {row.status}: it cannot go to {phase}")

    def start(self, job_id: str) -> None:
        with self.db.tx() as conn:
            self._move(conn, job_id, JobPhase.PARSING,
                       {"status": JobStatus.RUNNING, "attempts": jobs.c.attempts + 1,
                        "started_at": func.coalesce(jobs.c.started_at, time.time())},
                       statuses=(JobStatus.QUEUED, JobStatus.RUNNING))

    def set_phase(self, job_id: str, phase: JobPhase, **fields: int | str | None) -> None:
        bad = set(fields) - PROGRESS_FIELDS
        if bad:
            raise ValueError(f"unknown job fields {sorted(bad)}; allowed: {sorted(PROGRESS_FIELDS)}")
        if phase == JobPhase.DONE:
            raise InvalidTransition("a job is done when it settles: use finish()")
        with self.db.tx() as conn:
            self._move(conn, job_id, JobPhase(phase), fields, statuses=(JobStatus.RUNNING,))

    def add_embedded(self, job_id: str, done: int, embedded: int) -> None:
        with self.db.tx() as conn:
            conn.execute(_ADD_EMBEDDED, {"job": job_id, "done": done, "emb": embedded, "reused": done - embedded})

    def finish(self, job_id: str, status: JobStatus, error: str | None = None, snapshot: str | None = None) -> None:
        status = JobStatus(status)
        if status not in SETTLED:
            raise ValueError(f"finish status {status!r} must be 'succeeded' or 'failed'")
        values: dict = {"status": status, "finished_at": time.time(), "error": error}
        if snapshot is not None:
            values["snapshot"] = snapshot
        with self.db.tx() as conn:
            self._move(conn, job_id, JobPhase.DONE, values, statuses=(JobStatus.QUEUED, JobStatus.RUNNING))
            # The staged bytes are no longer needed; outcomes and reasons stay.
            conn.execute(update(job_documents).where(job_documents.c.job_id == job_id).values(payload=None))
            self._settled_events(conn, job_id, status, error, snapshot)

    def _settled_events(self, conn: Connection, job_id: str, status: JobStatus, error: str | None,
                        snapshot: str | None) -> None:
        """The webhooks' events of a settled job, in the transaction that settles it (the outbox): job.failed, and
        one job.documents_failed listing every failed document with its reason, not one event per document."""
        row = conn.execute(select(jobs.c.tenant, jobs.c.docs_total).where(jobs.c.id == job_id)).first()
        if status == JobStatus.FAILED:
            emit(self.db, conn, row.tenant, "job.failed", {"job_id": job_id, "error": error,
                                                           "documents": row.docs_total}, dedupe=job_id)
        d = job_documents.c
        where = (d.job_id == job_id, d.outcome == "failed")
        count = conn.execute(select(func.count()).where(*where)).scalar()
        if count:
            # The first MAX_EVENT_DOCUMENTS by position; GET /jobs/{id} lists them all.
            listed = [{"doc_id": r.doc_id, "filename": r.filename, "reason": r.reason} for r in conn.execute(
                select(d.doc_id, d.filename, d.reason).where(*where).order_by(d.seq).limit(MAX_EVENT_DOCUMENTS))]
            emit(self.db, conn, row.tenant, "job.documents_failed", {
                "job_id": job_id, "status": str(status), "snapshot": snapshot, "failed": count,
                "documents_total": row.docs_total, "documents": listed, "truncated": count > len(listed)},
                 dedupe=job_id)

    # --- documents of a job ------------------------------------------------------------------------

    def pending(self, job_id: str) -> Iterator[StagedDocument]:
        # Read in pages: a job may hold thousands of documents and megabytes of files.
        last = -1
        while True:
            rows = self.db.all(_PENDING, job=job_id, after=last)
            if not rows:
                return
            for r in rows:
                last = r["seq"]
                yield StagedDocument(r["seq"], r["doc_id"], r["filename"], bytes(r["payload"] or b""),
                                     json.loads(r["metadata"]), json.loads(r["access"]) if r["access"] else None,
                                     r["parse_starts"])

    def doc_ids(self, job_id: str) -> list[str]:
        rows = self.db.all(select(job_documents.c.doc_id).where(job_documents.c.job_id == job_id))
        return sorted({r["doc_id"] for r in rows})

    def parse_started(self, job_id: str, seq: int) -> None:
        """Count a start of the document's parse, committed while the parse runs: a process killed in it (or by
        it) leaves the count behind, and the next start of the job sees it."""
        with self.db.tx() as conn:
            conn.execute(_PARSE_STARTED, {"job": job_id, "s": seq})

    def requeue(self, job_id: str) -> None:
        """A job that gave its worker up with documents left to ingest is queued again, unsettled: its phase and
        progress stay, and its next run resumes where this one stopped."""
        with self.db.tx() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING,
                                            _phase_in([JobPhase.PARSING, JobPhase.EMBEDDING]))
                         .values(status=JobStatus.QUEUED, queued_at=time.time()))

    def mark_document(self, conn: Connection, job_id: str, seq: int, outcome: str,
                      reason: str | None = None, chunks: int = 0) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
        conn.execute(_MARK, {"job": job_id, "s": seq, "o": outcome, "r": reason, "n": chunks})

    def fail_documents(self, job_ids: Sequence[str], reasons: dict[str, str]) -> None:
        """Documents a build left out (the vector store cannot hold their payload) fail,
        with their reasons, in the jobs that sent them and wait for that build: before the jobs settle, so their
        `failures` and their job.documents_failed event name them."""
        if not job_ids or not reasons:
            return
        with self.db.tx() as conn:
            for doc_id, reason in sorted(reasons.items()):
                conn.execute(update(job_documents).where(
                    job_documents.c.job_id.in_(list(job_ids)), job_documents.c.doc_id == doc_id,
                    job_documents.c.outcome != "failed").values(outcome="failed", reason=reason, chunks=0))

    # --- what waits for what -----------------------------------------------------------------------

    def ingesting(self, tenant: str) -> bool:
        """Whether a job of the tenant is still queued or ingesting (a build now would soon be stale).
        Jobs waiting for or inside a build are not: a job that finishes ingesting during someone else's build
        must get a build of its own (it waits for the tenant's build lock)."""
        running_ingest = and_(jobs.c.status == JobStatus.RUNNING,
                              or_(jobs.c.phase.is_(None), jobs.c.phase.not_in([str(p) for p in BUILD_PHASES])))
        return self.db.scalar(select(jobs.c.id).where(
            jobs.c.tenant == tenant, or_(jobs.c.status == JobStatus.QUEUED, running_ingest)).limit(1)) is not None

    def build_delay(self, tenant: str, debounce_s: float, now: float | None = None) -> float:
        """How long a job of the tenant that finished ingesting waits before asking for the build: the debounce
        counts from the tenant's newest job's arrival, not from this job's end. Jobs sent together (a folder, a
        corpus in batches) are built as soon as the last one is in; a job that comes within the debounce of
        another still shares its build."""
        newest = self.db.scalar(select(func.max(jobs.c.created_at)).where(jobs.c.tenant == tenant))
        if newest is None:
            return debounce_s
        now = time.time() if now is None else now
        return min(debounce_s, max(0.0, debounce_s - (now - newest)))

    def awaiting_build(self, tenant: str) -> list[str]:
        """Jobs whose documents are in and whose build has not settled them. Called under the tenant's build
        lock, so a job still marked building or evaluating lost its build to a crash: it is taken up again."""
        rows = self.db.all(select(jobs.c.id).where(jobs.c.tenant == tenant, jobs.c.status == JobStatus.RUNNING,
                                                   _phase_in(BUILD_PHASES)).order_by(jobs.c.created_at))
        return [r["id"] for r in rows]

    def unsettled(self, unclaimed: bool = False) -> list[str]:
        """Jobs queued or running: after a crash of an embedded service these are enqueued again. `unclaimed`:
        only those no live worker is ingesting now (another process sharing the catalog may be)."""
        stmt = select(jobs.c.id, jobs.c.claimed_by, jobs.c.claim_expires_at, self.db.now().label("now")).where(
            jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])).order_by(jobs.c.created_at)
        rows = self.db.all(stmt)
        if unclaimed:
            rows = [r for r in rows if r["claimed_by"] is None or (r["claim_expires_at"] or 0) <= r["now"]
                    or holder_gone(r["claimed_by"])]
        return [r["id"] for r in rows]

    # --- reading -------------------------------------------------------------------------------------

    def stats(self) -> dict[str, dict]:
        """Per tenant: jobs by status, chunks embedded and reused, documents that failed (for monitoring)."""
        out: dict[str, dict] = defaultdict(lambda: {"jobs": {}, "embedded": 0, "reused": 0, "failed_documents": 0,
                                                    "oldest": {}})
        with self.db.read() as conn:
            for r in conn.execute(select(jobs.c.tenant, jobs.c.status, func.count().label("n"),
                                         func.sum(jobs.c.chunks_embedded).label("embedded"),
                                         func.sum(jobs.c.chunks_reused).label("reused"),
                                         func.min(_WAITING_SINCE).label("oldest"))
                                  .group_by(jobs.c.tenant, jobs.c.status)).mappings():
                t = out[r["tenant"]]
                t["jobs"][r["status"]] = r["n"]
                t["oldest"][r["status"]] = r["oldest"]  # since when the oldest job in this status waits (_WAITING_SINCE)
                t["embedded"] += r["embedded"] or 0
                t["reused"] += r["reused"] or 0
            for r in conn.execute(select(jobs.c.tenant, func.count().label("n"))
                                  .select_from(job_documents.join(jobs, jobs.c.id == job_documents.c.job_id))
                                  .where(job_documents.c.outcome == "failed").group_by(jobs.c.tenant)).mappings():
                out[r["tenant"]]["failed_documents"] = r["n"]
        return dict(out)

    def get(self, job_id: str, max_failures: int = 100) -> JobView | None:
        d = job_documents.c
        with self.db.read() as conn:
            r = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if r is None:
                return None
            counts = {o: 0 for o in OUTCOMES}
            done = 0
            for row in conn.execute(select(d.outcome, func.count().label("n"))
                                    .where(d.job_id == job_id, d.done == True).group_by(d.outcome)):  # noqa: E712
                counts[row.outcome] = row.n
                done += row.n
            failures = [
                {"doc_id": f.doc_id, "filename": f.filename, "reason": f.reason}
                for f in conn.execute(select(d.doc_id, d.filename, d.reason)
                                      .where(d.job_id == job_id, d.outcome == "failed")
                                      .order_by(d.seq).limit(max_failures))
            ]
        return JobView(
            id=r["id"], tenant=r["tenant"], status=JobStatus(r["status"]),
            phase=JobPhase(r["phase"]) if r["phase"] else None, created_at=r["created_at"],
            started_at=r["started_at"], finished_at=r["finished_at"], docs_total=r["docs_total"], docs_done=done,
            chunks_total=r["chunks_total"], chunks_done=r["chunks_done"], chunks_embedded=r["chunks_embedded"],
            chunks_reused=r["chunks_reused"], attempts=r["attempts"], snapshot=r["snapshot"], error=r["error"],
            counts=counts, failures=failures,
        )

    def chunk_titles(self, job_id: str) -> dict[str, str | None]:
        """Every distinct chunk the job's documents point at (the ones to embed or find in the cache), with the
        title of the first of them: sentence windows are prefixed with it."""
        tenant = self.tenant_of(job_id)
        if tenant is None:
            return {}
        j = job_documents.c
        stmt = (select(documents.c.chunk_hashes, documents.c.title)
                .select_from(job_documents.join(documents, and_(documents.c.tenant == tenant,
                                                                documents.c.doc_id == j.doc_id)))
                .where(j.job_id == job_id, j.outcome.in_(["new", "updated"])).order_by(j.seq))
        seen: dict[str, str | None] = {}
        with self.db.read() as conn:
            for row in conn.execute(stmt):
                for h in json.loads(row.chunk_hashes):
                    seen.setdefault(h, row.title)
        return seen
