"""Query sets are versioned and never silently replaced; runs and verdicts round-trip."""

from __future__ import annotations

import pytest

from errors import NotFound
from eval.metrics import evaluate
from eval.store import EvalStore, LabelledQuery, Verdict


@pytest.fixture
def store(catalog_db):
    return EvalStore(catalog_db)


QUERIES = [LabelledQuery("q1", "refund time", {"kb-1": 1}), LabelledQuery("q2", "vpn abroad", {"kb-2": 2, "kb-3": 1})]


def test_same_content_keeps_the_version_and_a_change_adds_one(store):
    v1, created = store.put_query_set("t", "kb", QUERIES)
    assert created and v1.version == 1 and v1.queries == 2
    same, created = store.put_query_set("t", "kb", list(reversed(QUERIES)))  # order does not matter
    assert not created and same.id == v1.id
    v2, created = store.put_query_set("t", "kb", QUERIES[:1])
    assert created and v2.version == 2
    # history stays: v1 and its queries are still there, v2 is what runs now
    assert [q.id for q in store.queries(store.query_set("t", "kb", 1).id)] == ["q1", "q2"]
    assert [s.version for s in store.active_sets("t")] == [2]
    assert [(s.name, s.version) for s in store.query_sets("t")] == [("kb", 1), ("kb", 2)]
    assert store.active_sets("other-tenant") == []


def test_retire_stops_the_set_and_a_new_upload_revives_it(store):
    store.put_query_set("t", "kb", QUERIES)
    store.retire("t", "kb")
    assert store.active_sets("t") == []
    again, created = store.put_query_set("t", "kb", QUERIES)
    assert created and again.version == 2 and store.active_sets("t")[0].version == 2
    with pytest.raises(NotFound, match="no query set 'nope'"):
        store.retire("t", "nope")


@pytest.mark.parametrize("name", ["", "-lead", "has space", "x" * 129, "slash/y"])
def test_bad_names_are_refused(store, name):
    with pytest.raises(ValueError, match="query set name"):
        store.put_query_set("t", name, QUERIES)


def test_repeated_ids_and_empty_sets_are_refused(store):
    with pytest.raises(ValueError, match=r"query ids repeat in query set 'kb': \['q1'\]"):
        store.put_query_set("t", "kb", [QUERIES[0], QUERIES[0]])
    with pytest.raises(ValueError, match="has no queries"):
        store.put_query_set("t", "kb", [])


def test_runs_results_and_verdicts_round_trip(store):
    ref, _ = store.put_query_set("t", "kb", QUERIES)
    metrics, per_query = evaluate({q.id: q.relevant for q in QUERIES}, {"q1": ["kb-9", "kb-1"], "q2": ["kb-3"]},
                                  ks=[1, 10])
    run_id = store.start_run("t", "a" * 64, ref.id, {"stages": {"rerank": "none"}}, "build")
    assert store.run("t", run_id).status == "running"
    assert store.finished_run("t", "a" * 64, ref.id) is None
    store.finish_run(run_id, metrics, {"p50": 1.0}, per_query, 0.5)
    run = store.finished_run("t", "a" * 64, ref.id, {"stages": {"rerank": "none"}})
    assert run.id == run_id and run.metrics == metrics and run.set_name == "kb" and run.queries == 2
    assert store.finished_run("t", "a" * 64, ref.id, {"stages": {"rerank": "late"}}) is None  # other recipe
    assert store.results(run_id) == per_query
    assert store.run("other", run_id) is None  # tenants do not see each other's runs

    v = store.put_verdict("t", "a" * 64, Verdict(False, ["kb v1: recall@10 fell"], [], [run_id], "b" * 64))
    assert not v.passed and v.baseline == "b" * 64 and v.override_at is None and v.decided_at > 0
    store.record_override("t", "a" * 64)
    assert store.verdict("t", "a" * 64).override_at is not None
    assert set(store.verdicts("t")) == {"a" * 64}
