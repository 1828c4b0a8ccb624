"""Wiring: turn Settings into the objects the edges hand to the logic. One Runtime per process."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass
from functools import cached_property

from db import open_catalog
from db.locks import Locks
from encoders.dense import RedisEmbeddingCache, SqliteEmbeddingCache
from encoders.embedding import EmbeddingService, open_embedder
from encoders.lexical import BM25Params
from eval.benchmarks import BenchmarkStore
from eval.profiles import ProfileStore
from eval.store import EvalStore
from eval.answers import AnswerStore
from eval.feedback import FeedbackLog
from eval.usage import UsageLog
from index_snapshots.access import AccessSync
from index_snapshots.builder import LANGUAGES_KEY, IndexConfig, SnapshotBuilder
from index_snapshots.evaluation import SnapshotEvaluator
from index_snapshots.manifest import Manifest
from index_snapshots.querying import SnapshotSearcher
from index_snapshots.resolve import SnapshotResolver
from index_snapshots.rollouts import Plan, Rollouts
from index_snapshots.service import SnapshotService
from index_snapshots.tuning import ProfileTuner
from ingest import formats
from ingest.windows import WindowConfig
from retrieval.pipeline import RetrievalPipeline, StageConfig
from retrieval.cache import ResultCache
from retrieval.pruning import PruneConfig
from ingest.catalog import Catalog
from ingest.chunking import ChunkerConfig
from ingest.jobs import JobStore
from ingest.language import query_language_weights
from ingest.parse_process import ParseLimits
from ingest.pipeline import IngestConfig, Ingestor
from notify.delivery import Deliverer
from notify.secrets import SecretBox, key_material
from notify.store import WebhookStore
from options import RERANKERS, REWRITERS, build_stages, settings_map
from snapdex.memory import MemoryLedger
from snapdex.settings import Settings
from sources.connectors.base import Limits as SourceLimits
from sources.store import BOX_INFO, SourceStore
from sources.sync import Syncer
from store import open_store

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    embedder: object | None = None  # tests may pass a deterministic embedder

    def __post_init__(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Upgraded to this release's schema before anything reads it (under the migration lock: processes
        # starting together queue, and the second finds it done).
        self.db = open_catalog(self.settings.catalog_url, pool_size=self.settings.database_pool_size)
        self.locks = Locks(self.db, lease_s=self.settings.lock_lease_s)
        self.catalog = Catalog(self.db)
        self.jobs = JobStore(self.db)
        self.manifest = Manifest(self.db)
        self.evals = EvalStore(self.db)
        self.benchmarks = BenchmarkStore(self.db)
        self.profiles = ProfileStore(self.db)
        if self.embedder is None:
            s = self.settings
            self.embedder = open_embedder(s.embedder_backend, s.embedding_model_path, s.models_path,
                                          batch_size=s.embedding_batch_size)
        self.memory = MemoryLedger()
        self.models_loaded = False

    @cached_property
    def store(self):
        s = self.settings
        return open_store(s.store_backend, path=s.qdrant_path, url=s.qdrant_url, api_key=s.qdrant_api_key,
                          shards=s.qdrant_shards, replicas=s.qdrant_replicas, timeout=s.qdrant_timeout_s)

    @cached_property
    def webhooks(self) -> WebhookStore:
        s = self.settings
        return WebhookStore(self.db, SecretBox(key_material(s.webhook_secret_key, s.data_dir)))

    @cached_property
    def answers(self) -> AnswerStore:
        """The answers /retrieve gave and the signals on them: usage reports and feedback share it."""
        s = self.settings
        return AnswerStore(self.db, s.usage_window_s, s.feedback_window_s, s.feedback_keep_queries,
                           s.feedback_retention_days)

    @cached_property
    def usage(self) -> UsageLog:
        return UsageLog(self.db, self.answers)

    @cached_property
    def feedback(self) -> FeedbackLog:
        return FeedbackLog(self.answers, self.rollouts.consider)

    @cached_property
    def deliverer(self) -> Deliverer:
        s = self.settings
        return Deliverer(self.webhooks, tuple(s.webhook_retry_schedule_s), s.webhook_timeout_s,
                         s.webhook_allow_private)

    @cached_property
    def sources(self) -> SourceStore:
        s = self.settings
        return SourceStore(self.db, SecretBox(key_material(s.webhook_secret_key, s.data_dir), info=BOX_INFO))

    @cached_property
    def source_limits(self) -> SourceLimits:
        s = self.settings
        return SourceLimits(tuple(s.source_folder_roots), s.source_allow_private, s.source_timeout_s,
                            s.source_max_items, s.max_upload_bytes, s.data_dir)

    @cached_property
    def syncer(self) -> Syncer:
        return Syncer(self.sources, self.catalog, self.jobs, self.ingestor, self.access_sync, self.locks,
                      self.source_limits, batch_items=self.settings.source_batch_items,
                      lease_s=self.settings.lock_lease_s)

    @cached_property
    def embedding(self) -> EmbeddingService:
        s = self.settings
        cache = RedisEmbeddingCache(s.redis_url) if s.redis_url else SqliteEmbeddingCache(s.data_dir / "embeddings.sqlite3")
        return EmbeddingService(self.embedder, cache)

    @cached_property
    def chunker_config(self) -> ChunkerConfig:
        return ChunkerConfig(self.settings.chunk_size, self.settings.chunk_overlap)

    @cached_property
    def ingestor(self) -> Ingestor:
        s = self.settings
        cfg = IngestConfig(self.chunker_config, s.near_duplicate_threshold, s.minhash_permutations,
                           max(256, s.embedding_batch_size * 4), self.window_config, s.max_document_chars,
                           parse=ParseLimits(s.parse_timeout_s, s.parse_memory_mb, s.ocr_languages))
        return Ingestor(self.catalog, self.jobs, self.embedding, cfg)

    @cached_property
    def index_config(self) -> IndexConfig:
        s = self.settings
        return IndexConfig(formats.PARSER_VERSION, self.chunker_config, self.embedder.model_id, self.embedder.dim,
                           BM25Params(s.bm25_k1, s.bm25_b, s.bm25_document_weight), self.window_config,
                           s.vector_storage, s.dense_index, s.dense_index_threshold)

    @cached_property
    def builder(self) -> SnapshotBuilder:
        return SnapshotBuilder(self.catalog, self.manifest, self.store, self.embedding, self.index_config,
                               access=self.access_sync)

    @cached_property
    def access_sync(self) -> AccessSync:
        return AccessSync(self.catalog, self.manifest, self.store, self.locks)

    @cached_property
    def snapshots(self) -> SnapshotService:
        s = self.settings
        return SnapshotService(self.builder, self.manifest, self.jobs, self.store, self.evaluator, self.locks,
                               keep_extra=s.retention_keep, pin_grace_s=s.pin_grace_s, rollouts=self.rollouts,
                               after_gate=self.rollout_plan if s.rollout_after_gate else None)

    @cached_property
    def rollouts(self) -> Rollouts:
        return Rollouts(self.db, self.manifest,
                        lambda tenant, snap, by: self.snapshots.promote(tenant, snap, by, action="rollout"))

    def rollout_plan(self, candidate: str, **asked) -> Plan:
        """A rollout of `candidate`: what the request asked for, the SNAPDEX_ROLLOUT_* defaults for the rest."""
        s = self.settings
        defaults = {"mode": s.rollout_mode, "steps": tuple(s.rollout_steps), "min_feedback": s.rollout_min_feedback,
                    "max_regression": s.rollout_max_regression, "confidence": s.rollout_confidence}
        return Plan(candidate, **{**defaults, **{k: v for k, v in asked.items() if v is not None}})

    @cached_property
    def evaluator(self) -> SnapshotEvaluator:
        s = self.settings
        return SnapshotEvaluator(self.searcher, self.manifest, self.evals, s.gate_policy, tuple(s.eval_ks),
                                 frozenset(s.access_deny_by_default))

    @cached_property
    def resolver(self) -> SnapshotResolver:
        return SnapshotResolver(self.manifest)

    @cached_property
    def window_config(self) -> WindowConfig | None:
        s = self.settings
        return WindowConfig(s.window_size, min(s.window_stride, s.window_size), method=s.window_method) \
            if s.windows_enabled else None

    @cached_property
    def pipeline(self) -> RetrievalPipeline:
        s = self.settings
        # Each stage's class is imported only where it is offered (the cross-encoder's torch, where configured).
        rerankers, rewriters = build_stages(RERANKERS, s), build_stages(REWRITERS, s)
        stages = StageConfig(**{field: getattr(s, setting) for field, setting in settings_map().items()})
        return RetrievalPipeline(self.store, self.embedder, rerankers, rewriters, stages,
                                 PruneConfig(s.prune_near_duplicate, twins=s.near_duplicate_policy),
                                 long_query_combine=s.long_query_combine, query_embed_keep=s.query_embed_keep,
                                 vector_cache_bytes=s.query_vector_cache_bytes, chunk_cache_bytes=s.chunk_cache_bytes)

    @cached_property
    def searcher(self) -> SnapshotSearcher:
        s = self.settings
        return SnapshotSearcher(self.resolver, self.pipeline,
                                ResultCache(s.result_cache_size, s.result_cache_ttl_s, s.result_cache_bytes),
                                self.profiles)

    @cached_property
    def tuner(self) -> ProfileTuner:
        return ProfileTuner(self.searcher, self.manifest, self.evals, self.profiles, tuple(self.settings.eval_ks),
                            catalog=self.catalog)

    def config_drift(self) -> dict[str, list[str]]:
        """Per tenant, which parts of the live snapshot's config differ from this process's config."""
        want = self.index_config.canonical()
        drift = {}
        for tenant in self.manifest.tenants():
            live = self.manifest.live(tenant)
            # The languages part comes from the documents, not from settings: never a drift. The dense index comes
            # from settings and the snapshot's size: a drift when the one it has is not the one its size calls for.
            wanted = {**want, **self.index_config.dense_config(live.chunks)}
            parts = sorted(k for k in (set(wanted) | set(live.config)) - {LANGUAGES_KEY}
                           if wanted.get(k) != live.config.get(k))
            if parts:
                drift[tenant] = parts
        return drift

    def warm_up(self, ingest: bool = True) -> None:
        """Load what this process serves once, one after another, measuring each load's RSS (`self.memory`):
        the embedding model (exported to ONNX first, in a child process, if the data folder lacks it), the
        collections of live snapshots, a configured cross-encoder, and, in a process that ingests, a parse child
        with the parser for files and Markdown loaded (unstructured with spaCy; JSON plain text never needs it):
        "parser" is that child's resident memory, not this process's."""
        try:
            with self.memory.measure("embedder"):
                self.embedder.embed(["warm up"])
            with self.memory.measure("vector_store"):
                for tenant in self.manifest.tenants():
                    live = self.manifest.live(tenant)
                    if live is not None and self.store.has_collection(live.collection):
                        self.store.count(live.collection)  # opens it (qdrant-edge loads a shard on first use)
                    if live is not None and len(live.config.get(LANGUAGES_KEY) or ()) > 1:
                        # Its queries are weighed by language: the identifier loads now (~1.5 s), not on a request.
                        query_language_weights("warm up", live.config[LANGUAGES_KEY])
            cross = self.pipeline.rerankers.get("cross-encoder")
            if cross is not None:
                with self.memory.measure("cross_encoder"):
                    cross.load()  # once, at start-up, not on the first request
            if ingest:
                self.memory.record("parser", self.ingestor.parser.warm_up())
        except Exception:  # a failure here shows on /ready and again, with its cause, on the first job
            log.exception("warm-up failed")
        # What is loaded now (model, tokenizers, libraries: millions of objects) lives as long as the process.
        # Left to the collector, every full collection walks all of it: 95 ms each, measured while serving the
        # 100k index, a pause some request pays for. Frozen, a full collection walks only what came later (~1.5 ms).
        gc.collect()
        gc.freeze()
        self.models_loaded = True

    def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {"models": "ok" if self.models_loaded else "loading"}
        probes = [("catalog", self.db.ping),
                  ("vector_store", lambda: self.store.list_collections())]
        s = self.settings
        for name, url in (("redis", s.redis_url), ("broker", s.broker_url)):
            if url and url.startswith(("redis://", "rediss://")):
                probes.append((name, lambda url=url: _redis_ping(url)))
        for name, probe in probes:
            try:
                probe()
                checks[name] = "ok"
            except Exception as e:  # readiness reports, it does not raise
                checks[name] = f"{type(e).__name__}: {e}"
        return checks

    def recover(self) -> list[str]:
        """After a crash: builds that were running are marked failed (their half-built collections go), and
        the ingest jobs still queued or running are returned to be enqueued again. Another process sharing the
        catalog may be building or ingesting right now: a build whose tenant lock is held, and a job a live worker
        has claimed, are left to it."""
        self.snapshots.abandon_interrupted()
        return self.jobs.unsettled(unclaimed=True)

    def close(self) -> None:
        if "ingestor" in self.__dict__:
            self.ingestor.close()
        if "store" in self.__dict__:
            self.store.close()
        self.db.dispose()


def _redis_ping(url: str) -> None:
    import redis

    if not redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping():
        raise ConnectionError(f"no PONG from {url}")


_current: Runtime | None = None
_current_lock = threading.Lock()


def set_runtime(runtime: Runtime | None) -> None:
    global _current
    with _current_lock:
        _current = runtime


def get_runtime() -> Runtime:
    """The process's runtime: set by whoever started the process (serve, worker), else built from settings."""
    global _current
    with _current_lock:
        if _current is None:
            from snapdex.settings import get_settings

            _current = Runtime(get_settings())
        return _current
