"""The store of retrieval profiles and tuning runs, on SQLite and PostgreSQL: versions, the live pointer, rollback,
runs' lifecycle."""

from __future__ import annotations

import pytest

from errors import Conflict, NotFound
from eval.profiles import ProfileStore


@pytest.fixture
def store(catalog_db):
    return ProfileStore(catalog_db)


def test_versions_live_pointer_and_rollback(store):
    assert store.live("t").version == 0 and store.live("t").is_default and store.list("t") == []
    with pytest.raises(Conflict, match="no previous retrieval profile"):
        store.rollback("t")
    rejected = store.record("t", {"fusion": "rrf"}, {"tuned_cv": 0.5}, "not adopted", "run-1", adopt=False)
    assert (rejected.version, rejected.status) == (1, "rejected") and store.live("t").version == 0
    adopted = store.record("t", {"fusion": "dbsf", "candidates": 50}, {"tuned_cv": 0.7}, "adopted", "run-2", adopt=True)
    assert store.live("t") == adopted and adopted.version == 2 and adopted.status == "live"
    assert store.previous("t") == 0
    assert store.activate("t", 1) == 2  # by hand, e.g. one the test rejected
    assert store.live("t").version == 1 and store.get("t", 2).status == "retired"
    assert store.rollback("t") == (1, 2) and store.live("t").version == 2
    with pytest.raises(NotFound, match="no retrieval profile version 9"):
        store.activate("t", 9)
    assert store.activate("t", 0) == 2 and store.live("t").is_default  # back to the global default
    assert store.live("other").version == 0  # tenants do not share profiles
    assert [p.version for p in store.list("t")] == [1, 2]


def test_tuning_runs_lifecycle(store):
    run = store.create_tuning("t", {"folds": 5}, trigger="build")
    assert (run.status, run.trigger, run.request, run.progress) == ("queued", "build", {"folds": 5}, {})
    store.start_tuning(run.id)
    store.tuning_progress(run.id, {"folds_done": 2})
    got = store.tuning("t", run.id)
    assert got.status == "running" and got.progress == {"folds_done": 2} and got.started_at
    store.finish_tuning(run.id, {"decision": "rejected"}, None)
    assert store.tuning("t", run.id).result == {"decision": "rejected"}
    assert store.tuning("other", run.id) is None  # another tenant cannot read it
    failed = store.create_tuning("t", {})
    store.fail_tuning(failed.id, "ValueError: boom")
    assert [r.id for r in store.tunings("t")] == [failed.id, run.id]
    assert store.tuning("t", failed.id).error == "ValueError: boom"
