"""One owner for embedding: passages (a text, and optionally character spans of it) in, vectors out, through the
embedding cache and one backend.

`ingest/` decides what to embed (chunks, and the sentence windows each chunk is scored by, with their cache
keys); this service decides how: which vectors the cache already holds, which texts go through the model, in
which batches, how spans are pooled from a text's own forward pass (late) and which spans that pass did not reach
are embedded alone. A new backend implements the `Embedder` protocol (and `embed_spans` for late windows) and
touches nothing else.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np

from encoders.dense import Embedder, EmbeddingCache, HashEmbedder, SentenceTransformerEmbedder
from options import EMBEDDER_BACKENDS, FAKE_EMBEDDER, EmbedderBackend

T = TypeVar("T")
Gate = Callable[[], AbstractContextManager]  # entered around each call of the model

BACKENDS = EMBEDDER_BACKENDS
Backend = EmbedderBackend
FAKE_BACKEND = FAKE_EMBEDDER
FAKE_DIM = 384  # MiniLM's width, so stored vectors cost what a model's do


def open_embedder(backend: str, folder: Path | None, models_dir: Path, batch_size: int = 64) -> Embedder:
    """The backend named by SNAPDEX_EMBEDDER_BACKEND. Nothing loads here: the model loads on first use, and an
    ONNX export (when its folder under `models_dir` is missing) runs then, in a child process."""
    if backend == FAKE_BACKEND:
        return HashEmbedder(dim=FAKE_DIM)
    if backend == "torch":
        return SentenceTransformerEmbedder(folder, batch_size=batch_size)
    from encoders.onnx_backend import ONNX_BACKENDS, OnnxEmbedder  # onnxruntime itself loads on first use

    if backend not in ONNX_BACKENDS:
        raise ValueError(f"embedder backend {backend!r} is not one of {(*BACKENDS, FAKE_BACKEND)}")
    return OnnxEmbedder(folder, models_dir, ONNX_BACKENDS[backend], batch_size=batch_size)


@dataclass(frozen=True)
class Part:
    """A character span of a passage, with the text that stands for it when it is embedded alone."""

    start: int
    end: int
    text: str
    key: str  # cache key of `text` embedded alone


@dataclass(frozen=True)
class Passage:
    key: str   # cache key of the text's own vector
    text: str
    # Its parts, asked for only when the cache lacks them (planning them may cost, e.g. sentence splitting).
    parts: Callable[[], Sequence[Part]] | None = None
    # Late: the parts are pooled from the text's own forward pass and cached together under this key; a part the
    # pass did not reach is embedded alone. None: every part is embedded alone (and cached by its own key).
    late_key: str | None = None


@dataclass
class Embedded:
    vectors: dict[str, np.ndarray]  # passage key -> its vector
    parts: dict[str, np.ndarray]    # passage key -> its parts' vectors (n, dim); passages without parts absent
    embedded: int                   # passages whose text went through the model now (the rest: from the cache)


class EmbeddingService:
    """Vectors for keyed texts and passages: cached ones are reused, only the rest reach the backend."""

    def __init__(self, backend: Embedder, cache: EmbeddingCache) -> None:
        self.backend = backend
        self.cache = cache
        # Wall seconds inside the backend's calls (tokenising, forward pass, pooling) and the texts sent, for
        # /metrics: what ingest costs beyond the model, read from the same calls (a raw-model timing taken at
        # another time is not comparable: CPU speed drifts).
        self.model_seconds = 0.0
        self.model_texts = 0
        self._counting = threading.Lock()

    def _count(self, started: float, texts: int) -> None:
        with self._counting:
            self.model_seconds += time.perf_counter() - started
            self.model_texts += texts

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    def _model(self, gate: Gate | None, texts: int, call: Callable[[], T]) -> T:
        """One call of the backend, inside `gate` (a context manager factory) when given, and counted."""
        with gate() if gate is not None else nullcontext():
            started = time.perf_counter()
            out = call()
            self._count(started, texts)
        return out

    def texts(self, items: dict[str, str], batch_size: int = 256, gate: Gate | None = None
              ) -> tuple[dict[str, np.ndarray], int]:
        """items: cache key -> text. Returns (key -> vector, how many were embedded now). `gate`: entered around
        each call of the model (ingest uses it to keep parsing off the CPU meanwhile)."""
        keys = list(items)
        found = self.cache.get_many(self.model_id, keys)
        missing = [k for k in keys if k not in found]
        for i in range(0, len(missing), batch_size):
            part = missing[i : i + batch_size]
            fresh = dict(zip(part, self._model(gate, len(part), lambda: self.backend.embed([items[k] for k in part]))))
            self.cache.put_many(self.model_id, fresh)
            found.update(fresh)
        return found, len(missing)

    def passages(self, passages: Sequence[Passage], batch_size: int = 256, gate: Gate | None = None) -> Embedded:
        late = [p for p in passages if p.parts is not None and p.late_key is not None]
        alone = [p for p in passages if p.parts is not None and p.late_key is None]
        plain = [p for p in passages if p.parts is None or p.late_key is None]
        if late and not hasattr(self.backend, "embed_spans"):
            raise ValueError(f"embedder {self.model_id} cannot pool spans: set SNAPDEX_WINDOW_METHOD=standalone")
        vectors, embedded = self.texts({p.key: p.text for p in plain}, batch_size, gate)
        cached = self.cache.get_many(self.model_id, [k for p in late for k in (p.key, p.late_key)])
        vectors.update({p.key: cached[p.key] for p in late if p.key in cached})
        parts: dict[str, np.ndarray] = {p.key: cached[p.late_key].reshape(-1, self.backend.dim)
                                        for p in late if p.late_key in cached}
        if alone:
            plans = {p.key: list(p.parts()) for p in alone}  # type: ignore[misc]  (parts is set: see `alone`)
            found, _ = self.texts({q.key: q.text for plan in plans.values() for q in plan}, batch_size, gate)
            parts.update({k: self._stack([found[q.key] for q in plan]) for k, plan in plans.items()})
        todo = [p for p in late if p.key not in vectors or p.key not in parts]
        embedded += self._pool_late(todo, vectors, parts, batch_size, gate)
        return Embedded(vectors, {k: m for k, m in parts.items() if len(m)}, embedded)

    def _pool_late(self, todo: list[Passage], vectors: dict[str, np.ndarray], parts: dict[str, np.ndarray],
                   batch_size: int, gate: Gate | None) -> int:
        """One forward pass per passage for its vector and its parts' vectors; parts past the model's input are
        embedded alone. Both are cached per batch, so an interrupted run keeps what it paid for."""
        plans = {p.key: list(p.parts()) for p in todo}  # type: ignore[misc]  (late passages have parts)
        for i in range(0, len(todo), batch_size):
            batch = todo[i : i + batch_size]
            vecs, pooled = self._model(gate, len(batch), lambda: self.backend.embed_spans(  # type: ignore[attr-defined]
                [p.text for p in batch], [[(q.start, q.end) for q in plans[p.key]] for p in batch]))
            overflow = {q.key: q.text for p, got in zip(batch, pooled) for q, v in zip(plans[p.key], got) if v is None}
            alone, _ = self.texts(overflow, batch_size, gate) if overflow else ({}, 0)
            fresh: dict[str, np.ndarray] = {}
            for p, vec, got in zip(batch, vecs, pooled):
                vectors[p.key] = fresh[p.key] = vec
                parts[p.key] = fresh[p.late_key] = self._stack(  # type: ignore[index]
                    [v if v is not None else alone[q.key] for q, v in zip(plans[p.key], got)])
            self.cache.put_many(self.model_id, fresh)
        return len(todo)

    def _stack(self, rows: list[np.ndarray]) -> np.ndarray:
        return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, self.backend.dim), np.float32)
