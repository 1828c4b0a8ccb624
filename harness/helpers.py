"""Shared test wiring: a Runtime on a temporary folder with the deterministic embedder."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from encoders.dense import HashEmbedder
from encoders.lexical import term_counts
from index_snapshots.builder import IndexConfig, SnapshotBuilder, _Layout
from index_snapshots.service import run_ingest_job
from ingest.catalog import ChunkRow, DocumentRow
from ingest.chunking import ChunkerConfig
from ingest.jobs import NewDocument
from ingest.windows import windows_of
from snapdex.runtime import Runtime
from snapdex.settings import Settings
from store.types import Point


def make_runtime(tmp_path: Path, **overrides) -> Runtime:
    settings = Settings(**{"data_dir": tmp_path / "data", "chunk_size": 64, "chunk_overlap": 8, **overrides})
    return Runtime(settings, embedder=HashEmbedder(dim=32))


def text_doc(doc_id: str, text: str, **metadata) -> NewDocument:
    return NewDocument(doc_id, text.encode("utf-8"), metadata)


def ingest(rt: Runtime, docs: list[NewDocument], tenant: str = "default"):
    job_id = rt.jobs.create(tenant, docs)
    if run_ingest_job(rt.ingestor, rt.jobs, job_id, access=rt.access_sync):
        rt.snapshots.build_pending(tenant)
    return rt.jobs.get(job_id)


def embedded_texts(rt: Runtime, tenant: str, doc_id: str, chunk_hashes=None) -> set[str]:
    """Content hashes a document sends to the model: its chunks, and their sentence windows when those are
    embedded alone (late windows are pooled from the chunk's own pass)."""
    doc = rt.catalog.get_document(tenant, doc_id)
    hashes = list(doc.chunk_hashes if chunk_hashes is None else chunk_hashes)
    out = set(hashes)
    for h, row in rt.catalog.chunks(tenant, hashes).items():
        if rt.window_config and rt.window_config.method == "standalone":
            out |= set(windows_of(row.text, doc.title, rt.window_config))
    return out


def builder_points(docs_per_chunk: list[list[DocumentRow]], dim: int, seed: int = 3, vocabulary: int = 40,
                   words: tuple[int, int] = (3, 12), every_source: bool = False) -> list[Point]:
    """The points a build writes for these chunks, each shared by its documents (the builder's own `_point`), with
    random unit vectors and texts of `words` (low, high) random words from a vocabulary of `vocabulary`.
    `every_source`: the layout ingest/filters.py SOURCE_METADATA names, every source with its document's metadata."""
    builder = SnapshotBuilder.__new__(SnapshotBuilder)
    builder.config = IndexConfig("p", ChunkerConfig(), "fake-model", dim, windows=None)
    rng = np.random.default_rng(seed)
    hashes = [uuid.UUID(int=i + 1).hex * 2 for i in range(len(docs_per_chunk))]
    by_id: dict[str, DocumentRow] = {}
    for h, docs in zip(hashes, docs_per_chunk):
        for d in docs:
            d.chunk_hashes.append(h)
            by_id[d.doc_id] = d
    layouts = {doc_id: _Layout(d) for doc_id, d in by_id.items()}
    points = []
    for h, docs in zip(hashes, docs_per_chunk):
        # Distinct words and counts per chunk: BM25 scores hardly ever tie, so every engine orders them alike.
        text = " ".join(f"w{j}" for j in rng.choice(vocabulary, size=int(rng.integers(*words))))
        vector = rng.normal(size=dim).astype(np.float32)
        point = builder._point("t", h, ChunkRow(h, text, term_counts(text)), vector / np.linalg.norm(vector),
                               sorted(docs, key=lambda d: d.doc_id), 5.0, None, layouts, 7)
        if every_source:
            for s in point.payload["sources"]:
                s.setdefault("metadata", by_id[s["doc_id"]].hit_metadata())
        points.append(point)
    return points
