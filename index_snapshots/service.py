"""Jobs and snapshots over time: ingest, then (debounced) build, promote, retain; manual promote and rollback."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from db.locks import Locks, LockTimeout
from eval.store import Verdict
from index_snapshots.access import AccessSync
from index_snapshots.builder import BuildResult, SnapshotBuilder
from index_snapshots.evaluation import SnapshotEvaluator
from index_snapshots.manifest import Manifest, SnapshotRow
from index_snapshots.rollouts import Plan, Rollouts
from index_snapshots.status import DROPPABLE, SnapshotStatus
from ingest.jobs import JobStore, JobView
from ingest.phases import BUILD_PHASES, JobPhase, JobStatus
from ingest.pipeline import Ingestor, Yielded
from store.base import VectorStore

log = logging.getLogger(__name__)


def build_lock(tenant: str) -> str:
    """The lock one build of a tenant holds across every process sharing the catalog."""
    return f"build:{tenant}"


def _left_to_do(view: JobView | None, job_id: str) -> str | None:
    """What a job's message still has to do: ingest, only trigger the build (a redelivered message of a job whose
    documents are all in), or nothing (None: settled)."""
    if view is None:
        raise KeyError(f"job {job_id} does not exist")
    if view.settled:
        return None
    return "build" if view.phase in BUILD_PHASES else "ingest"


class Requeue(Exception):
    """The job went back to the queue unsettled, with documents left: the caller enqueues it again, and it resumes
    where it stopped."""


def run_ingest_job(ingestor: Ingestor, jobs: JobStore, job_id: str,
                   transient: tuple[type[BaseException], ...] = (), lease_s: float = 30.0,
                   access: AccessSync | None = None, interrupts: tuple[type[BaseException], ...] = ()) -> str | None:
    """Ingest a job's documents under the job's claim (JobBusy while another live worker ingests it). Returns the
    tenant whose snapshot now needs a build, or None when the job was settled already (a redelivered message)
    or failed. `access`: a document sent again with another access list has it written into the built snapshots
    that hold its earlier version before the job moves on (a crash before that ingests the job again, which
    writes it then). Raises Requeue when the job gave its worker up after a document passed a parse limit
    (`Yielded`), or when one of `interrupts` (Celery's soft time limit) cut the run short."""
    view = jobs.get(job_id)
    todo = _left_to_do(view, job_id)
    if todo != "ingest":
        return view.tenant if todo else None
    with jobs.claimed(job_id, lease_s):
        view = jobs.get(job_id)  # again, under the claim: another worker may have finished it meanwhile
        todo = _left_to_do(view, job_id)
        if todo != "ingest":
            return view.tenant if todo else None
        try:
            ingestor.run(job_id, interrupts)
            if access is not None:
                access.apply(view.tenant, jobs.doc_ids(job_id), always_bump=False)
            jobs.set_phase(job_id, JobPhase.AWAITING_BUILD)
            return view.tenant
        except transient:
            raise
        except (Yielded, *interrupts) as e:
            jobs.requeue(job_id)
            raise Requeue(job_id) from e
        except Exception as e:
            log.exception("job %s failed", job_id)
            jobs.finish(job_id, JobStatus.FAILED, error=f"{type(e).__name__}: {e}")
            return None


@dataclass
class SnapshotService:
    builder: SnapshotBuilder
    manifest: Manifest
    jobs: JobStore
    store: VectorStore
    evaluator: SnapshotEvaluator
    locks: Locks
    keep_extra: int = 3  # besides the live and the previous live snapshot
    pin_grace_s: float = 300.0
    rollouts: Rollouts | None = None  # retention keeps a running rollout's candidate
    # SNAPDEX_ROLLOUT_AFTER_GATE: the rollout a snapshot that passed the gate starts instead of going live at once
    after_gate: Callable[[str], Plan] | None = None

    def build_pending(self, tenant: str, transient: tuple[type[BaseException], ...] = ()) -> BuildResult | None:
        """The debounced trigger after ingest jobs: build once no job of the tenant is still ingesting,
        then settle every job that was waiting for it."""
        if self.jobs.ingesting(tenant):
            return None  # the last of those jobs triggers the build that covers them all
        return self.rebuild(tenant, transient)

    def rebuild(self, tenant: str, transient: tuple[type[BaseException], ...] = ()) -> BuildResult:
        # Build, gate, promotion and retention run under the tenant's lock, held across hosts: one verdict at a
        # time decides what is live, and nothing deletes a snapshot another build is judging.
        with self.locks.hold(build_lock(tenant)):
            return self._rebuild(tenant, transient)

    def abandon_interrupted(self) -> list[str]:
        """After a crash: builds left 'building' whose tenant lock nobody holds died with their process; they are
        marked failed and their half-built collections dropped. A build another live process runs is left alone."""
        failed = []
        for snap in self.manifest.unfinished():
            try:
                with self.locks.hold(build_lock(snap.tenant), timeout=0):
                    now = self.manifest.get(snap.tenant, snap.hash)
                    if now is None or now.status != SnapshotStatus.BUILDING:
                        continue
                    self.store.delete_collection(snap.collection)
                    self.manifest.fail(snap.tenant, snap.hash, "interrupted: the service stopped during the build")
                    failed.append(snap.hash)
            except LockTimeout:
                log.info("snapshot %s of %s is being built by another process", snap.hash[:12], snap.tenant)
        return failed

    def _rebuild(self, tenant: str, transient: tuple[type[BaseException], ...]) -> BuildResult:
        waiting = self.jobs.awaiting_build(tenant)
        for job_id in waiting:
            self.jobs.set_phase(job_id, JobPhase.BUILDING)
        try:
            result = self.builder.build(tenant)
        except transient:
            # The task retries the build: its jobs wait for it again instead of failing.
            for job_id in waiting:
                self.jobs.set_phase(job_id, JobPhase.AWAITING_BUILD)
            raise
        except Exception as e:
            for job_id in waiting:
                self.jobs.finish(job_id, JobStatus.FAILED, error=f"snapshot build failed: {type(e).__name__}: {e}")
            raise
        # Documents the store could not hold (a NaN in their metadata, say) are not in the snapshot: their jobs
        # say so, and the rest of the build stands.
        self.jobs.fail_documents(waiting, result.refused)
        try:
            self._settle(tenant, result, waiting, transient)
        except transient:
            for job_id in waiting:
                self.jobs.set_phase(job_id, JobPhase.AWAITING_BUILD)
            raise
        for job_id in waiting:
            self.jobs.finish(job_id, JobStatus.SUCCEEDED, snapshot=result.hash)
        self._retain(tenant)
        return result

    def _settle(self, tenant: str, result: BuildResult, waiting: list[str],
                transient: tuple[type[BaseException], ...] = ()) -> Verdict | None:
        """Gate a built snapshot: live if it passes, otherwise held as a candidate with the reasons."""
        live = self.manifest.live(tenant)
        if live is not None and live.hash == result.hash:
            return None
        earlier = self.evaluator.verdict(tenant, result.hash)
        if not result.built and earlier is not None and earlier.judged:
            # The documents are back to a snapshot built before (a delete undid an add, a forced rebuild): a
            # hold stands, and so does an operator's rollback away from it. Anything else is judged against
            # today's live snapshot; its runs are reused, so that costs no queries.
            if not earlier.passed or self.manifest.rolled_back_from(tenant, result.hash):
                return earlier
        for job_id in waiting:
            self.jobs.set_phase(job_id, JobPhase.EVALUATING, snapshot=result.hash)
        try:
            verdict = self.evaluator.gate(tenant, result.hash)
        except transient:
            raise
        except Exception as e:
            # An evaluation that cannot run cannot vouch for the snapshot: it is held, never promoted blind.
            log.exception("evaluation of snapshot %s of %s failed", result.hash[:12], tenant)
            verdict = self.evaluator.store.put_verdict(tenant, result.hash, Verdict(
                False, [f"evaluation failed: {type(e).__name__}: {e}"], [], [], live.hash if live else None))
        if verdict.passed and self.after_gate is not None and self.rollouts is not None and live is not None:
            # Live traffic judges it before it takes all of it; a rollout still running for an older candidate
            # gives way to this newer one.
            self.rollouts.interrupt(tenant, f"superseded by snapshot {result.hash}, which passed the gate after it",
                                    unless=result.hash)
            self.rollouts.start(tenant, self.after_gate(result.hash), "gate")
        elif verdict.passed:
            self.manifest.promote(tenant, result.hash)
            self._switched(tenant, result.hash, "promoted by the gate")
        else:
            self.manifest.hold(tenant, result.hash, "held by the gate: " + "; ".join(verdict.reasons),
                               {"passed": verdict.passed, "reasons": verdict.reasons, "checks": verdict.checks,
                                "baseline": verdict.baseline})
            log.warning("snapshot %s of %s held: %s", result.hash[:12], tenant, "; ".join(verdict.reasons))
        return verdict

    def promote(self, tenant: str, snap_hash: str, by: str | None = None, action: str = "manual") -> str | None:
        """By hand (`by`: who), or at the end of a rollout (`action` "rollout"). A snapshot the gate held goes live
        as a recorded override."""
        verdict = self.evaluator.verdict(tenant, snap_hash)
        overriding = verdict is not None and not verdict.passed
        previous = self.manifest.promote(tenant, snap_hash, action="override" if overriding else action, by=by)
        if overriding:
            self.evaluator.store.record_override(tenant, snap_hash)
        if action != "rollout" and previous != snap_hash:
            self._switched(tenant, snap_hash, f"promoted by {by or 'hand'}")
        self.evaluator.check_recall(tenant)
        return previous

    def rollback(self, tenant: str, by: str | None = None) -> tuple[str, str]:
        switched = self.manifest.rollback(tenant, by=by)
        self._switched(tenant, switched[1], f"made live again by a rollback ({by or 'by hand'})")
        self.evaluator.check_recall(tenant)
        return switched

    def _switched(self, tenant: str, live: str, how: str) -> None:
        """The live snapshot changed outside a running rollout: what it compared against is gone, so it stops."""
        if self.rollouts is not None:
            self.rollouts.interrupt(tenant, f"the live snapshot changed while it ran: {live} was {how}")

    def retain(self, tenant: str, now: float | None = None) -> list[str]:
        """Delete snapshots beyond the live one, the previous live one and the newest `keep_extra` others;
        never one that is building or that a pinned request read within the grace period. Under the tenant's
        build lock (every build ends with it)."""
        with self.locks.hold(build_lock(tenant)):
            return self._retain(tenant, now)

    def _retain(self, tenant: str, now: float | None = None) -> list[str]:
        now = now or time.time()
        live = self.manifest.live(tenant)
        protected = {live.hash if live else None, self.manifest.previous(tenant),
                     *(self.rollouts.candidates(tenant) if self.rollouts else ())}
        others: list[SnapshotRow] = [
            s for s in reversed(self.manifest.list(tenant))  # newest first
            if s.hash not in protected and s.status in DROPPABLE
        ]
        deleted = []
        for snap in others[self.keep_extra:]:
            if snap.last_read_at and now - snap.last_read_at < self.pin_grace_s:
                continue
            self.store.delete_collection(snap.collection)
            self.manifest.mark_deleted(tenant, snap.hash, "retention")
            deleted.append(snap.hash)
        return deleted
