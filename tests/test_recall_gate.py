"""Evaluation after every build and the promotion gate, in process with the deterministic embedder."""

from __future__ import annotations

import pytest

from eval.metrics import evaluate
from eval.runner import doc_ranking
from eval.store import LabelledQuery
from store.base import StoreUnavailable
from harness.helpers import ingest, make_runtime, text_doc

TOPICS = {
    "kb-0": ("invoice billing cycle", "Invoices for the billing cycle are issued on the first working day."),
    "kb-1": ("vpn client abroad", "The VPN client must be updated before connecting from abroad."),
    "kb-2": ("parental leave request", "A parental leave request goes to human resources eight weeks ahead."),
    "kb-3": ("laptop replacement schedule", "Laptop replacement happens on a four year schedule per employee."),
    "kb-4": ("expense receipts travel", "Travel expense receipts are scanned within thirty days of the trip."),
    "kb-5": ("password reset portal", "The password reset portal sends a one time code to the phone."),
}
TENANT = "acme"


def corpus(**texts: str):
    return [text_doc(doc_id, texts.get(doc_id.replace("-", "_"), text)) for doc_id, (_, text) in TOPICS.items()]


def query_set() -> list[LabelledQuery]:
    return [LabelledQuery(f"q{i}", query, {doc_id: 1}) for i, (doc_id, (query, _)) in enumerate(TOPICS.items())]


# An export that lost the body of four documents: their queries cannot be answered any more.
BROKEN = {f"kb_{i}": f"Export of record {i} failed at row {i * 7}; see the export log." for i in range(4)}


@pytest.fixture
def rt(tmp_path):
    # float16 vectors: the drill-down below names exactly which queries the broken build loses, and with the fake
    # embedder's 32 dimensions turbo8's score error (up to ~4e-3 at that size) can swap the near-ties that decide it.
    runtime = make_runtime(tmp_path, gate_floors={"recall@1": 0.5}, gate_max_drop={"recall@1": 0.0, "ndcg@10": 0.02},
                           vector_datatype="float16")
    yield runtime
    runtime.close()


def runs_of(rt, snap):
    return rt.evals.runs(TENANT, snapshot=snap)


