"""Which dense index a snapshot gets (SNAPDEX_DENSE_INDEX and its threshold), and what its config records."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from index_snapshots.builder import DENSE_KEY, IndexConfig
from ingest.chunking import ChunkerConfig
from snapdex.settings import Settings
from store.common import DenseIndex, dense_index_for


def test_auto_walks_the_graph_from_the_threshold_on_and_the_other_modes_ignore_the_size():
    assert dense_index_for("auto", 99, 100) is None
    assert dense_index_for("auto", 100, 100) == DenseIndex()
    assert dense_index_for("exact", 10**9, 100) is None
    assert dense_index_for("hnsw", 1, 100) == DenseIndex()
    mine = DenseIndex(m=8, ef_construct=50, ef=20)
    assert dense_index_for("hnsw", 1, 100, mine) is mine


def test_bad_modes_thresholds_and_parameters_are_refused_by_name():
    with pytest.raises(ValueError, match="dense index 'ivf' is not one of"):
        dense_index_for("ivf", 10, 10)
    with pytest.raises(ValueError, match="dense index threshold must be a positive int, got 0"):
        dense_index_for("auto", 10, 0)
    for field in ("m", "ef_construct", "ef"):
        with pytest.raises(ValueError, match=f"dense index {field} must be a positive int"):
            DenseIndex(**{field: 0})
    with pytest.raises(ValidationError, match="dense_index"):
        Settings(dense_index="ivf")
    with pytest.raises(ValidationError, match="dense_index_threshold"):
        Settings(dense_index_threshold=0)


def test_settings_default_to_auto_at_the_measured_threshold(monkeypatch):
    s = Settings()
    assert (s.dense_index, s.dense_index_threshold) == ("auto", 120_000)
    monkeypatch.setenv("SNAPDEX_DENSE_INDEX", "hnsw")
    monkeypatch.setenv("SNAPDEX_DENSE_INDEX_THRESHOLD", "5000")
    s = Settings()
    assert (s.dense_index, s.dense_index_threshold) == ("hnsw", 5000)


def test_only_a_graph_enters_the_snapshot_config_so_exact_snapshots_hash_as_before():
    config = IndexConfig("p", ChunkerConfig(), "m", 8, dense_index="auto", dense_index_threshold=1000)
    assert config.dense_config(999) == {}
    assert config.dense_config(1000) == {DENSE_KEY: {"index": "hnsw", "m": DenseIndex().m,
                                                     "ef_construct": DenseIndex().ef_construct,
                                                     "ef": DenseIndex().ef}}
    assert DENSE_KEY not in config.canonical()
    assert IndexConfig("p", ChunkerConfig(), "m", 8).dense_config(10**9) == {}  # exact unless told
    assert DenseIndex.from_canonical(config.dense_config(1000)[DENSE_KEY]) == DenseIndex()
    assert DenseIndex.from_canonical(None) is None
