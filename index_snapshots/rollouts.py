"""Rollouts (README, "Rollouts"): a candidate snapshot earns its place on live traffic before it takes all of it.

A rollout answers a share of /retrieve requests (its current step's share of `steps`) with the candidate: in
`canary` mode a sticky share of sessions is answered by the candidate alone (the others by the live snapshot, as the
control arm); in `interleave` mode the live and the candidate rankings are merged by team-draft interleaving into one
answer, each hit naming the arm that put it there. The answers name the rollout (answers.rollout) and each hit's arm
(Shown.arms), so the signals POST /feedback stores on them are credited to an arm.

Decisions are taken after feedback arrives (POST /feedback calls `consider` for the rollout the answer belonged to,
in the request that reported it): each arm's figures are computed from the catalog, and once the step has
`min_feedback` new feedback events, the always-valid sequential test of online/sequential.py says continue,
advance (the next step; promotion, through SnapshotService.promote, at the last) or stop (the live snapshot keeps
serving). A decision is one conditional UPDATE of the rollout's row with its webhook event in the same transaction,
so two replicas deciding at once take it once. Everything lives in the catalog: a restarted service goes on where
the rollout was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
import random
from dataclasses import dataclass, replace
from typing import Callable

from cachetools import TTLCache
from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError

from db.engine import Database
from db.tables import answers, feedback, rollouts
from errors import Conflict, InvalidInput, NotFound
from index_snapshots.manifest import Manifest
from index_snapshots.querying import Answer, SnapshotSearcher
from index_snapshots.resolve import READABLE
from notify import emit
from online.interleave import outcome, team_draft
from online.sequential import CanaryCounts, Decision, InterleaveCounts, decide, rate_interval

log = logging.getLogger(__name__)

A, F, R = answers.c, feedback.c, rollouts.c
MODES = ("interleave", "canary")
ARMS = ("live", "candidate")
POSITIVE = ("cited", "clicked", "helpful")
# /retrieve reads the running rollout on every request: a stop or a step reaches every process within this long.
RUNNING_TTL_S = 1.0


@dataclass(frozen=True)
class Plan:
    """A rollout as asked for, checked: what POST /rollouts and SNAPDEX_ROLLOUT_AFTER_GATE start."""

    candidate: str
    mode: str
    steps: tuple[float, ...]
    min_feedback: int
    max_regression: float
    confidence: float

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"mode {self.mode!r} is not one of {', '.join(MODES)}", ("body", "mode"))
        if not 1 <= len(self.steps) <= 10:
            raise InvalidInput(f"steps has {len(self.steps)} shares; give 1 to 10", ("body", "steps"))
        for i, share in enumerate(self.steps):
            if not 0 < share <= 1:
                raise InvalidInput(f"steps[{i}]={share} is out of range (0, 1]", ("body", "steps", i))
        if any(b <= a for a, b in zip(self.steps, self.steps[1:])):
            raise InvalidInput(f"steps {list(self.steps)} must rise strictly: each step a larger share of traffic",
                               ("body", "steps"))
        if not 10 <= self.min_feedback <= 1_000_000:
            raise InvalidInput(f"min_feedback={self.min_feedback} is out of range [10, 1000000]",
                               ("body", "min_feedback"))
        if not 0 <= self.max_regression <= 0.5:
            raise InvalidInput(f"max_regression={self.max_regression} is out of range [0, 0.5]",
                               ("body", "max_regression"))
        if not 0.5 <= self.confidence <= 0.999:
            raise InvalidInput(f"confidence={self.confidence} is out of range [0.5, 0.999]", ("body", "confidence"))


def session_share(rollout_id: str, session: str) -> float:
    """Where a session falls in [0, 1): a hash of the rollout and the session, so the same session gets the same arm
    on every request, in every process and after a restart, and each rollout draws its own share."""
    digest = hashlib.sha256(f"{rollout_id}\x00{session}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


@dataclass(frozen=True)
class Running:
    """What /retrieve needs of the tenant's running rollout."""

    id: str
    mode: str
    candidate: str
    share: float  # of traffic at the current step

    def arm(self, session: str) -> str | None:
        """Canary: the arm that answers this session; interleave: "candidate" when this request is interleaved.
        None: not part of the rollout (an interleave outside the share)."""
        inside = session_share(self.id, session) < self.share
        if self.mode == "canary":
            return "candidate" if inside else "live"
        return "candidate" if inside else None


