"""Congruence tests: every backend must answer the same way (edge, local mode, a real server)."""

from __future__ import annotations

import json
import math
import uuid
import operator

import numpy as np
import pytest

from conftest import COMMON_TERM, DIM, N, RARE_TERM, load
from store import EdgeStore, Hit, Point, SparseVector, StoreError, VectorStore
from store.base import DENSE
from store.common import DenseIndex

FILTERS = [
    {"tenant": "acme"},
    {"tenant": ["acme", "globex"]},
    {"n": 7},
    {"flag": True},
    {"metadata.year": {"gte": 2010, "lt": 2015}},
    {"metadata.year": {"gt": 2020}},
    {"metadata.lang": "de"},
    {"doc_ids": "d3"},  # array field: matches when any element does
    {"doc_ids": ["d1", "d2"]},
    {"tenant": "acme", "metadata.lang": "en", "metadata.year": {"lte": 2012}},
    {"access": ["*", "u:user1", "g:group2"]},  # a principal's tokens (an empty list matches none of them)
    {"access": ["u:user3", "g:group0"], "tenant": "acme"},
]
BAD_FILTERS = [
    {"tenant": 1.5},
    {"tenant": []},
    {"tenant": [1, "a"]},
    {"tenant": [True, False]},
    {"tenant": None},
    {"metadata.year": {"between": [1, 2]}},
    {"metadata.year": {}},
    {"metadata.year": {"gte": "2010"}},
    {"metadata..year": 1},
    "tenant=acme",
    {"tenant": 2**63},  # past the engines' 64-bit integers
    {"tenant": [1, -(2**63) - 1]},
    {"metadata.year": {"gte": 10**400}},
    {"tenant": "\ud800"},  # a lone surrogate: no UTF-8 string
]
RANGE_OPS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _values(payload: dict, key: str) -> list:
    value = payload
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return []
        value = value[part]
    return value if isinstance(value, list) else [value]


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b  # True must not match 1


def matches(payload: dict, filters: dict) -> bool:
    for key, cond in filters.items():
        values = _values(payload, key)
        if isinstance(cond, dict):
            ok = any(all(RANGE_OPS[op](v, bound) for op, bound in cond.items()) for v in values)
        elif isinstance(cond, list):
            ok = any(_same(v, c) for v in values for c in cond)
        else:
            ok = any(_same(v, cond) for v in values)
        if not ok:
            return False
    return True


def queries(seed: int = 11, count: int = 4):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        dense = rng.normal(size=DIM).astype(np.float32)
        terms = sorted(rng.choice(np.arange(1, 60), size=3, replace=False).tolist())
        yield dense, SparseVector([COMMON_TERM, *terms], [0.5, *rng.uniform(0.5, 2.0, size=3).round(3).tolist()])


def assert_same_hits(got: list[Hit], want: list[Hit]) -> None:
    assert [h.id for h in got] == [h.id for h in want]
    for g, w in zip(got, want):
        assert g.score == pytest.approx(w.score, abs=1e-4)
        assert g.payload == w.payload


def assert_sorted(hits: list[Hit]) -> None:
    assert hits == sorted(hits, key=lambda h: (-h.score, h.id))


def test_is_a_vector_store(store):
    assert isinstance(store, VectorStore)


def test_collections(store):
    assert store.list_collections() == []
    assert not store.has_collection("docs")
    store.create_collection("docs", DIM, keyword_indexes=["tenant"])
    store.create_collection("other", 4)
    assert store.has_collection("docs")
    assert store.list_collections() == ["docs", "other"]
    with pytest.raises(StoreError):
        store.create_collection("docs", DIM)
    store.delete_collection("docs")
    store.delete_collection("docs")  # absent: no error
    assert not store.has_collection("docs")
    assert store.list_collections() == ["other"]
    with pytest.raises(StoreError):
        store.count("docs")


def test_upsert_is_idempotent_and_counts(store, points):
    name = load(store, points)
    store.upsert(name, points[:50])
    assert store.count(name) == N
    changed = [Point(p.id, p.dense, p.sparse, {**p.payload, "tenant": "zeta"}) for p in points[:3]]
    store.upsert(name, changed)
    assert store.count(name) == N
    assert store.count(name, {"tenant": "zeta"}) == 3


