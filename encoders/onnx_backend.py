"""The ONNX Runtime embedder: the packaged model exported once (fp32 or int8), served without torch.

Serving imports onnxruntime and the `tokenizers` fast tokenizer only. The export, which needs torch, runs in a
child process (`python -m encoders.onnx_export`) the first time a data folder asks for it, or at set-up with
`snapdex model export`; its result is cached under `<data dir>/models/`, keyed by the weights' fingerprint and the
export config, so a second start reuses it and a changed config or model exports anew.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from encoders.dense import Span, bert_pre_tokenizer, fingerprint, mean_pool, packaged_model_path, pool_spans
from encoders.onnx_export import config_key, sentence_config

log = logging.getLogger(__name__)

# SNAPDEX_EMBEDDER_BACKEND -> the export's quantisation config (encoders/onnx_export.py: QUANTIZATIONS).
# int8: per-channel avx512_vnni-style weights, chosen by measurement (README, "Embedder backends").
ONNX_BACKENDS = {"onnx": "none", "onnx-int8": "vnni-pc"}
EXPORT_TIMEOUT_S = 900


def export_dir(folder: Path, models_dir: Path, quantization: str) -> Path:
    return models_dir / f"{fingerprint(folder).replace('@', '-')}-onnx-{quantization}-{config_key(quantization)}"


def ensure_exported(folder: Path, models_dir: Path, quantization: str) -> Path:
    """The export folder for (model, config), exported now in a child process if it is not there yet."""
    out = export_dir(folder, models_dir, quantization)
    if (out / "export.json").exists():
        return out
    started = time.perf_counter()
    log.info("exporting %s to ONNX (%s) into %s", folder, quantization, out)
    done = subprocess.run([sys.executable, "-m", "encoders.onnx_export", "--folder", str(folder), "--out", str(out),
                           "--quantization", quantization], capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S,
                          cwd=Path(__file__).resolve().parents[1], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0 or not (out / "export.json").exists():
        raise RuntimeError(f"ONNX export of {folder} ({quantization}) failed:\n{done.stderr[-3000:]}")
    log.info("exported %s (%s) in %.1f s", folder.name, quantization, time.perf_counter() - started)
    return out


_ARENA_LOCK = threading.Lock()
_ARENA_REGISTERED = False


def _register_arena(ort) -> None:
    """One CPU arena for the process's sessions that grows by what a run asks for (ORT's default doubles each
    extension and never gives memory back, so a batch of long texts left hundreds of MB reserved)."""
    global _ARENA_REGISTERED
    with _ARENA_LOCK:
        if _ARENA_REGISTERED:
            return
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        # max_mem 0 (no cap), arena_extend_strategy 1 (kSameAsRequested), the rest ORT's defaults.
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
        _ARENA_REGISTERED = True


class OnnxEmbedder:
    """all-MiniLM-style models on ONNX Runtime: token embeddings from the exported graph, mean pooling and late
    span pooling in numpy (the same code as the torch backend's), offsets from the fast tokenizer."""

    def __init__(self, folder: Path | None, models_dir: Path, quantization: str = "none", batch_size: int = 64,
                 threads: int | None = None) -> None:
        self.folder = Path(folder) if folder else packaged_model_path()
        if not (self.folder / "config.json").exists():
            raise ValueError(f"embedding model folder {self.folder} has no config.json")
        self.models_dir = Path(models_dir)
        self.quantization = quantization
        self.batch_size = batch_size
        self.threads = threads
        meta = sentence_config(self.folder)
        self.dim: int = meta["dim"]
        self._max_tokens: int = meta["max_seq_length"]
        # Another backend or quantisation gives other vectors: its own snapshots and cache entries.
        self.model_id = f"{fingerprint(self.folder)}+onnx-{quantization}-{config_key(quantization)}"
        self._session = None
        self._tokenizer = None
        self._counter = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                out = ensure_exported(self.folder, self.models_dir, self.quantization)
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Memory patterns pre-plan one buffer per batch shape and keep them: measured on 256 SciFact
                # abstracts at batch 16, peak RSS 699 MiB with them, 464 without, same CPU time.
                options.enable_mem_pattern = False
                # The process-wide arena below, not a session arena that grows by doubling: measured embedding
                # 2,670 SciFact chunks, peak RSS 724 MiB with the session's own arena, 652 with it; same time.
                options.add_session_config_entry("session.use_env_allocators", "1")
                _register_arena(ort)
                if self.threads:
                    options.intra_op_num_threads = self.threads
                tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
                tokenizer.no_padding()
                counter = Tokenizer.from_file(str(out / "tokenizer.json"))  # no truncation: counts what was given
                counter.no_padding()
                counter.no_truncation()
                tokenizer.enable_truncation(max_length=self._max_tokens)
                self._tokenizer, self._counter = tokenizer, counter
                self._session = ort.InferenceSession(str(out / "model.onnx"), options,
                                                     providers=["CPUExecutionProvider"])
        return self._session

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        self._load()
        # Lengths only: encode_batch_fast skips the character offsets (9,335 SciFact chunks: 0.8 s instead of 1.5).
        return [len(e.ids) for e in self._counter.encode_batch_fast(list(texts))]

    def token_starts(self, text: str) -> tuple[int, list[int]]:
        self._load()
        e = self._counter.encode(text)
        return sum(e.special_tokens_mask), [a for (a, _), s in zip(e.offsets, e.special_tokens_mask) if not s]

    def splits_at_spaces(self) -> bool:
        self._load()
        return bert_pre_tokenizer(self._counter)

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token embeddings (batch, seq, dim), attention mask and character offsets of one padded batch."""
        session = self._load()
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        offsets = np.zeros((len(texts), width, 2), dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], types[row, :n], mask[row, :n] = e.ids, e.type_ids, e.attention_mask
            offsets[row, :n] = e.offsets
        tokens = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        return tokens, mask, offsets

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors, _ = self.embed_spans(texts, [()] * len(texts))
        return vectors

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
                    ) -> tuple[np.ndarray, list[list[np.ndarray | None]]]:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        pooled: list[list[np.ndarray | None]] = [[] for _ in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths pad least
        for b in range(0, len(order), self.batch_size):
            part = order[b : b + self.batch_size]
            tokens, mask, offsets = self._forward([texts[i] for i in part])
            vectors[part] = mean_pool(tokens, mask)
            for row, i in enumerate(part):
                if spans[i]:
                    pooled[i] = pool_spans(tokens[row], offsets[row], mask[row], spans[i])
        return vectors, pooled


def export_info(embedder: OnnxEmbedder) -> dict:
    """What export.json says about the model this embedder serves (exporting it if needed)."""
    out = ensure_exported(embedder.folder, embedder.models_dir, embedder.quantization)
    return json.loads((out / "export.json").read_text())