def test_every_build_is_scored_and_a_regression_is_held_while_live_serves(rt):
    a = ingest(rt, corpus(), TENANT).snapshot
    assert rt.manifest.live(TENANT).hash == a
    assert "no active query set" in rt.evals.verdict(TENANT, a).reasons[0]  # nothing to gate on yet

    rt.evals.put_query_set(TENANT, "kb", query_set())
    [on_a] = rt.evaluator.evaluate_kept(TENANT)  # what an upload queues: the kept snapshots get scored
    assert on_a.snapshot == a and on_a.metrics["recall@1"] == 1.0 and on_a.trigger == "manual"

    # A good change: one more document. Scored after the build, compared with a's run (reused), promoted.
    b = ingest(rt, [*corpus(), text_doc("kb-6", "The cafeteria opens at eight and closes at three.")], TENANT).snapshot
    assert rt.manifest.live(TENANT).hash == b and rt.manifest.previous(TENANT) == a
    verdict_b = rt.evals.verdict(TENANT, b)
    assert verdict_b.passed and verdict_b.baseline == a and verdict_b.reasons == []
    assert [r.trigger for r in runs_of(rt, b)] == ["build"] and len(runs_of(rt, a)) == 1

    # What the run measured is what /retrieve serves: the same rankings through the searcher.
    served = {q.id: doc_ranking([h.payload["doc_ids"] for h in rt.searcher.search(TENANT, q.text, 20).hits])
              for q in query_set()}
    metrics, _ = evaluate({q.id: q.relevant for q in query_set()}, served, ks=rt.settings.eval_ks)
    assert runs_of(rt, b)[0].metrics == pytest.approx(metrics)

    # A harmful change: held as a candidate with its reasons; the job still succeeds and names it.
    job = ingest(rt, corpus(**BROKEN), TENANT)
    c = job.snapshot
    assert job.status == "succeeded" and c not in (a, b)
    snap_c = rt.manifest.get(TENANT, c)
    verdict_c = rt.evals.verdict(TENANT, c)
    assert snap_c.status == "candidate" and not verdict_c.passed and verdict_c.baseline == b
    assert any(r.startswith("kb v1: recall@1 fell") for r in verdict_c.reasons), verdict_c.reasons
    assert snap_c.reason.startswith("held by the gate: kb v1:")
    assert rt.manifest.live(TENANT).hash == b
    assert rt.searcher.search(TENANT, "vpn client abroad", 3).snapshot == b

    # Drill-down: the queries c lost, the documents it missed and what it ranked instead.
    diff = rt.evaluator.compare(TENANT, b, c, "kb", metric="recall@1")
    assert {e["query_id"] for e in diff["lost"]} == {"q0", "q1", "q2", "q3"}
    lost = {e["query_id"]: e for e in diff["lost"]}
    assert lost["q1"]["missed"] == ["kb-1"] and lost["q1"]["retrieved_instead"] and "kb-1" not in lost["q1"]["retrieved_instead"]
    assert diff["unchanged"] == 2 and diff["gained"] == []

    # A rebuild with nothing new does not judge again: the hold stands.
    runs_before = len(rt.evals.runs(TENANT))
    assert rt.snapshots.rebuild(TENANT).hash == c and not rt.snapshots.rebuild(TENANT).built
    assert rt.manifest.get(TENANT, c).status == "candidate" and len(rt.evals.runs(TENANT)) == runs_before

    # Rollback is unaffected by the held candidate: back to the snapshot live before b.
    assert rt.snapshots.rollback(TENANT) == (b, a)
    assert rt.manifest.live(TENANT).hash == a
    # Documents back to b's (the broken export re-sent correctly): b was rolled back from, and that stands.
    assert ingest(rt, [*corpus(), text_doc("kb-6", "The cafeteria opens at eight and closes at three.")],
                  TENANT).snapshot == b
    assert rt.manifest.live(TENANT).hash == a and rt.manifest.get(TENANT, b).status == "retired"

    # An operator may promote the held candidate by hand: recorded as an override.
    assert rt.snapshots.promote(TENANT, c) == a
    assert rt.manifest.live(TENANT).hash == c and rt.evals.verdict(TENANT, c).override_at is not None
    assert rt.manifest.switches(TENANT)[-1]["action"] == "override"
    assert rt.snapshots.promote(TENANT, b) == c and rt.manifest.switches(TENANT)[-1]["action"] == "manual"


def test_a_first_snapshot_below_the_floor_does_not_go_live(rt):
    rt.evals.put_query_set(TENANT, "kb", query_set())
    job = ingest(rt, corpus(**BROKEN, kb_4=BROKEN["kb_0"] + " Again.", kb_5=BROKEN["kb_1"] + " Again."), TENANT)
    assert job.status == "succeeded" and rt.manifest.live(TENANT) is None
    verdict = rt.evals.verdict(TENANT, job.snapshot)
    assert not verdict.passed and verdict.baseline is None
    assert verdict.reasons[0].startswith("kb v1: recall@1 0.") and "below the floor 0.5000" in verdict.reasons[0]


def test_a_config_change_is_gated_against_the_live_snapshot(tmp_path):
    first = make_runtime(tmp_path, gate_max_drop={"recall@1": 0.0})
    a = ingest(first, corpus(), TENANT).snapshot
    first.evals.put_query_set(TENANT, "kb", query_set())
    first.close()
    # The service restarts with another chunk size: the drift rebuild is judged against the old live snapshot.
    second = make_runtime(tmp_path, chunk_size=32, chunk_overlap=0, gate_max_drop={"recall@1": 0.0})
    result = second.snapshots.rebuild(TENANT)
    verdict = second.evals.verdict(TENANT, result.hash)
    assert result.built and result.hash != a and verdict.baseline == a
    assert {r.snapshot for r in second.evals.runs(TENANT)} == {a, result.hash}
    assert second.manifest.live(TENANT).hash == (result.hash if verdict.passed else a)
    second.close()