@pytest.mark.parametrize("filters", FILTERS, ids=str)
def test_filters_count(store, points, filters):
    name = load(store, points)
    expected = sum(matches(p.payload, filters) for p in points)
    assert 0 < expected < N
    assert store.count(name, filters) == expected


@pytest.mark.parametrize("filters", FILTERS, ids=str)
def test_filters_apply_inside_every_search(store, points, filters):
    name = load(store, points)
    expected = {p.id for p in points if matches(p.payload, filters)}
    limit = min(10, len(expected))
    dense, sparse = next(queries())
    for hits in (
        store.search_dense(name, dense, limit, filters=filters),
        store.search_hybrid(name, dense, sparse, limit, candidates=N, fusion="rrf", filters=filters),
        store.search_hybrid(name, dense, sparse, limit, candidates=N, fusion="dbsf", filters=filters),
    ):
        # A post-filter would return fewer than `limit` hits.
        assert len(hits) == limit
        assert {h.id for h in hits} <= expected
    # Every point has the common term, so sparse search can also fill the limit.
    hits = store.search_sparse(name, sparse, limit, filters=filters)
    assert len(hits) == limit and {h.id for h in hits} <= expected


def test_retrieve_round_trips_vectors(store, points):
    name = load(store, points)
    wanted = [points[5].id, "00000000-0000-4000-8000-000000000000", points[2].id]
    records = store.retrieve(name, wanted, with_vectors=True)
    assert [r.id for r in records] == [points[5].id, points[2].id]  # request order, missing ids dropped
    for record, point in zip(records, (points[5], points[2])):
        assert record.payload == point.payload
        np.testing.assert_allclose(record.dense, point.dense, atol=1e-6)
        assert record.sparse.indices == point.sparse.indices
        np.testing.assert_allclose(record.sparse.values, point.sparse.values, rtol=1e-6)
    bare = store.retrieve(name, [points[5].id])
    assert bare[0].dense is None and bare[0].sparse is None and bare[0].payload == points[5].payload
    # Named vectors only, without the payload: what highlighting reads for each hit.
    only = store.retrieve(name, [points[5].id, points[2].id], with_vectors=[DENSE], with_payload=False)
    assert [r.id for r in only] == [points[5].id, points[2].id]
    for record, point in zip(only, (points[5], points[2])):
        assert record.payload == {} and record.sparse is None and record.windows is None
        np.testing.assert_allclose(record.dense, point.dense, atol=1e-6)


@pytest.mark.parametrize("filters", [None, {"tenant": "globex"}], ids=str)
def test_scroll_pages_through_everything_once(store, points, filters):
    name = load(store, points)
    seen, offset, pages = [], None, 0
    while True:
        records, offset = store.scroll(name, filters=filters, limit=37, offset=offset)
        seen += [r.id for r in records]
        pages += 1
        if offset is None:
            break
    expected = {p.id for p in points if filters is None or matches(p.payload, filters)}
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    assert pages == math.ceil(len(expected) / 37) or pages == math.ceil(len(expected) / 37) + 1
    records, _ = store.scroll(name, limit=1, with_vectors=True)
    assert records[0].dense is not None and records[0].sparse is not None


def test_delete_points(store, points):
    name = load(store, points)
    gone = [p.id for p in points[:10]]
    store.delete_points(name, gone)
    store.delete_points(name, [])
    assert store.count(name) == N - 10
    assert store.retrieve(name, gone) == []
    for dense, sparse in queries():
        hits = store.search_hybrid(name, dense, sparse, 50, candidates=100)
        assert not {h.id for h in hits} & set(gone)
    assert store.search_dense(name, points[0].dense, 1)[0].id != points[0].id


