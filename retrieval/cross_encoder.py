"""Second-stage reranking with a sentence-transformers cross-encoder read from a local folder.

The first stage scores query and chunk separately; a cross-encoder reads them together, which is slower but
orders the short list better. Only a local folder is accepted: the service never reaches a model hub.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from pathlib import Path

from retrieval.types import Candidate, Query


def _fingerprint(folder: Path) -> str:
    """Name plus a digest of every file, so two folders that share a name but differ in any file (weights,
    tokenizer, config) get different recipes and an answer can be tied to the exact model that scored it.

    `encoders.dense._fingerprint` is not reused: it reads only the weights' first MiB and ignores the tokenizer,
    and a changed vocabulary changes rerank scores just as much as changed weights do.
    """
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                content.update(block)
        entries.append((path.relative_to(folder).as_posix(), path.stat().st_size, content.hexdigest()))
    h = hashlib.sha256()
    for rel, size, digest in sorted(entries):
        # NUL and newline cannot occur in a path, so no two listings serialise to the same bytes.
        h.update(f"{rel}\0{size}\0{digest}\n".encode())
    return f"{folder.name}@{h.hexdigest()[:12]}"


def _build_cross_encoder(path: Path, max_length: int):
    """The one place the model is constructed; tests replace it to count or slow down loads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path), device="cpu", max_length=max_length)


class CrossEncoderReranker:
    """Reranks candidates by a cross-encoder's score of (query text, chunk text).

    The folder is checked and fingerprinted at construction so a bad setting fails at start-up; the weights
    load on first use (or at `load()`), once per instance however many request threads arrive together.
    """

    name = "cross-encoder"

    @classmethod
    def from_settings(cls, s) -> "CrossEncoderReranker":
        return cls(s.cross_encoder_path, s.cross_encoder_batch_size)

    def __init__(
        self, model_path: str | Path, batch_size: int = 32, max_length: int = 256, weight: float = 1.0
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_dir():
            raise ValueError(f"cross-encoder model folder {self.model_path} does not exist")
        if not (self.model_path / "config.json").is_file():
            raise ValueError(f"cross-encoder model folder {self.model_path} holds no model (no config.json)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length={max_length!r} must be a positive integer")
        # A non-positive weight would invert or flatten the order while still claiming "best first".
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
            raise ValueError(f"weight={weight!r} must be a finite number > 0")
        self.batch_size = batch_size
        self.max_length = max_length
        self.weight = float(weight)
        self.model_id = _fingerprint(self.model_path)
        self.loads = 0  # how many times the weights were read; stays 1 per instance
        self._model = None
        self._load_lock = threading.Lock()
        # Fast (Rust) tokenizers reset their truncation/padding state on every call and raise "Already
        # borrowed" when two threads do so at once; torch already uses every core for one batch on CPU, so
        # serialising predictions costs little throughput.
        self._predict_lock = threading.Lock()

    def load(self):
        """Read the weights now, e.g. at start-up, so the first request does not pay for it."""
        model = self._model
        if model is not None:
            return model
        with self._load_lock:
            if self._model is None:
                self._model = _build_cross_encoder(self.model_path, self.max_length)
                self.loads += 1
            return self._model

    def rerank(self, query: Query, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        model = self.load()
        pairs = [(query.text, c.text) for c in candidates]
        with self._predict_lock:
            scores = model.predict(
                pairs, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        if len(scores) != len(candidates):
            raise RuntimeError(f"cross-encoder returned {len(scores)} scores for {len(candidates)} pairs")
        for c, s in zip(candidates, scores):
            raw = float(s)
            c.scores["rerank"] = raw
            c.score = self.weight * raw
        # The id breaks ties so equal scores give the same answer on every call.
        return sorted(candidates, key=lambda c: (-c.score, c.id))

    def recipe(self) -> dict:
        recipe = {
            "name": self.name,
            "model": self.model_id,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
        }
        if self.weight != 1.0:
            recipe["weight"] = self.weight
        return recipe
