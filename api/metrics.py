"""Prometheus exposition.

Request and stage timings are measured in this process (histograms). Everything else is read at scrape time from
what every process shares: the catalog (jobs, chunks embedded and reused, live snapshots, gate verdicts, evaluation
runs) and the broker (queue depth). Scraping any API process therefore gives the same numbers for those.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ingest.phases import JobStatus
from snapdex.logs import request_id_var
from snapdex.memory import peak_rss_bytes, rss_bytes
from snapdex.runtime import Runtime

log = logging.getLogger(__name__)

# Seconds: the hot path answers in milliseconds, a rebuild request or an upload may take seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """Per-process request metrics, labelled by route template (never by raw path: ids would explode the series)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("snapdex_http_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=registry)
        self.latency = Histogram("snapdex_http_request_duration_seconds", "time to answer, per route",
                                 ["route", "method"], buckets=BUCKETS, registry=registry)
        self.stages = Histogram("snapdex_retrieve_stage_duration_seconds", "time per /retrieve stage",
                                ["stage"], buckets=BUCKETS, registry=registry)

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stages.labels(stage).observe(ms / 1000.0)


class RequestMetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware on the hot path): a request id for every request (the caller's
    X-Request-ID if sane), echoed in the response headers, and the request counted and timed."""

    def __init__(self, app, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = {"code": 500}
        started = time.perf_counter()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Unexpected: logged with its trace and request id; the caller gets JSON naming the id to report.
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if status.get("started"):
                raise
            body = json.dumps({"detail": f"internal error; report request id {request_id}"}).encode()
            await send_with_id({"type": "http.response.start", "status": 500,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"  # unknown paths share one series
            method = scope.get("method", "")
            self.metrics.latency.labels(path, method).observe(time.perf_counter() - started)
            self.metrics.requests.labels(path, method, str(status["code"])).inc()
            request_id_var.reset(token)


class EvalCollector:
    """The live snapshot's metrics per tenant and active query set, from its newest finished run."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self):
        value = GaugeMetricFamily("snapdex_eval_metric", "IR metric of the live snapshot on a labelled query set",
                                  labels=["tenant", "query_set", "version", "snapshot", "metric"])
        latency = GaugeMetricFamily("snapdex_eval_latency_ms", "per-query latency of the evaluation run",
                                    labels=["tenant", "query_set", "snapshot", "quantile"])
        queries = GaugeMetricFamily("snapdex_eval_queries", "queries scored in the run",
                                    labels=["tenant", "query_set", "snapshot"])
        age = GaugeMetricFamily("snapdex_eval_run_timestamp_seconds", "when the run finished",
                                labels=["tenant", "query_set", "snapshot"])
        for tenant, snap, run in self.rt.evaluator.live_runs():
            short = snap[:12]
            for metric, v in run.metrics.items():
                value.add_metric([tenant, run.set_name, str(run.set_version), short, metric], v)
            for q, v in run.latency_ms.items():
                latency.add_metric([tenant, run.set_name, short, q], v)
            queries.add_metric([tenant, run.set_name, short], run.queries or 0)
            age.add_metric([tenant, run.set_name, short], run.finished_at or 0)
        held = GaugeMetricFamily("snapdex_snapshots_held", "built snapshots the gate held back", labels=["tenant"])
        verdicts = GaugeMetricFamily("snapdex_gate_verdicts", "gate verdicts recorded, by outcome",
                                     labels=["tenant", "outcome"])
        live = GaugeMetricFamily("snapdex_live_snapshot_info", "the live snapshot of each tenant",
                                 labels=["tenant", "snapshot"])
        for tenant in self.rt.manifest.all_tenants():
            recorded = self.rt.evals.verdicts(tenant)
            snaps = self.rt.manifest.list(tenant)
            held.add_metric([tenant], sum(1 for s in snaps if s.status == "candidate" and s.hash in recorded
                                          and not recorded[s.hash].passed))
            outcomes = {"passed": 0, "held": 0, "overridden": 0}
            for v in recorded.values():
                outcomes["passed" if v.passed else "overridden" if v.override_at else "held"] += 1
            for outcome, n in outcomes.items():
                verdicts.add_metric([tenant, outcome], n)
            current = next((s.hash for s in snaps if s.status == "live"), None)
            if current:
                live.add_metric([tenant, current[:12]], 1)
        yield from (value, latency, queries, age, held, verdicts, live)