@dataclass(frozen=True)
class Served:
    """An answer and its part in a rollout: `rollout` None when none took part, else its arm per hit."""

    answer: Answer
    rollout: Running | None = None
    arm: str | None = None  # canary: the arm that answered the whole answer
    arms: list[str] | None = None


def search(searcher: SnapshotSearcher, running: Running | None, tenant: str, call: dict, session: str,
           seed: str) -> Served:
    """Answer `call` (SnapshotSearcher.search keywords) as the tenant's running rollout has it: canary, from the
    session's arm; interleave, the live and candidate rankings merged by team-draft (seeded by `seed`, the request
    id, so an answer can be replayed). A request that pins a snapshot is outside any rollout, and so is an
    interleave request for a context block or documents (passages and groups come from one snapshot)."""
    arm = running.arm(session) if running is not None and call.get("snapshot") is None else None
    if arm is None or running is None:
        return Served(searcher.search(tenant, **call))
    if running.mode == "canary":
        pinned = running.candidate if arm == "candidate" else None
        found = searcher.search(tenant, **{**call, "snapshot": pinned})
        return Served(found, running, arm, [arm] * len(found.hits))
    if call.get("context") is not None or call.get("group_by") is not None:
        return Served(searcher.search(tenant, **call))
    # The two rankings one after the other; the candidate's search takes the query vector the live one put in the
    # query-vector cache (the same texts under the same bound). Not on a thread beside: the stages are mostly Python,
    # and two threads taking turns at the GIL made p95 7x no rollout's on a quiet 2-core host (bench/rollout_bench.py,
    # README "Rollouts").
    live = searcher.search(tenant, **call)
    candidate = searcher.search(tenant, **{**call, "snapshot": running.candidate})
    merged = team_draft(live.hits, candidate.hits, call["top_k"], random.Random(seed),
                        key=lambda h: h.payload["chunk_hash"])
    timings = {**live.timings_ms, "candidate": candidate.timings_ms.get("total", 0.0),
               "total": round(live.timings_ms.get("total", 0.0) + candidate.timings_ms.get("total", 0.0), 3)}
    answer = replace(live, hits=[h for h, _ in merged], timings_ms=timings, cached=live.cached and candidate.cached,
                     warnings=list(dict.fromkeys(live.warnings + candidate.warnings)))
    return Served(answer, running, None, [a for _, a in merged])