def test_an_evaluation_that_cannot_run_holds_and_a_transient_one_retries(rt, monkeypatch):
    ingest(rt, corpus(), TENANT)
    rt.evals.put_query_set(TENANT, "kb", query_set())
    extra = text_doc("kb-7", "Parking permits are renewed every January at the front desk.")

    def boom(*args, **kwargs):
        raise RuntimeError("reranker exploded")

    monkeypatch.setattr(rt.searcher, "search", boom)
    held = ingest(rt, [*corpus(), extra], TENANT).snapshot
    assert rt.manifest.get(TENANT, held).status == "candidate"
    assert rt.evals.verdict(TENANT, held).reasons == ["evaluation failed: RuntimeError: reranker exploded"]
    assert rt.evals.runs(TENANT, snapshot=held)[0].status == "failed"
    monkeypatch.undo()
    assert not rt.snapshots.rebuild(TENANT).built  # the cause fixed, a rebuild judges the same snapshot again
    assert rt.evals.verdict(TENANT, held).passed and rt.manifest.live(TENANT).hash == held

    def down(*args, **kwargs):
        raise StoreUnavailable("qdrant is restarting", retry_after=2)

    monkeypatch.setattr(rt.searcher, "search", down)
    job_id = rt.jobs.create(TENANT, [*corpus(), extra, text_doc("kb-8", "Badges are printed at reception.")])
    from index_snapshots.service import run_ingest_job

    run_ingest_job(rt.ingestor, rt.jobs, job_id)
    with pytest.raises(StoreUnavailable):
        rt.snapshots.build_pending(TENANT, transient=(StoreUnavailable,))
    view = rt.jobs.get(job_id)
    assert view.status == "running" and view.phase == "awaiting_build"  # the task's retry takes it up
    unjudged = rt.manifest.list(TENANT)[-1]
    assert unjudged.status == "candidate" and rt.evals.verdict(TENANT, unjudged.hash) is None

    monkeypatch.undo()
    result = rt.snapshots.build_pending(TENANT)  # nothing new to build, but never judged: judged now
    assert not result.built and result.hash == unjudged.hash
    assert rt.evals.verdict(TENANT, result.hash).passed and rt.manifest.live(TENANT).hash == result.hash
    assert rt.jobs.get(job_id).status == "succeeded"


def test_a_job_whose_build_died_mid_evaluation_is_settled_by_the_next_build(rt):
    from index_snapshots.service import run_ingest_job

    job_id = rt.jobs.create(TENANT, corpus())
    run_ingest_job(rt.ingestor, rt.jobs, job_id)
    rt.jobs.set_phase(job_id, "building")
    rt.jobs.set_phase(job_id, "evaluating")  # the worker died here; the build lock died with it
    assert run_ingest_job(rt.ingestor, rt.jobs, job_id) == TENANT  # redelivered: only the build is left
    result = rt.snapshots.build_pending(TENANT)
    assert rt.jobs.get(job_id).status == "succeeded" and rt.jobs.get(job_id).snapshot == result.hash


def test_runs_under_another_retrieval_recipe_are_kept_apart(tmp_path):
    first = make_runtime(tmp_path, gate_floors={"recall@1": 0.5}, gate_max_drop={"recall@1": 0.0})
    a = ingest(first, corpus(), TENANT).snapshot
    first.evals.put_query_set(TENANT, "kb", query_set())
    first.evaluator.evaluate_kept(TENANT)
    c = ingest(first, corpus(**BROKEN), TENANT).snapshot
    first.close()
    # The service restarts with another second stage: only a is scored again under the new recipe.
    second = make_runtime(tmp_path, rerank="late-interaction", gate_floors={"recall@1": 0.5},
                          gate_max_drop={"recall@1": 0.0})
    [again] = second.evaluator.evaluate_kept(TENANT, snapshot=a)
    old = second.evals.runs(TENANT, snapshot=c)[0]
    assert again.recipe_key != old.recipe_key and again.trigger == "manual"
    # A drill-down pairs runs of one recipe (the one both snapshots have), never a mix.
    pair = second.evaluator.compare(TENANT, a, c, "kb", metric="recall@1")
    assert pair["base"].recipe_key == pair["candidate"].recipe_key == old.recipe_key
    # The chart takes each snapshot's run under today's recipe where there is one, and says which is which.
    from api.routes.evaluation import overview

    [kb] = overview(second, TENANT).query_sets
    runs = {r.snapshot: r for r in kb.runs}
    assert runs[a].run_id == again.id and runs[a].current_recipe and not runs[c].current_recipe
    second.close()