def test_set_payloads_changes_only_the_given_fields_and_the_filters_see_it(store, points):
    """An access change to a built snapshot (index_snapshots/access.py): each point takes its own new `access`,
    the keyword-indexed filter matches the new tokens inside a search, vectors and other fields stay."""
    name = load(store, points)
    changed = {p.id: {"access": [f"u:new{i}"], "doc_ids": ["moved"]} for i, p in enumerate(points[:20])}
    unknown = str(uuid.uuid4())
    store.set_payloads(name, {**changed, unknown: {"access": ["u:ghost"]}})
    store.set_payloads(name, {})
    assert store.count(name) == N and store.retrieve(name, [unknown]) == []  # nothing created
    for before, after in zip(points[:20], store.retrieve(name, list(changed), with_vectors=True)):
        assert after.payload == {**before.payload, **changed[before.id]}
        assert np.allclose(after.dense, before.dense, atol=1e-6) and list(after.sparse.indices) == before.sparse.indices
    assert store.count(name, {"access": ["u:new3", "u:new7"]}) == 2
    assert store.count(name, {"doc_ids": "moved"}) == 20
    # The old tokens of those points no longer match; the search with the filter finds the new holder only.
    hits = store.search_dense(name, points[3].dense, 5, filters={"access": ["u:new3"]})
    assert [h.id for h in hits] == [points[3].id] and hits[0].payload["access"] == ["u:new3"]
    untouched = {p.id: p.payload for p in points[20:]}
    assert all(r.payload == untouched[r.id] for r in store.retrieve(name, list(untouched)))


def test_nested_array_filters_match_any_element(store, points):
    """`sources[].twins` (a list inside each element of a list): how an access change finds the points that name a
    document as a near-duplicate twin."""
    nested = {p.id: {"sources": [{"doc_id": "a", "twins": []}, {"doc_id": "b", "twins": [f"t{i % 3}"]}]}
              for i, p in enumerate(points[:9])}
    # Unindexed (a collection built before the index) and keyword-indexed, as the builder makes them now.
    for name, indexes in (("plain", ()), ("indexed", ("doc_ids", "sources[].twins"))):
        store.create_collection(name, DIM, keyword_indexes=indexes)
        store.upsert(name, points)
        store.set_payloads(name, nested)
        assert store.count(name, {"sources[].twins": "t1"}) == 3
        assert store.count(name, {"sources[].twins": ["t0", "t2"]}) == 6
        records, _ = store.scroll(name, filters={"sources[].doc_id": "b"}, limit=50)
        assert {r.id for r in records} == set(nested)


def test_dense_is_exact(store, points):
    name = load(store, points)
    matrix = np.stack([p.dense for p in points])
    for dense, _ in queries():
        scores = matrix @ (dense / np.linalg.norm(dense))
        best = np.argsort(-scores)[:10]
        hits = store.search_dense(name, dense, 10)
        assert [h.id for h in hits] == [points[i].id for i in best]
        np.testing.assert_allclose([h.score for h in hits], scores[best], atol=1e-4)


def test_sparse_uses_idf(store, points):
    name = load(store, points)
    hits = store.search_sparse(name, SparseVector([COMMON_TERM, RARE_TERM], [1.0, 1.0]), 5)
    # Raw weights favour point 1 (10.0 on the common term); IDF makes the rare term win.
    assert hits[0].id == points[0].id
    assert hits[1].id == points[1].id
    # Qdrant's IDF: ln((N - df + 0.5) / (df + 0.5) + 1)
    idf = {t: math.log((N - df + 0.5) / (df + 0.5) + 1) for t, df in [(COMMON_TERM, N), (RARE_TERM, 1)]}
    assert hits[0].score == pytest.approx(points[0].sparse.values[0] * idf[COMMON_TERM] + idf[RARE_TERM], rel=1e-4)
    assert hits[1].score == pytest.approx(10.0 * idf[COMMON_TERM], rel=1e-4)


def test_congruent_with_reference_backend(store, other, points):
    name = load(store, points)
    load(other, points)
    for filters in (None, {"tenant": ["acme", "initech"]}, {"metadata.year": {"gte": 2005}},
                    {"access": ["*", "u:user2", "g:group1"]}):
        for dense, sparse in queries():
            calls = [
                ("search_dense", (dense, 12)),
                ("search_sparse", (sparse, 12)),
                ("search_hybrid", (dense, sparse, 12, 30, "rrf")),
                ("search_hybrid", (dense, sparse, 12, 30, "rrf", 2)),
                ("search_hybrid", (dense, sparse, 12, 30, "dbsf")),
            ]
            for method, args in calls:
                got = getattr(store, method)(name, *args, filters=filters)
                want = getattr(other, method)(name, *args, filters=filters)
                assert len(got) == 12
                assert_sorted(got)
                assert_same_hits(got, want)