class Rollouts:
    def __init__(self, db: Database, manifest: Manifest, promote: Callable[[str, str, str], object]) -> None:
        self.db = db
        self.manifest = manifest
        self.promote = promote  # (tenant, snapshot, by): the promotion path a manual one takes
        self._running: TTLCache = TTLCache(maxsize=10_000, ttl=RUNNING_TTL_S)
        self._lock = threading.Lock()

    # --- starting, reading, stopping -----------------------------------------------------------------------------

    def start(self, tenant: str, plan: Plan, by: str) -> dict:
        """Start `plan` for the tenant; Conflict when one runs already or there is no live snapshot to compare with,
        NotFound when the candidate is not a readable snapshot of the tenant."""
        snap = self.manifest.get(tenant, plan.candidate)
        if snap is None or snap.status not in READABLE:
            state = snap.status if snap else "unknown"
            raise NotFound(f"candidate snapshot {plan.candidate} of tenant {tenant} is {state}; a rollout tries a "
                           f"built snapshot ({', '.join(READABLE)})")
        live = self.manifest.live(tenant)
        if live is None:
            raise Conflict(f"tenant {tenant} has no live snapshot to roll a candidate out against")
        now = time.time()
        row = {"id": "ro_" + uuid.uuid4().hex[:24], "tenant": tenant, "running": tenant, "candidate": plan.candidate,
               "live": live.hash, "mode": plan.mode, "steps": json.dumps(list(plan.steps)), "step": 0,
               "step_base": 0, "min_feedback": plan.min_feedback, "max_regression": plan.max_regression,
               "confidence": plan.confidence, "state": "running", "started_by": by,
               "decisions": json.dumps([{"at": now, "action": "start", "step": 0, "share": plan.steps[0],
                                         "reason": f"started by {by}"}]),
               "started_at": now, "updated_at": now}
        try:
            with self.db.tx() as conn:
                conn.execute(rollouts.insert().values(**row))
        except IntegrityError:
            other = self.db.scalar(select(R.id).where(R.running == tenant))
            raise Conflict(f"tenant {tenant} has a rollout running already ({other}): one at a time; stop it first "
                           f"(POST /rollouts/{other}/stop)") from None
        self._forget(tenant)
        log.info("rollout started", extra={"tenant": tenant, "rollout": row["id"], "mode": plan.mode,
                                           "candidate": plan.candidate, "live": live.hash})
        return self.get(tenant, row["id"])

    def list(self, tenant: str) -> list[dict]:
        rows = self.db.all(select(rollouts).where(R.tenant == tenant).order_by(R.started_at.desc()))
        return [self._view(r) for r in rows]

    def get(self, tenant: str, rollout_id: str) -> dict:
        return self._view(self._row(tenant, rollout_id))

    def stop(self, tenant: str, rollout_id: str, by: str) -> dict:
        row = self._row(tenant, rollout_id)
        if row["state"] != "running" or not self._end(row, "stopped", f"stopped by {by}", {}):
            raise Conflict(f"rollout {rollout_id} is {self._row(tenant, rollout_id)['state']}; only a running "
                           "rollout can be stopped")
        return self.get(tenant, rollout_id)

    def running_views(self) -> list[dict]:
        """Every tenant's running rollout, as GET /rollouts/{id} shows it."""
        return [self._view(r) for r in self.db.all(select(rollouts).where(R.running.is_not(None)))]

    def running(self, tenant: str) -> Running | None:
        """The tenant's running rollout as /retrieve applies it, read at most every RUNNING_TTL_S."""
        with self._lock:
            cached = self._running.get(tenant, self)  # self: not cached (None is: no rollout runs)
        if cached is not self:
            return cached
        row = self.db.first(select(R.id, R.mode, R.candidate, R.steps, R.step).where(R.running == tenant))
        found = None if row is None else Running(row["id"], row["mode"], row["candidate"],
                                                 json.loads(row["steps"])[row["step"]])
        with self._lock:
            self._running[tenant] = found
        return found

    def candidates(self, tenant: str) -> set[str]:
        """The snapshots running rollouts try: retention keeps them."""
        return {r["candidate"] for r in self.db.all(select(R.candidate).where(R.running == tenant))}

    def interrupt(self, tenant: str, reason: str, unless: str | None = None) -> None:
        """Stop the tenant's running rollout, if any (and unless it tries snapshot `unless`), saying why: a newer
        snapshot passed the gate, or the live snapshot was switched outside the rollout, so its comparison no longer
        holds."""
        row = self.db.first(select(rollouts).where(R.running == tenant))
        if row is not None and row["candidate"] != unless:
            self._end(row, "stopped", reason, {})

    # --- figures and decisions -----------------------------------------------------------------------------------

    def figures(self, row) -> dict:
        """Each arm's figures from the answers the rollout gave that got feedback. interleave: per answer, the arm
        whose hits got more positive signals wins (online.interleave.outcome); canary: per arm, the answers whose
        reader gave a hit a positive signal, or called it helpful, without calling it not helpful."""
        join = answers.join(feedback, and_(F.tenant == A.tenant, F.request_id == A.request_id,
                                           F.reporter == A.reporter))
        rows = self.db.all(select(A.request_id, A.reporter, A.shown, F.target, F.signal, F.arm).select_from(join)
                           .where(A.tenant == row["tenant"], A.rollout == row["id"]))
        per: dict[tuple, dict] = defaultdict(lambda: {"arms": [], "helpful": None, "shown": None})
        for r in rows:
            a = per[(r["request_id"], r["reporter"])]
            a["shown"] = r["shown"]
            if r["target"] == "answer":
                a["helpful"] = r["signal"] == "helpful"
            elif r["signal"] in POSITIVE and r["arm"] in ARMS:
                a["arms"].append(r["arm"])
        if row["mode"] == "interleave":
            counts = {"live": 0, "candidate": 0, "tie": 0}
            for a in per.values():
                counts[outcome(a["arms"])] += 1
            return {"events": len(per), "wins": counts["candidate"], "losses": counts["live"], "ties": counts["tie"]}
        trials = {arm: 0 for arm in ARMS}
        successes = {arm: 0 for arm in ARMS}
        for a in per.values():
            arms = json.loads(a["shown"]).get("arms") or []
            if not arms or arms[0] not in ARMS:
                continue
            trials[arms[0]] += 1
            successes[arms[0]] += int(a["helpful"] is not False and (bool(a["arms"]) or a["helpful"] is True))
        return {"events": len(per), "trials": trials, "successes": successes}

    def consider(self, tenant: str, rollout_id: str) -> dict | None:
        """After feedback on an answer of this rollout: decide if the step has had its `min_feedback` events.
        Returns the decision taken (None: none, or the test said continue)."""
        row = self.db.first(select(rollouts).where(R.tenant == tenant, R.id == rollout_id))
        if row is None or row["state"] != "running":
            return None
        figures = self.figures(row)
        verdict = self._judge(row, figures)
        if verdict.action == "continue":
            return None
        steps = json.loads(row["steps"])
        entry = {"estimate": verdict.estimate, "interval": [verdict.low, verdict.high], "reason": verdict.reason,
                 "events": figures["events"]}
        if verdict.action == "stop":
            return entry if self._end(row, "stopped", verdict.reason, entry) else None
        if row["step"] + 1 < len(steps):
            return entry if self._advance(row, steps, figures["events"], entry) else None
        # The last step passed: the candidate goes live the way a manual promotion does (gate record, manifest,
        # snapshot.promoted), then the rollout records that it did (a second replica's promotion is a no-op). A
        # candidate that can no longer go live (deleted meanwhile) ends the rollout stopped, with the reason.
        try:
            self.promote(tenant, row["candidate"], f"rollout {rollout_id}")
        except (Conflict, NotFound) as e:
            reason = f"{verdict.reason}; but the candidate could not be promoted: {e}"
            return entry if self._end(row, "stopped", reason, entry) else None
        return entry if self._end(row, "promoted", verdict.reason, entry) else None

    def _judge(self, row, figures: dict) -> Decision:
        if row["mode"] == "interleave":
            counts = InterleaveCounts(figures["wins"], figures["losses"], figures["ties"])
        else:
            counts = CanaryCounts(figures["successes"]["candidate"], figures["trials"]["candidate"],
                                  figures["successes"]["live"], figures["trials"]["live"])
        # One confidence sequence over the whole rollout; each step waits for its own `min_feedback` events.
        return decide(counts, min_feedback=row["min_feedback"], max_regression=row["max_regression"],
                      confidence=row["confidence"], step_events=figures["events"] - row["step_base"])

    def _advance(self, row, steps: list[float], events: int, entry: dict) -> bool:
        now = time.time()
        step = row["step"] + 1
        entry = {"at": now, "action": "advance", "step": step, "share": steps[step], **entry}
        with self.db.tx() as conn:
            moved = conn.execute(update(rollouts).where(R.id == row["id"], R.state == "running",
                                                        R.step == row["step"])
                                 .values(step=step, step_base=events, updated_at=now,
                                         decisions=json.dumps([*json.loads(row["decisions"]), entry]))).rowcount
            if moved:
                emit(self.db, conn, row["tenant"], "rollout.advanced",
                     {"rollout": row["id"], "candidate": row["candidate"], "mode": row["mode"], "step": step,
                      "share": steps[step], "reason": entry["reason"]})
        self._forget(row["tenant"])
        if moved:
            log.info("rollout advanced", extra={"tenant": row["tenant"], "rollout": row["id"], "step": step})
        return bool(moved)

    def _end(self, row, state: str, reason: str, entry: dict) -> bool:
        """End a running rollout (stopped or promoted) with its event, once: False if it had ended already."""
        now = time.time()
        entry = {"at": now, "action": "promote" if state == "promoted" else "stop", "step": row["step"],
                 **entry, "reason": reason}
        with self.db.tx() as conn:
            ended = conn.execute(update(rollouts).where(R.id == row["id"], R.state == "running")
                                 .values(state=state, running=None, reason=reason, ended_at=now, updated_at=now,
                                         decisions=json.dumps([*json.loads(row["decisions"]), entry]))).rowcount
            if ended:
                emit(self.db, conn, row["tenant"], f"rollout.{state}",
                     {"rollout": row["id"], "candidate": row["candidate"], "live": row["live"], "mode": row["mode"],
                      "step": row["step"], "reason": reason})
        self._forget(row["tenant"])
        if ended:
            log.info("rollout %s", state, extra={"tenant": row["tenant"], "rollout": row["id"], "reason": reason})
        return bool(ended)

    def _forget(self, tenant: str) -> None:
        with self._lock:
            self._running.pop(tenant, None)

    def _row(self, tenant: str, rollout_id: str):
        row = self.db.first(select(rollouts).where(R.tenant == tenant, R.id == rollout_id))
        if row is None:
            raise NotFound(f"rollout {rollout_id} of tenant {tenant} does not exist")
        return row

    def _view(self, row) -> dict:
        figures = self.figures(row)
        return {"id": row["id"], "tenant": row["tenant"], "candidate": row["candidate"], "live": row["live"],
                "mode": row["mode"], "steps": json.loads(row["steps"]), "step": row["step"],
                "share": json.loads(row["steps"])[row["step"]], "min_feedback": row["min_feedback"],
                "max_regression": row["max_regression"], "confidence": row["confidence"], "state": row["state"],
                "reason": row["reason"], "started_by": row["started_by"], "started_at": row["started_at"],
                "updated_at": row["updated_at"], "ended_at": row["ended_at"], "feedback": figures["events"],
                "step_feedback": figures["events"] - row["step_base"],
                "arms": self._arms(row, figures), "decisions": json.loads(row["decisions"])}

    def _arms(self, row, figures: dict) -> dict:
        """Each arm's figures with its interval at the rollout's confidence, and the comparison the sequential test
        makes (candidate minus live); the intervals are always valid (online/sequential.py), so reading them while
        the rollout runs is no peeking."""
        confidence, tune = row["confidence"], row["min_feedback"]
        if row["mode"] == "interleave":
            won = {"candidate": figures["wins"], "live": figures["losses"]}
            arms = {arm: {"wins": n, "answers": figures["events"], "metric": "win rate",
                          **_rate(n, figures["events"], confidence, tune)} for arm, n in won.items()}
            arms["ties"] = figures["ties"]
        else:
            arms = {arm: {"successes": figures["successes"][arm], "answers": figures["trials"][arm],
                          "metric": "success rate",
                          **_rate(figures["successes"][arm], figures["trials"][arm], confidence, tune)}
                    for arm in ARMS}
        verdict = self._judge(row, figures)
        # A difference of two rates lies in [-1, 1]: the interval is shown within it (the test reads it whole).
        arms["difference"] = {"estimate": _finite(verdict.estimate), "low": _finite(max(-1.0, verdict.low)),
                              "high": _finite(min(1.0, verdict.high)), "confidence": confidence,
                              "now": verdict.action, "reason": verdict.reason}
        return arms


def _finite(x: float) -> float | None:
    """JSON has no NaN or infinity: an estimate without data, or an unbounded interval end, is null."""
    return x if x == x and abs(x) != float("inf") else None


def _rate(successes: int, trials: int, confidence: float, tune: int) -> dict:
    rate, low, high = rate_interval(successes, trials, confidence, tune_at=tune)
    return {"rate": _finite(rate), "low": low, "high": high}