class OpsCollector:
    """Jobs, embeddings computed versus reused, caches and the queue."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self):
        jobs = GaugeMetricFamily("snapdex_jobs", "ingest jobs by status", labels=["tenant", "status"])
        embedded = CounterMetricFamily("snapdex_chunks_embedded", "chunks that went through the embedding model",
                                       labels=["tenant"])
        reused = CounterMetricFamily("snapdex_chunks_reused", "chunks whose vectors came from the cache",
                                     labels=["tenant"])
        failed = CounterMetricFamily("snapdex_document_failures", "documents that failed to ingest",
                                     labels=["tenant"])
        waiting = GaugeMetricFamily("snapdex_jobs_oldest_age_seconds", "age of the oldest job still queued (since it was "
                                    "last queued) or running (since it was made); 0: none. A job stuck in the queue "
                                    "shows here", labels=["tenant", "status"])
        now = time.time()
        for tenant, s in self.rt.jobs.stats().items():
            for status in JobStatus:
                jobs.add_metric([tenant, status.value], s["jobs"].get(status, 0))
            for status in (JobStatus.QUEUED, JobStatus.RUNNING):
                oldest = s["oldest"].get(status)
                waiting.add_metric([tenant, status.value], now - oldest if oldest else 0.0)
            embedded.add_metric([tenant], s["embedded"])
            reused.add_metric([tenant], s["reused"])
            failed.add_metric([tenant], s["failed_documents"])
        yield from (jobs, embedded, reused, failed, waiting)
        yield from self._alerting()

        cache = CounterMetricFamily("snapdex_cache_lookups", "cache lookups in this process",
                                    labels=["cache", "outcome"])
        held = GaugeMetricFamily("snapdex_cache_bytes", "memory a cache of this process holds (entries measured "
                                 "when stored) and its bound", labels=["cache", "kind"])
        searcher = self.rt.__dict__.get("searcher")  # only once built: scraping must not build the pipeline
        caches = {"answers": searcher.cache, "query_vectors": searcher.pipeline.vectors,
                  "chunks": searcher.pipeline.chunks} if searcher else {}
        for name, c in caches.items():
            cache.add_metric([name, "hit"], c.hits)
            cache.add_metric([name, "miss"], c.misses)
            held.add_metric([name, "used"], c.bytes)
            held.add_metric([name, "limit"], c.max_bytes)
        yield cache
        yield held
        yield self._memory(caches)
        embedding = self.rt.__dict__.get("embedding")  # only once built, as above
        if embedding is not None:
            seconds = CounterMetricFamily("snapdex_embedding_model_seconds", "wall seconds this process's ingest and "
                                          "builds spent in the embedding model (tokenising, forward pass, pooling)")
            seconds.add_metric([], embedding.model_seconds)
            texts = CounterMetricFamily("snapdex_embedding_model_texts", "texts this process's ingest and builds "
                                        "sent to the embedding model")
            texts.add_metric([], embedding.model_texts)
            yield from (seconds, texts)

        depth = self._queue_depth()
        if depth is not None:
            queue = GaugeMetricFamily("snapdex_queue_messages", "messages waiting in the broker's task queue")
            queue.add_metric([], depth)
            yield queue

    def _alerting(self):
        """What deploy/prometheus/alerts.yml needs besides the above: each dependency up or not (as /ready checks
        it), the gate's floors (live recall is compared with them), webhook deliveries by status."""
        up = GaugeMetricFamily("snapdex_dependency_up", "1 when the dependency answers (the checks of /ready)",
                               labels=["dependency"])
        for name, state in self.rt.readiness().items():
            if name != "models":
                up.add_metric([name], 1.0 if state == "ok" else 0.0)
        yield up
        floors = GaugeMetricFamily("snapdex_gate_floor", "lowest value of a gated metric a snapshot needs to go live "
                                   "(SNAPDEX_GATE_FLOORS)", labels=["metric"])
        for metric, floor in self.rt.settings.gate_floors.items():
            floors.add_metric([metric], floor)
        yield floors
        deliveries = GaugeMetricFamily("snapdex_webhook_deliveries", "webhook deliveries by status (dead: retried "
                                       "for ~24 h and given up)", labels=["tenant", "status"])
        for (tenant, status), n in self.rt.webhooks.counts().items():
            deliveries.add_metric([tenant, status], n)
        yield deliveries

    def _memory(self, caches: dict) -> GaugeMetricFamily:
        memory = GaugeMetricFamily(
            "snapdex_memory_rss_bytes",
            "resident memory of this process (/proc/self): component=process is now, process_peak the high-water "
            "mark; embedder, vector_store, cross_encoder: how much RSS grew while each loaded at start-up; parser: "
            "the resident memory of the parse child once it loaded (a process of its own, not in process); "
            "answers_cache, query_vectors_cache, chunks_cache: bytes their entries hold", labels=["component"])
        memory.add_metric(["process"], rss_bytes())
        memory.add_metric(["process_peak"], peak_rss_bytes())
        for component, grown in self.rt.memory.snapshot().items():
            memory.add_metric([component], grown)
        for name, c in caches.items():
            memory.add_metric([f"{name}_cache"], c.bytes)
        return memory

    def _queue_depth(self) -> int | None:
        url = self.rt.settings.broker_url
        if not url.startswith(("redis://", "rediss://")):
            return None  # the embedded memory:// broker: queued jobs show in snapdex_jobs{status="queued"}
        try:
            import redis

            return int(redis.Redis.from_url(url, socket_timeout=0.5).llen("celery"))
        except Exception as e:  # a scrape reports what it can; Redis being down shows on /ready
            log.debug("queue depth unavailable: %s", e)
            return None


