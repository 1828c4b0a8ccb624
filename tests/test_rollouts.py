"""Rollouts (issue 35) over a real `snapdex serve`: simulated users (online/click_model.py, SciFact test qrels) drive
/retrieve and POST /feedback through the Python client. A worse candidate (the snapshot missing a third of the
documents) is stopped; a better one against a worse live snapshot is promoted step by step; an A/A rollout is not
stopped; a canary rollout answers each session from one arm, and a restart in its middle goes on where it was with
no feedback lost; bad requests are refused naming the field and its range. One service for the module (restarted
once, last); each test has a tenant of its own, with its two snapshots: A (every document) and B (a third left out:
the relevant documents of half the queries, and distractors)."""

from __future__ import annotations

import json
import random
import time
from contextlib import ExitStack

import pytest

from online.click_model import ClickModel
from snapdex.client import Client, SnapdexError
from harness.procs import auth, free_port, key_for, snapdex_serve

TENANTS = ("worse", "better", "aa", "canary", "checks")
QUERIES = 12  # SciFact test queries with labels; the relevant documents of the second half are B's missing third


@pytest.fixture(scope="module")
def scifact(scifact_dir):
    qrels: dict[str, dict[str, int]] = {}
    for line in (scifact_dir / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, doc, score = line.split("\t")
        qrels.setdefault(q, {})[doc] = int(score)
    texts = {}
    with (scifact_dir / "queries.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            texts[row["_id"]] = row["text"]
    queries = sorted((q for q in qrels if q in texts), key=int)[:QUERIES]
    kept = {d for q in queries[: QUERIES // 2] for d in qrels[q]}
    dropped = {d for q in queries[QUERIES // 2:] for d in qrels[q]} - kept
    corpus, distractors = {}, []
    with (scifact_dir / "corpus.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            doc = {"id": row["_id"], "text": f"{row['title']}\n\n{row['text']}"}
            if row["_id"] in kept | dropped:
                corpus[row["_id"]] = doc
            elif len(distractors) < len(kept | dropped):
                distractors.append(doc)
    # B lacks a third of A's documents: the relevant ones of the second half of the queries, then distractors.
    third = (len(corpus) + len(distractors)) // 3
    missing = [corpus[d] for d in sorted(dropped)] + distractors[: max(0, third - len(dropped))]
    held = [d for d in [*corpus.values(), *distractors] if d not in missing]
    return {"queries": queries, "text": texts, "qrels": qrels, "b": held, "rest": missing}


class Served:
    def __init__(self, data) -> None:
        self.data, self.stack, self.svc = data, ExitStack(), None

    def start(self) -> None:
        self.svc = self.stack.enter_context(snapdex_serve(self.data, tenants=TENANTS, SNAPDEX_GATE_FLOORS="{}",
                                                          SNAPDEX_ROLLOUT_MIN_FEEDBACK="20",
                                                          SNAPDEX_WEBHOOK_ALLOW_PRIVATE="true"))

    def restart(self) -> None:
        self.stack.close()
        self.stack = ExitStack()
        self.start()

    def client(self, tenant: str) -> Client:
        return self.stack.enter_context(Client(self.svc.url, api_key=key_for(tenant)))


@pytest.fixture(scope="module")
def served(tmp_path_factory, scifact):
    box = Served(tmp_path_factory.mktemp("rollouts") / "data")
    box.start()
    try:
        # B first, then A (every document): A is live, B a readable retired snapshot. The tenants' jobs queue
        # together (the embedding cache makes all but the first one's cheap).
        clients = {tenant: box.client(tenant) for tenant in TENANTS}
        snaps: dict[str, list[str]] = {tenant: [] for tenant in TENANTS}
        for part in ("b", "rest"):
            jobs = {tenant: sx.ingest(scifact[part], wait=False).job_id for tenant, sx in clients.items()}
            for tenant, job in jobs.items():
                started = time.monotonic()
                snaps[tenant].append(clients[tenant].wait_job(job, timeout=300).snapshot)
                print(part, tenant, round(time.monotonic() - started, 1))
        box.snapshots = {tenant: (a, b) for tenant, (b, a) in snaps.items()}
        for tenant, (a, b) in box.snapshots.items():
            assert a and b and a != b and clients[tenant].snapshots().live == a
        yield box
    finally:
        box.stack.close()


def drive(sx: Client, scifact, rollout_id: str, seed: int, budget: int, sessions: int = 40) -> tuple[object, int]:
    """Simulated users: each asks one of the queries in a session of its own and the click model reports what it
    cited, clicked and thought of the answer. Until the rollout ends, or `budget` answers of it got feedback.
    Request ids are fixed (they seed the interleaving), so a run replays."""
    rng, users = random.Random(seed), ClickModel(seed=seed)
    events = 0
    for i in range(20 * budget):
        q = rng.choice(scifact["queries"])
        sx.http.headers["X-Request-ID"] = f"t{seed}-{i:06d}"
        try:
            answer = sx.retrieve(scifact["text"][q], top_k=5, session=f"user-{rng.randrange(sessions)}")
        finally:
            del sx.http.headers["X-Request-ID"]
        if answer.rollout is None or answer.rollout.id != rollout_id:
            if answer.rollout is None and sx.rollout(rollout_id).state != "running":
                break
            continue
        said = users.respond([h.doc_id for h in answer.hits], scifact["qrels"][q])
        if not said.signals and said.helpful is None:
            continue
        sx.feedback(answer.request_id, [{"chunk_id": answer.hits[r].chunk_id, "signal": s} for r, s in said.signals],
                    said.helpful)
        events += 1
        if events >= budget or events % 5 == 0 and sx.rollout(rollout_id).state != "running":
            break
    return sx.rollout(rollout_id), events


def test_a_worse_candidate_is_stopped_and_live_keeps_serving(served, scifact):
    sx = served.client("worse")
    a, b = served.snapshots["worse"]
    started = sx.start_rollout(b, mode="interleave", steps=[1.0], min_feedback=20, max_regression=0.05)
    assert (started.state, started.step, started.live, started.decisions[0].action) == ("running", 0, a, "start")
    answer = sx.retrieve(scifact["text"][scifact["queries"][0]], top_k=10)
    assert answer.rollout.id == started.id and answer.rollout.mode == "interleave" and answer.snapshot == a
    assert {h.arm for h in answer.hits} <= {"live", "candidate"} and answer.arm is None
    assert {h.arm for h in sx.retrieve(scifact["text"][scifact["queries"][0]], top_k=10, snapshot=b).hits} == {None}

    done, events = drive(sx, scifact, started.id, seed=1, budget=300)
    assert done.state == "stopped", (events, done.arms)
    last = done.decisions[-1]
    assert last.action == "stop" and last.interval[1] < 0 and last.events >= 20 and "worse" in last.reason
    assert done.arms["live"]["wins"] > done.arms["candidate"]["wins"]
    assert done.arms["difference"]["high"] < 0
    # Stopped: the live snapshot answers everything, no arm; B was not promoted.
    after = sx.retrieve(scifact["text"][scifact["queries"][0]], top_k=10)
    assert after.rollout is None and after.snapshot == a and sx.snapshots().live == a
    with pytest.raises(SnapdexError) as again:
        sx.stop_rollout(started.id)
    assert again.value.status == 409 and "stopped" in str(again.value.detail)


def test_a_better_candidate_is_promoted_step_by_step(served, scifact):
    sx = served.client("better")
    a, b = served.snapshots["better"]
    sx.promote(b)  # the worse snapshot is live; A, with every document, is the candidate
    # Nothing listens there: the events are recorded as deliveries to try, which is what is looked at.
    hook = served.svc.client.post("/webhooks", headers=auth("better"), json={
        "url": f"http://127.0.0.1:{free_port()}/hook", "events": ["rollout.advanced", "rollout.promoted",
                                                                  "rollout.stopped", "snapshot.promoted"]}).json()
    started = sx.start_rollout(a, mode="interleave", steps=[0.5, 1.0], min_feedback=20, max_regression=0.1)
    done, events = drive(sx, scifact, started.id, seed=2, budget=400)
    assert done.state == "promoted", (events, done.arms, done.decisions)
    assert [d.action for d in done.decisions] == ["start", "advance", "promote"]
    advance, promote = done.decisions[1:]
    assert (advance.step, advance.share, promote.step) == (1, 1.0, 1)
    assert advance.interval[0] > -0.1 and promote.events - advance.events >= 20  # each step had its own events
    assert done.arms["candidate"]["wins"] > done.arms["live"]["wins"]
    listing = sx.snapshots()
    assert listing.live == a and listing.previous == b
    answer = sx.retrieve(scifact["text"][scifact["queries"][0]], top_k=10)
    assert answer.rollout is None and answer.snapshot == a
    sent = served.svc.client.get(f"/webhooks/{hook['id']}/deliveries", headers=auth("better")).json()["deliveries"]
    assert sorted(d["event_type"] for d in sent) == ["rollout.advanced", "rollout.promoted", "snapshot.promoted"]


def test_an_a_a_rollout_is_not_stopped(served, scifact):
    sx = served.client("aa")
    a, _ = served.snapshots["aa"]
    started = sx.start_rollout(a, mode="interleave", steps=[1.0], min_feedback=20, max_regression=0.02)
    done, events = drive(sx, scifact, started.id, seed=3, budget=80)
    assert events == 80 and done.state != "stopped", done.decisions
    assert abs(done.arms["difference"]["estimate"]) < 0.2 and done.arms["difference"]["low"] < 0 \
        < done.arms["difference"]["high"]
    assert done.feedback == 80
    # Each arm's figures on /metrics while it runs (an interleaved answer counts for both arms).
    metrics = served.svc.client.get("/metrics", headers=auth(None)).text
    for arm in ("live", "candidate"):
        line = next(x for x in metrics.splitlines() if x.startswith("snapdex_rollout_arm_answers{")
                    and f'rollout="{started.id}"' in x and f'arm="{arm}"' in x)
        assert line.endswith(" 80.0"), line
    assert any(x.startswith("snapdex_rollout_difference{") and f'rollout="{started.id}"' in x and 'bound="low"' in x
               and float(x.rsplit(" ", 1)[1]) < 0 for x in metrics.splitlines())


def test_a_canary_is_sticky_per_session_and_a_restart_resumes_it_with_no_feedback_lost(served, scifact):
    sx = served.client("canary")
    a, b = served.snapshots["canary"]
    started = sx.start_rollout(b, mode="canary", share=0.5, min_feedback=200)
    assert started.steps == [0.5, 1.0]  # the default steps above the share asked for
    query = scifact["text"][scifact["queries"][0]]
    arms = {s: sx.retrieve(query, top_k=5, session=s) for s in (f"conversation-{i}" for i in range(12))}
    assert {r.arm for r in arms.values()} == {"live", "candidate"}  # 12 sessions at 1/2: both arms, surely
    for s, r in arms.items():
        assert r.rollout.id == started.id and r.snapshot == (b if r.arm == "candidate" else a)
        assert {h.arm for h in r.hits} == {r.arm}
        assert sx.retrieve(query, top_k=5, session=s).arm == r.arm  # sticky
    before, events = drive(sx, scifact, started.id, seed=4, budget=15)
    assert before.state == "running" and before.feedback == events == 15
    assert before.arms["live"]["answers"] + before.arms["candidate"]["answers"] == 15

    served.restart()
    sx = served.client("canary")
    after = sx.rollout(started.id)
    assert (after.state, after.step, after.feedback, after.arms) == ("running", 0, 15, before.arms)
    assert all(sx.retrieve(query, top_k=5, session=s).arm == r.arm for s, r in arms.items())
    resumed, more = drive(sx, scifact, started.id, seed=5, budget=5)
    assert resumed.feedback == 20 and resumed.state == "running"
    stopped = sx.stop_rollout(started.id)
    assert stopped.state == "stopped" and stopped.decisions[-1].action == "stop"
    assert sx.retrieve(query, top_k=5, session="conversation-0").rollout is None


@pytest.mark.parametrize("body, field, says", [
    ({"mode": "shadow"}, "mode", "'interleave' or 'canary'"),
    ({"share": 0}, "share", "greater than 0"),
    ({"share": 1.5}, "share", "less than or equal to 1"),
    ({"steps": []}, "steps", "at least 1"),
    ({"steps": [0.5, 0.2]}, "steps", "must rise strictly"),
    ({"steps": [0.1, 0.5], "share": 0.2}, "share", "differs from steps[0]=0.1"),
    ({"min_feedback": 5}, "min_feedback", "greater than or equal to 10"),
    ({"max_regression": 0.9}, "max_regression", "less than or equal to 0.5"),
    ({"confidence": 1.0}, "confidence", "less than or equal to 0.999"),
    ({"candidate": "abc"}, "candidate", "should match pattern"),
    ({"seed": 1}, "seed", "Extra inputs are not permitted"),
])
def test_bad_rollout_requests_are_refused_naming_the_field(served, body, field, says):
    a, b = served.snapshots["checks"]
    r = served.svc.client.post("/rollouts", json={"candidate": b, **body}, headers=auth("checks"))
    assert r.status_code == 422 and field in r.text and says in r.text, r.text
    assert served.svc.client.get("/rollouts", headers=auth("checks")).json()["rollouts"] == []


def test_one_rollout_per_tenant_unknown_candidates_and_other_tenants_rollouts(served):
    a, b = served.snapshots["checks"]
    http = served.svc.client
    missing = http.post("/rollouts", json={"candidate": "0" * 64}, headers=auth("checks"))
    assert missing.status_code == 404 and "0" * 64 in missing.text
    first = http.post("/rollouts", json={"candidate": b}, headers=auth("checks"))
    assert first.status_code == 201, first.text
    rid = first.json()["id"]
    second = http.post("/rollouts", json={"candidate": a, "mode": "canary"}, headers=auth("checks"))
    assert second.status_code == 409 and rid in second.text
    # Another tenant neither sees nor stops it.
    assert http.get(f"/rollouts/{rid}", headers=auth("aa")).status_code == 404
    assert http.post(f"/rollouts/{rid}/stop", headers=auth("aa")).status_code == 404
    assert rid not in http.get("/rollouts", headers=auth("aa")).text
    assert http.post(f"/rollouts/{rid}/stop", headers=auth("checks")).json()["state"] == "stopped"
    assert http.post("/rollouts", json={"candidate": a}, headers=auth("checks")).status_code == 201