def test_searches_without_payloads_rank_alike_and_hand_over_no_payload(store, other, points):
    # The first stage fuses 100s of candidates and reads only the kept ones' payloads: the ranking must not depend
    # on whether payloads came along.
    name = load(store, points)
    load(other, points)
    for filters in (None, {"tenant": ["acme", "initech"]}):
        for dense, sparse in queries():
            for method, query in (("search_dense", dense), ("search_sparse", sparse)):
                bare = getattr(store, method)(name, query, 12, filters=filters, with_payload=False)
                full = getattr(store, method)(name, query, 12, filters=filters)
                assert [h.id for h in bare] == [h.id for h in full]
                assert [h.score for h in bare] == pytest.approx([h.score for h in full], abs=1e-6)
                assert all(h.payload == {} for h in bare) and all(h.payload for h in full)
                assert_same_hits(bare, getattr(other, method)(name, query, 12, filters=filters, with_payload=False))


def test_rrf_scores_follow_k(store, points):
    name = load(store, points)
    dense, sparse = next(queries())
    for k in (1, 60):
        hits = store.search_hybrid(name, dense, sparse, 5, candidates=20, fusion="rrf", rrf_k=k)
        # The best possible RRF score is first place in both lists: 2 / k.
        assert 0 < hits[0].score <= 2 / k + 1e-6
        assert hits[0].score > 1 / (k + 20)


def test_ties_come_back_in_id_order(store, points):
    name = load(store, points)
    # Copies of point 3 under other ids tie exactly with it on every search.
    twins = [
        Point(f"00000000-0000-4000-8000-00000000000{i}", points[3].dense, points[3].sparse, {"twin": i})
        for i in range(4)
    ]
    store.upsert(name, twins)
    hits = store.search_dense(name, points[3].dense, 3)
    assert [h.id for h in hits] == sorted([t.id for t in twins] + [points[3].id])[:3]
    hits = store.search_hybrid(name, points[3].dense, points[3].sparse, 5, candidates=20, fusion="rrf")
    assert_sorted(hits)
    assert sorted(h.id for h in hits) == sorted([t.id for t in twins] + [points[3].id])


@pytest.mark.parametrize("bad", BAD_FILTERS, ids=str)
def test_invalid_filters_raise_value_error(store, points, bad):
    name = load(store, points[:5])
    for call in (
        lambda: store.count(name, bad),
        lambda: store.scroll(name, filters=bad),
        lambda: store.search_dense(name, points[0].dense, 3, filters=bad),
        lambda: store.search_hybrid(name, points[0].dense, points[0].sparse, 3, 10, filters=bad),
    ):
        with pytest.raises(ValueError) as info:
            call()
        shown = repr(bad) if isinstance(bad, str) else repr(next(iter(bad.values())))
        assert shown in str(info.value) or repr(next(iter(bad))) in str(info.value)


def test_invalid_arguments_raise_value_error(store, points):
    name = load(store, points[:5])
    p = points[0]
    with pytest.raises(ValueError, match="'sum'"):
        store.search_hybrid(name, p.dense, p.sparse, 3, 10, fusion="sum")
    with pytest.raises(ValueError, match="rrf_k"):
        store.search_hybrid(name, p.dense, p.sparse, 3, 10, fusion="rrf", rrf_k=0)
    with pytest.raises(ValueError, match="limit"):
        store.search_dense(name, p.dense, 0)
    with pytest.raises(ValueError, match="not-a-uuid"):
        store.retrieve(name, ["not-a-uuid"])
    with pytest.raises(ValueError, match="collection name"):
        store.create_collection("../escape", DIM)


def test_engine_errors_keep_their_cause(store, points):
    name = load(store, points[:5])
    with pytest.raises(StoreError) as info:
        store.search_dense(name, [1.0, 2.0], 3)  # wrong dimension
    assert info.value.__cause__ is not None