class SourcesCollector:
    """Each source's syncs and last sync, from the catalog (labels: tenant, source id, name, kind)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self):
        labels = ["tenant", "source", "name", "kind"]
        syncs = CounterMetricFamily("snapdex_source_syncs", "syncs of a source that ended, by status",
                                    labels=[*labels, "status"])
        running = GaugeMetricFamily("snapdex_source_sync_running", "1 while a sync of the source is queued or running",
                                    labels=labels)
        items = GaugeMetricFamily("snapdex_source_documents", "items the source holds (one document each)",
                                  labels=labels)
        last_end = GaugeMetricFamily("snapdex_source_last_sync_timestamp_seconds", "when the last sync ended, by "
                                     "its status", labels=[*labels, "status"])
        last_seconds = GaugeMetricFamily("snapdex_source_last_sync_duration_seconds", "how long the last sync took",
                                         labels=labels)
        last_items = GaugeMetricFamily("snapdex_source_last_sync_items", "the last sync's counts (listed, new, "
                                       "changed, unchanged, deleted, failed)", labels=[*labels, "outcome"])
        next_at = GaugeMetricFamily("snapdex_source_next_sync_timestamp_seconds", "when the schedule starts the next "
                                    "sync; absent without a schedule", labels=labels)
        for s in self.rt.sources.stats():
            key = [s["tenant"], s["source"], s["name"], s["kind"]]
            syncs.add_metric([*key, "succeeded"], s["succeeded"])
            syncs.add_metric([*key, "failed"], s["failed"])
            running.add_metric(key, 1.0 if s["running"] else 0.0)
            items.add_metric(key, s["items"])
            if s["next_sync_at"] is not None:
                next_at.add_metric(key, s["next_sync_at"])
            last = s["last"]
            if last is not None:
                last_end.add_metric([*key, last.status], last.finished_at or 0)
                last_seconds.add_metric(key, last.seconds or 0.0)
                for outcome, n in last.counts.items():
                    last_items.add_metric([*key, outcome], n)
        yield from (syncs, running, items, last_end, last_seconds, last_items, next_at)


class RolloutsCollector:
    """Each running rollout's arms (index_snapshots/rollouts.py), from the catalog: answers with feedback, the arm's
    rate (interleave: answers won; canary: answers with a positive signal) with its interval, and the difference
    the sequential test decides on. Ended rollouts drop out (their history is GET /rollouts and the dashboard)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self):
        labels = ["tenant", "rollout", "mode", "candidate"]
        share = GaugeMetricFamily("snapdex_rollout_share", "share of traffic the running rollout's step takes",
                                  labels=[*labels, "step"])
        answers = GaugeMetricFamily("snapdex_rollout_arm_answers", "answers of the rollout with feedback, per arm "
                                    "(interleave: every interleaved answer counts for both arms)",
                                    labels=[*labels, "arm"])
        rate = GaugeMetricFamily("snapdex_rollout_arm_rate", "per arm: interleave, share of answers it won; canary, "
                                 "share of its answers with a positive signal; with the bounds of its interval at the "
                                 "rollout's confidence", labels=[*labels, "arm", "bound"])
        difference = GaugeMetricFamily("snapdex_rollout_difference", "candidate minus live, and the bounds of its "
                                       "always-valid interval", labels=[*labels, "bound"])
        for view in self.rt.rollouts.running_views():
            key = [view["tenant"], view["id"], view["mode"], view["candidate"][:12]]
            share.add_metric([*key, str(view["step"])], view["share"])
            for arm in ("live", "candidate"):
                figures = view["arms"][arm]
                answers.add_metric([*key, arm], figures["answers"])
                for bound, name in (("estimate", "rate"), ("low", "low"), ("high", "high")):
                    if figures[name] is not None:
                        rate.add_metric([*key, arm, bound], figures[name])
            for bound in ("estimate", "low", "high"):
                if view["arms"]["difference"][bound] is not None:
                    difference.add_metric([*key, bound], view["arms"]["difference"][bound])
        yield from (share, answers, rate, difference)


def registry_for(rt: Runtime, registry: CollectorRegistry) -> CollectorRegistry:
    registry.register(EvalCollector(rt))
    registry.register(RolloutsCollector(rt))
    registry.register(OpsCollector(rt))
    registry.register(SourcesCollector(rt))
    return registry
