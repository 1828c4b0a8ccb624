"""Request filters (ingest/filters.py) on every backend, over the payload the snapshot builder writes: each filter
holds on one document of a chunk, one its reader may read, also where documents share a chunk. Checked against a
brute-force oracle on random corpora with shared chunks, and backend against backend."""

from __future__ import annotations

import random
import pytest

from conftest import DIM
from index_snapshots.builder import KEYWORD_INDEXES
from ingest.access import Reader, document_tokens
from ingest.catalog import DocumentRow
from ingest.filters import request_filter
from harness.helpers import builder_points

TEAMS = ["hr", "eng", "legal", "board"]
TITLES = ["Handbook", "Layoffs 2027", "Roadmap", "Minutes"]
SOURCES = ["a.pdf", "b.docx", "https://x/c", None]
TAGS = ["red", "green", "blue", "gold"]
USERS = ["alice", "bob", "carol"]
GROUPS = ["eng", "board"]
RANGE_CHECK = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}


def _doc(rng: random.Random, i: int) -> DocumentRow:
    metadata = {"year": rng.randint(2018, 2027), "tags": rng.sample(TAGS, rng.randint(1, 2)),
                "score": round(rng.uniform(0, 1), 3)}
    if rng.random() < 0.8:  # some documents have no team at all
        metadata["team"] = rng.choice(TEAMS)
    roll = rng.random()
    access = None if roll < 0.25 else {"users": [], "groups": []} if roll < 0.3 else \
        {"users": rng.sample(USERS, rng.randint(0, 2)), "groups": rng.sample(GROUPS, rng.randint(0, 1))}
    return DocumentRow(tenant="t", doc_id=f"doc-{i:02d}", status="indexed", content_hash=None, raw_hash=None,
                       source=rng.choice(SOURCES), title=rng.choice(TITLES), metadata=metadata, access=access,
                       extracted={"language": "en"})


def corpus(seed: int, documents: int = 30, chunks: int = 60, every_source: bool = False):
    rng = random.Random(seed)
    docs = [_doc(rng, i) for i in range(documents)]
    # About half the chunks are shared by two or three documents (exact duplicates: one point, several sources).
    per_chunk = [rng.sample(docs, 1 if rng.random() < 0.5 else rng.randint(2, 3)) for _ in range(chunks)]
    return docs, per_chunk, builder_points(per_chunk, DIM, seed, every_source=every_source)


def _holds(values, kind: str, want) -> bool:
    values = values if isinstance(values, list) else [] if values is None else [values]
    if kind == "range":
        return any(isinstance(v, (int, float)) and not isinstance(v, bool)
                   and all(RANGE_CHECK[op](float(v), bound) for op, bound in want.items()) for v in values)
    options = want if kind == "any" else [want]
    return any(type(v) is type(o) and v == o for v in values for o in options)


def oracle(docs_per_chunk, filters: dict, reader: Reader | None) -> set[int]:
    """The chunks one of whose documents the reader may read and meets every condition."""

    def meets(d: DocumentRow) -> bool:
        fields = {"doc_id": d.doc_id, "title": d.title, "source": d.source,
                  **{f"metadata.{k}": v for k, v in d.hit_metadata().items()}}
        for key, value in filters.items():
            kind = "range" if isinstance(value, dict) else "any" if isinstance(value, list) else "match"
            if not _holds(fields.get(key), kind, {op: float(b) for op, b in value.items()} if kind == "range"
                          else value):
                return False
        return reader is None or reader.sees(document_tokens(d.access))

    return {i for i, docs in enumerate(docs_per_chunk) if any(meets(d) for d in docs)}


def random_filter(rng: random.Random, docs: list[DocumentRow]) -> dict:
    d = rng.choice(docs)  # values drawn from one document, so that filters often match something
    meta = d.hit_metadata()
    options = {
        "doc_id": lambda: d.doc_id if rng.random() < 0.7 else [d.doc_id, rng.choice(docs).doc_id],
        "title": lambda: d.title,
        "source": lambda: d.source or "a.pdf",
        "metadata.team": lambda: meta.get("team", "hr") if rng.random() < 0.7 else rng.sample(TEAMS, 2),
        "metadata.year": lambda: rng.choice([meta["year"], {"gte": meta["year"] - 1, "lt": meta["year"] + 2},
                                            {"lte": 2020}]),
        "metadata.tags": lambda: rng.choice(meta["tags"]),
        "metadata.score": lambda: {"gt": meta["score"] - 0.2},
    }
    keys = rng.sample(sorted(options), rng.randint(1, 3))
    return {k: options[k]() for k in keys}


READERS = [None, Reader.of("alice", ["eng"], True), Reader.of("bob", [], True), Reader.of("carol", ["board"], False),
           Reader.of(None, [], False), Reader.of("alice", [], False)]


def load_points(store, points, name: str = "snap") -> str:
    store.create_collection(name, DIM, keyword_indexes=KEYWORD_INDEXES)
    store.upsert(name, points)
    return name


def matched(store, name: str, flt) -> set[str]:
    records, _ = store.scroll(name, filters=flt, limit=1000)
    return {r.id for r in records}