def _with_windows(points: list[Point], seed: int = 5) -> list[Point]:
    rng = np.random.default_rng(seed)
    out = []
    for p in points:
        w = rng.normal(size=(int(rng.integers(1, 6)), DIM)).astype(np.float32)
        out.append(Point(p.id, p.dense, p.sparse, p.payload, windows=w / np.linalg.norm(w, axis=1, keepdims=True)))
    return out


def test_rescore_scores_each_leg_of_the_given_points(store, other, points):
    points = _with_windows(points)
    for s in (store, other):
        s.create_collection("win", DIM, windows=True)
        s.upsert("win", points)
    by_id = {p.id: p for p in points}
    for dense, sparse in queries():
        ids = [p.id for p in points[::17]]
        got = store.rescore("win", ids, dense=dense, sparse=sparse, windows=dense)
        want = other.rescore("win", ids, dense=dense, sparse=sparse, windows=dense)
        assert {i: set(legs) for i, legs in got.items()} == {i: set(legs) for i, legs in want.items()}
        for i, legs in want.items():
            assert got[i] == pytest.approx(legs, abs=1e-4)
        q = dense / np.linalg.norm(dense)
        for i in ids:
            p = by_id[i]
            assert got[i]["dense"] == pytest.approx(float(p.dense @ q), abs=1e-4)
            # max-sim with one query vector: the best window's cosine
            assert got[i]["windows"] == pytest.approx(float((p.windows @ q).max()), abs=1e-4)
            shared = set(p.sparse.indices) & set(sparse.indices)
            assert ("bm25" in got[i]) == bool(shared)
        # Only the points asked for, and only the legs asked for.
        assert set(got) == set(ids)
        assert store.rescore("win", ids[:2], dense=dense) == {i: {"dense": pytest.approx(got[i]["dense"], abs=1e-4)}
                                                             for i in ids[:2]}
    assert store.rescore("win", [], dense=dense) == {}


# Largest score error allowed against float32, at these tests' 16 dimensions. turbo8 rotates each vector and keeps 8
# bits a dimension: measured at 16 dimensions its error reached 4.4e-3, at the model's 384 dimensions 1.3e-3.
COMPACT_TOLERANCE = {"float16": 2e-3, "turbo8": 1e-2}


@pytest.mark.parametrize("datatype", ["float16", "turbo8"])
def test_compact_vectors_score_within_their_precision_on_both_backends(store, other, points, datatype):
    """Vectors stored as float16 or turbo8 (the embedded engine's default: Qdrant's TurboQuant, 8 bits a dimension)
    read back and score within their precision of the float32 values, dense and windows alike, on both backends;
    a datatype no backend knows is refused."""
    tolerance = COMPACT_TOLERANCE[datatype]
    points = _with_windows(points, seed=11)
    for s in (store, other):
        s.create_collection("half", DIM, windows=True, datatype=datatype)
        s.upsert("half", points)
    by_id = {p.id: p for p in points}
    for dense, sparse in queries():
        q = dense / np.linalg.norm(dense)
        ids = [p.id for p in points[::11]]
        # qdrant-client's local mode keeps float32 whatever the datatype: each backend is held to the truth.
        for s in (store, other):
            got = s.rescore("half", ids, dense=dense, windows=dense)
            for i in ids:
                assert got[i]["dense"] == pytest.approx(float(by_id[i].dense @ q), abs=tolerance)
                assert got[i]["windows"] == pytest.approx(float((by_id[i].windows @ q).max()), abs=tolerance)
        truth = sorted(points, key=lambda p: -float(p.dense @ q))
        hits = [h.id for h in store.search_dense("half", dense, 5)]
        # Every hit scores within the tolerance of the true fifth best: only near-ties may trade places.
        assert all(float(by_id[h].dense @ q) >= float(truth[4].dense @ q) - 2 * tolerance for h in hits)
        if datatype == "float16":
            assert hits == [h.id for h in other.search_dense("half", dense, 5)]
    (record,) = store.retrieve("half", [points[0].id], with_vectors=True)
    assert np.asarray(record.dense) == pytest.approx(points[0].dense / np.linalg.norm(points[0].dense),
                                                     abs=tolerance)
    with pytest.raises(ValueError, match="datatype 'int4' is not one of"):
        store.create_collection("bad", DIM, datatype="int4")


