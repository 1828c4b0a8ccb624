"""Benchmark runs in the catalog: kept whole and once, ordered by when they ran, summarised for the dashboard."""

from __future__ import annotations

import pytest

from eval import benchmarks as benchmarks_module
from eval.benchmarks import BenchmarkStore, BenchmarkTooLarge
from db import open_catalog
from tests.benchmark_runs import peer_run


@pytest.fixture
def store(catalog_db):
    return BenchmarkStore(catalog_db)


def test_a_run_is_kept_whole_and_once(store, catalog_url):
    run = peer_run()
    stored, created = store.put("peers", run)
    assert created and stored.body == run and stored.commit == run["git"]["commit"]
    again, created = store.put("peers", peer_run(date="2026-11-25T03:36:13Z"))  # the same instant
    assert not created and again.id == stored.id and again.body == run
    other, created = store.put("peers-quick", run)  # another benchmark's run is its own point
    assert created and other.id != stored.id
    # The table survives a reopen (and a second process opening the catalog upgrades nothing twice).
    reopened = BenchmarkStore(open_catalog(catalog_url))
    assert [r.id for r in reopened.list()] == [other.id, stored.id]  # same instant: the later import first
    assert reopened.get(stored.id).body == run and reopened.get(10_000) is None


def test_runs_order_by_when_they_ran_not_when_they_were_imported(store):
    late, _ = store.put("peers", peer_run(date="2026-12-02T09:00:00+00:00", commit="fbb6958"))
    early, _ = store.put("peers", peer_run(date="2026-11-25T04:00:00+01:00", commit="35429c2"))  # 03:00 UTC
    middle, _ = store.put("peers", peer_run(date="2026-11-25T03:30:00", commit="225b5fb"))  # no zone: UTC
    assert [r.id for r in store.list()] == [late.id, middle.id, early.id]
    assert [r.id for r in store.list(limit=1)] == [late.id]
    assert store.list(name="other") == []


def test_the_summary_compares_snapdex_with_the_peer():
    run = benchmarks_module.BenchmarkRun(1, "peers", 0.0, "2026-11-25T03:36:13+00:00", 0.0, "225b5fb", "m",
                                         peer_run())
    s = run.summary()
    assert s["ndcg_at_10"] == {"snapdex": 0.7412, "peer": 0.7165}
    assert s["recall_at_100"] == {"snapdex": 0.953, "peer": 0.9483}
    assert (s["first_stage_p95_ms"], s["peer_p95_ms"], s["first_stage_p95_ratio"]) == (28.94, 95.27, 0.3038)
    assert s["p95_100k_ms"] == 31.57 and s["build_s"] == {"snapdex": 1474.33, "peer": 237.26}
    assert s["targets"] == {"met": 6, "total": 7, "missed": ["run: whole command < 20 min (s)"]}

    # A quick run (no first stage measured apart, no 100k index, no targets) summarises to what it has.
    quick = peer_run()
    for key in ("100k", "targets", "wall_s"):
        del quick[key]
    del quick["systems"]["snapdex first stage"]
    s = benchmarks_module.BenchmarkRun(2, "peers", 0.0, quick["date"], 0.0, "225b5fb", None, quick).summary()
    assert s["first_stage_p95_ms"] is None and s["first_stage_p95_ratio"] is None and s["p95_100k_ms"] is None
    assert s["wall_s"] is None and s["targets"] == {"met": 0, "total": 0, "missed": []}


def test_what_cannot_be_kept_is_refused_with_the_reason(store, monkeypatch):
    with pytest.raises(ValueError, match="date"):
        store.put("peers", peer_run(date="last tuesday"))
    with pytest.raises(ValueError, match="git.commit"):
        store.put("peers", peer_run(commit="HEAD"))
    with pytest.raises(ValueError, match="NaN or Infinity"):
        store.put("peers", {**peer_run(), "phases_s": {"queries": float("inf")}})
    with pytest.raises(ValueError, match="benchmark name"):
        store.put("no such name!", peer_run())
    monkeypatch.setattr(benchmarks_module, "MAX_BODY_BYTES", 1000)
    with pytest.raises(BenchmarkTooLarge, match="at most 1,000"):
        store.put("peers", peer_run())
    assert store.list() == []