@pytest.mark.parametrize("seed, every_source", [(1, False), (2, False), (3, True)])
def test_request_filters_match_the_oracle_on_shared_chunks(store, seed, every_source):
    """Both payload layouts: sources with metadata on shared chunks only (as built so far), and on every chunk."""
    docs, per_chunk, points = corpus(seed, every_source=every_source)
    assert any(len(p.payload["sources"]) > 1 for p in points) and any(len(p.payload["sources"]) == 1 for p in points)
    name = load_points(store, points)
    rng = random.Random(seed * 101)
    checked = nonempty = 0
    for _ in range(60):
        filters = random_filter(rng, docs)
        for reader in READERS:
            want = {points[i].id for i in oracle(per_chunk, filters, reader)}
            flt = request_filter(filters, reader, every_source)
            assert matched(store, name, flt) == want, (filters, reader)
            assert store.count(name, flt) == len(want)
            checked += 1
            nonempty += bool(want)
    assert nonempty > checked // 4  # the filters are not all empty answers


def test_a_hidden_document_sharing_a_chunk_decides_nothing(store):
    """Two documents with the same text (one point), one hidden from alice: her filters see only the other's id,
    title and metadata; an admin's filter holds on one document, never on two combined."""
    secret = DocumentRow(tenant="t", doc_id="board-minutes", status="indexed", content_hash=None, raw_hash=None,
                         source="minutes.pdf", title="Layoffs 2027", metadata={"team": "board", "year": 2027},
                         access={"users": ["carol"], "groups": []})
    shared = DocumentRow(tenant="t", doc_id="handbook", status="indexed", content_hash=None, raw_hash=None,
                         source="handbook.pdf", title="Handbook", metadata={"team": "hr", "year": 2020}, access=None)
    alone = DocumentRow(tenant="t", doc_id="leave", status="indexed", content_hash=None, raw_hash=None,
                        source=None, title="Leave", metadata={"team": "hr", "year": 2027}, access=None)
    points = builder_points([[secret, shared], [alone]], DIM)
    name = load_points(store, points)
    alice = Reader.of("alice", [], True)
    for filters in ({"doc_id": "board-minutes"}, {"title": "Layoffs 2027"}, {"source": "minutes.pdf"},
                    {"metadata.team": "board"}, {"metadata.year": {"gte": 2027}, "source": "minutes.pdf"},
                    {"metadata.team": ["board", "legal"]}):
        assert matched(store, name, request_filter(filters, alice)) == set(), filters
        assert matched(store, name, request_filter(filters, Reader.of("carol", [], True))) == {points[0].id}, filters
    for filters in ({"doc_id": "handbook"}, {"title": "Handbook"}, {"metadata.team": "hr", "metadata.year": 2020}):
        assert matched(store, name, request_filter(filters, alice)) == {points[0].id}, filters
    assert matched(store, name, request_filter({"metadata.year": 2027}, alice)) == {points[1].id}
    # The hidden document's year does not lend itself to the readable one's id.
    assert matched(store, name, request_filter({"metadata.year": {"gte": 2027}, "doc_id": "handbook"}, alice)) == set()
    assert matched(store, name, request_filter({"metadata.year": 2027}, None)) == {points[0].id, points[1].id}
    # Every condition on one document: the handbook's team and the minutes' year are no one document's.
    assert matched(store, name, request_filter({"metadata.team": "hr", "metadata.year": 2027}, None)) == \
        {points[1].id}
    assert matched(store, name, request_filter({"doc_id": "handbook", "title": "Layoffs 2027"}, None)) == set()


def test_searches_with_request_filters_are_congruent_and_filtered_inside_the_engine(store, other):
    docs, per_chunk, points = corpus(5, chunks=80)
    load_points(store, points)
    load_points(other, points)
    rng = random.Random(9)
    for _ in range(12):
        filters, reader = random_filter(rng, docs), rng.choice(READERS)
        want = {points[i].id for i in oracle(per_chunk, filters, reader)}
        flt = request_filter(filters, reader)
        query = points[rng.randrange(len(points))]
        limit = 5
        for method, args in (("search_dense", (query.dense, limit)), ("search_sparse", (query.sparse, limit)),
                             ("search_hybrid", (query.dense, query.sparse, limit, 20, "rrf"))):
            got = getattr(store, method)("snap", *args, filters=flt)
            assert [h.id for h in got] == [h.id for h in getattr(other, method)("snap", *args, filters=flt)], method
            assert {h.id for h in got} <= want
            if method == "search_dense":  # every point has a dense vector: the engine fills the limit
                assert len(got) == min(limit, len(want)), (filters, reader)


@pytest.mark.parametrize("key", ["access", "sources[].access", "sources[].doc_id", "sources", "doc_ids", "tenant",
                                 "chunk_hash", "text", "tokens", "windows", "metadata", "metadata.", "metadata.a.b",
                                 "metadata.a b", "metadata.team') OR 1=1 --", "Title", ""])
def test_only_documented_fields_may_be_filtered(key):
    with pytest.raises(ValueError) as info:
        request_filter({key: "x"}, None)
    assert repr(key[:200]) in str(info.value) and "doc_id, title, source, metadata.<field>" in str(info.value)


@pytest.mark.parametrize("filters", [{"doc_id": 3}, {"title": {"gte": 1}}, {"source": []}, {"doc_id": ["a", 1]},
                                     {"metadata.year": 2**63}, {"metadata.year": {"gt": float("inf")}},
                                     {"metadata.team": "\ud800"}, {"metadata.team": None}, ["doc_id"]])
def test_request_filter_values_are_checked(filters):
    with pytest.raises(ValueError):
        request_filter(filters, Reader.of("alice", [], True))