def test_rescore_by_a_matrix_of_query_vectors_sums_each_rows_max_sim(store, other, points):
    # A long query embedded in several windows: each point scores the sum over the query's rows of the best
    # window match (Qdrant's multivector max-sim), the same on both backends.
    points = _with_windows(points, seed=9)
    for s in (store, other):
        s.create_collection("win", DIM, windows=True)
        s.upsert("win", points)
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(3, DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    ids = [p.id for p in points[::13]]
    got = store.rescore("win", ids, windows=rows)
    want = other.rescore("win", ids, windows=rows)
    by_id = {p.id: p for p in points}
    for i in ids:
        expected = float((by_id[i].windows @ rows.T).max(axis=0).sum())
        assert got[i]["windows"] == pytest.approx(expected, abs=1e-4)
        assert want[i]["windows"] == pytest.approx(expected, abs=1e-4)


class _Spy:
    """An engine handle whose query calls are recorded, to see the search parameters a store sends."""

    def __init__(self, inner, calls: list) -> None:
        self._inner, self._calls = inner, calls

    def __getattr__(self, attr):
        method = getattr(self._inner, attr)
        if attr not in ("query", "query_points"):
            return method

        def recorded(*args, **kwargs):
            self._calls.append((args, kwargs))
            return method(*args, **kwargs)

        return recorded


def test_a_dense_graph_is_built_with_its_parameters_searched_with_its_ef_and_answers_as_the_exact_scan(
        store, other, points, tmp_path):
    """A collection made with a DenseIndex: the engine's collection carries its m and ef_construct, the store
    records it (the embedded engine's across a reopen), dense searches send its ef (a server's; local mode searches
    exactly whatever it is sent), and at this size, under every filter, the answers are the reference's exact ones.
    A collection made without one is scanned exactly, as before the graph existed."""
    index = DenseIndex(m=8, ef_construct=40, ef=24)
    store.create_collection("graph", DIM, keyword_indexes=["tenant", "doc_ids", "metadata.lang", "access"],
                            dense_index=index)
    store.upsert("graph", points)
    store.flush("graph")  # the embedded engine builds the graph here
    name = load(other, points)
    assert store.dense_index("graph") == index
    load(store, points, "plain")
    assert store.dense_index("plain") is None
    if isinstance(store, EdgeStore):
        config = json.loads((store.path / "graph" / "edge_config.json").read_text())["vectors"][DENSE]["hnsw_config"]
        calls: list = []
        store._shards["graph"] = _Spy(store._shards["graph"], calls)
        sent = lambda: [args[0].params for args, _ in calls] + [p.params for args, _ in calls  # noqa: E731
                                                                for p in (args[0].prefetches or [])]
    else:
        config = store.client.get_collection("graph").config.params.vectors[DENSE].hnsw_config.model_dump()
        calls = []
        store.client = _Spy(store.client, calls)
        sent = lambda: [kw.get("search_params") for _, kw in calls] + [p.params for _, kw in calls  # noqa: E731
                                                                       for p in (kw.get("prefetch") or [])]
    assert (config["m"], config["ef_construct"]) == (8, 40)
    for filters in (None, {"tenant": ["acme", "initech"]}, {"access": ["*", "u:user2", "g:group1"]}):
        for dense, sparse in queries():
            assert_same_hits(store.search_dense("graph", dense, 12, filters=filters),
                             other.search_dense(name, dense, 12, filters=filters))
            assert_same_hits(store.search_hybrid("graph", dense, sparse, 12, 30, "rrf", filters=filters),
                             other.search_hybrid(name, dense, sparse, 12, 30, "rrf", filters=filters))
    dense_params = [p for p in sent() if p is not None]
    if not getattr(store, "_local", False):
        assert dense_params and all(p.hnsw_ef == 24 and not p.exact for p in dense_params)
    else:
        assert dense_params == []
    if isinstance(store, EdgeStore):
        store.close()
        again = EdgeStore(store.path)
        try:
            assert again.dense_index("graph") == index and again.dense_index("plain") is None
        finally:
            again.close()
