"""EdgeStore specifics: persistence across processes' lifetimes, threads, open_store, filters."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import DIM, N, load
from store import ClientStore, EdgeStore, StoreError, StoreUnavailable, open_store
from store.filters import parse_filters


def test_edge_data_survives_close_and_reopen(tmp_path, points):
    first = EdgeStore(tmp_path)
    name = load(first, points)
    before = first.search_hybrid(name, points[4].dense, points[4].sparse, 10, candidates=40, fusion="rrf")
    first.close()
    with pytest.raises(StoreError, match="closed"):
        first.count(name)

    again = EdgeStore(tmp_path)
    assert again.list_collections() == [name]
    assert again.count(name) == N
    assert again.count(name, {"tenant": "acme"}) == sum(p.payload["tenant"] == "acme" for p in points)
    after = again.search_hybrid(name, points[4].dense, points[4].sparse, 10, candidates=40, fusion="rrf")
    assert [(h.id, h.score) for h in after] == [(h.id, h.score) for h in before]
    with pytest.raises(StoreError):
        again.create_collection(name, DIM)
    again.close()


def test_edge_is_usable_from_threads(tmp_path, points):
    setup = EdgeStore(tmp_path)
    name = load(setup, points[:100])
    setup.close()

    store, errors = EdgeStore(tmp_path), []

    def work(i: int) -> None:
        try:
            for j in range(5):
                store.count(name)  # first calls race to load the shard
                store.search_hybrid(name, points[i].dense, points[i].sparse, 5, candidates=20)
                store.upsert(name, points[100 + 10 * i + j : 100 + 10 * i + j + 1])
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count(name) == 100 + 4 * 5
    store.close()


def test_open_store(tmp_path):
    edge = open_store("edge", path=tmp_path)
    assert isinstance(edge, EdgeStore)
    edge.close()
    with pytest.raises(ValueError, match="'sqlite'.*'edge', 'qdrant'"):
        open_store("sqlite", path=tmp_path)
    with pytest.raises(ValueError, match="path"):
        open_store("edge")
    with pytest.raises(ValueError, match="url"):
        open_store("qdrant")


def test_unreachable_server_is_store_unavailable():
    store = ClientStore.from_url("http://127.0.0.1:9", timeout=2, check_compatibility=False)
    with pytest.raises(StoreUnavailable) as info:
        store.list_collections()
    assert info.value.retry_after > 0
    assert info.value.__cause__ is not None
    store.close()


def test_parse_filters():
    assert parse_filters(None) == parse_filters({}) == []
    (c,) = parse_filters({"metadata.year": {"gte": 2010, "lt": 2020}})
    assert (c.kind, c.key, c.value) == ("range", "metadata.year", {"gte": 2010.0, "lt": 2020.0})
    assert [c.kind for c in parse_filters({"a": "x", "b": [1, 2], "c": True})] == ["match", "any", "match"]
    with pytest.raises(ValueError, match="nan"):
        parse_filters({"a": {"gt": float("nan")}})


def test_the_embedded_backend_never_imports_qdrant_client(tmp_path):
    """qdrant-client (with grpc) costs ~35 MB of a serving process's RSS: only the server backend loads it."""
    import subprocess
    import sys

    code = ("import sys, api.main, store; s = store.open_store('edge', path=sys.argv[1]); "
            "s.create_collection('c', 4); s.close(); "
            "loaded = sorted(m for m in ('qdrant_client', 'grpc') if m in sys.modules); print(loaded); "
            "sys.exit(1 if loaded else 0)")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "q")], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ClientStore.__module__ == "store.client"  # still importable by name from the facade


def test_a_flushed_collection_survives_a_process_that_never_closed(tmp_path):
    # No write-ahead log: flush is what makes a build durable. The writer dies without close().
    script = f"""
import os, sys
sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parents[2])]!r}
from conftest import make_points, load
from store import EdgeStore
store = EdgeStore({str(tmp_path)!r})
load(store, make_points(40))
store.flush("docs")
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    again = EdgeStore(tmp_path)
    assert again.count("docs") == 40
    assert not (tmp_path / "docs" / "wal").exists()  # made without a log
    again.close()


def test_a_collection_opens_in_one_store_at_a_time(tmp_path, points):
    first = EdgeStore(tmp_path)
    name = load(first, points[:20])
    second = EdgeStore(tmp_path)
    with pytest.raises(StoreError, match="open in another EdgeStore"):
        second.count(name)
    first.close()
    assert second.count(name) == 20  # released by close()
    second.delete_collection(name)
    assert second.list_collections() == [] and not (tmp_path / ".locks" / f"{name}.lock").exists()
    second.close()


def test_a_collection_made_with_a_write_ahead_log_still_loads(tmp_path, points):
    import qdrant_edge as qe

    # As releases before this one made them: the engine's default config, with its log.
    old = qe.EdgeShard.create(str(tmp_path / "old"), qe.EdgeConfig(
        vectors={"dense": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)}))
    old.update(qe.UpdateOperation.upsert_points([qe.Point(7, {"dense": [0.5] * DIM}, {"tenant": "acme"})]))
    old.close()
    assert (tmp_path / "old" / "wal").exists()
    store = EdgeStore(tmp_path)
    assert store.count("old") == 1 and store.count("old", {"tenant": "acme"}) == 1
    store.close()
