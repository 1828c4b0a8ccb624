"""Observability as an operator scrapes and reads it: Prometheus metrics, request ids, JSON logs without text."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.helpers import make_runtime
from harness.procs import MODEL, auth, free_port, snapdex_serve

H = auth("obs")
SECRET_QUERY = "which aquifer feeds the tamarisk springs"
SECRET_TEXT = "The tamarisk springs are fed by the Karst aquifer under the northern ridge."


def samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(found: dict, name: str, **labels) -> float:
    hits = [s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert hits, f"no sample {name}{labels}; have {[s.labels for s in found.get(name, [])][:10]}"
    return sum(hits)


@pytest.mark.slow
def test_metrics_request_ids_and_json_logs_over_http(tmp_path):
    # every stage runs, so that every stage's duration is measured (the second stage is off by default)
    # The model: its load is one of the measured components.
    with snapdex_serve(tmp_path / "data", log_level="info", tenants=("obs",), SNAPDEX_RERANK="late-interaction",
                       **MODEL) as svc:
        c = svc.client
        docs = [{"id": "springs", "text": SECRET_TEXT},
                {"id": "bridges", "text": "Suspension bridges hang their deck from cables over two towers."}]
        job = c.post("/ingest", json={"documents": docs}, headers=H).json()["job_id"]
        snap = svc.wait_job(job, headers=H)["snapshot"]

        first = c.post("/retrieve", json={"query": SECRET_QUERY}, headers={**H, "X-Request-ID": "trace-abc123"})
        assert first.status_code == 200 and first.headers["x-request-id"] == "trace-abc123"
        assert first.json()["request_id"] == "trace-abc123"
        again = c.post("/retrieve", json={"query": SECRET_QUERY}, headers=H)  # the answer cache serves it
        assert again.json()["cached"] and again.headers["x-request-id"] == again.json()["request_id"]
        assert len(again.headers["x-request-id"]) == 32
        odd = c.post("/retrieve", json={"query": "bridges"}, headers={**H, "X-Request-ID": "bad id\twith space"})
        assert odd.headers["x-request-id"] != "bad id\twith space"  # not echoed into logs or headers
        assert c.post("/retrieve", json={"query": "x", "top_k": 0}, headers=H).status_code == 422
        assert c.get("/no/such/route").status_code == 404

        found = samples(c.get("/metrics", headers=auth(None)).text)
        assert value(found, "snapdex_http_requests_total", route="/retrieve", method="POST", status="200") == 3
        assert value(found, "snapdex_http_requests_total", route="/retrieve", status="422") == 1
        assert value(found, "snapdex_http_requests_total", route="unmatched", status="404") == 1
        assert value(found, "snapdex_http_request_duration_seconds_count", route="/retrieve") == 4
        for stage in ("embed", "first_stage", "rerank", "prune", "total"):
            assert value(found, "snapdex_retrieve_stage_duration_seconds_count", stage=stage) >= 2, stage
        assert value(found, "snapdex_cache_lookups_total", cache="answers", outcome="hit") == 1
        assert value(found, "snapdex_cache_lookups_total", cache="answers", outcome="miss") == 2
        assert value(found, "snapdex_chunks_embedded_total", tenant="obs") >= 2
        # The embedded worker's model time, in the same process: every embedded chunk went through the model.
        assert value(found, "snapdex_embedding_model_texts_total") >= \
            value(found, "snapdex_chunks_embedded_total", tenant="obs")
        assert value(found, "snapdex_embedding_model_seconds_total") > 0
        assert value(found, "snapdex_jobs", tenant="obs", status="succeeded") == 1
        assert value(found, "snapdex_live_snapshot_info", tenant="obs", snapshot=snap[:12]) == 1
        assert value(found, "snapdex_gate_verdicts", tenant="obs", outcome="passed") == 1
        # Memory, measured (/proc/self): the process, the embedder's load, what the caches hold within bounds.
        assert value(found, "snapdex_memory_rss_bytes", component="process") > 50e6
        assert value(found, "snapdex_memory_rss_bytes", component="process_peak") >= \
            value(found, "snapdex_memory_rss_bytes", component="process")
        assert value(found, "snapdex_memory_rss_bytes", component="embedder") > 1e6
        assert 0 < value(found, "snapdex_cache_bytes", cache="answers", kind="used") <= \
            value(found, "snapdex_cache_bytes", cache="answers", kind="limit")
        assert value(found, "snapdex_memory_rss_bytes", component="query_vectors_cache") > 0
        # What the shipped alert rules read (deploy/prometheus/alerts.yml).
        assert value(found, "snapdex_dependency_up", dependency="catalog") == 1
        assert value(found, "snapdex_dependency_up", dependency="vector_store") == 1
        assert value(found, "snapdex_gate_floor", metric="recall@10") == 0.8
        assert value(found, "snapdex_jobs_oldest_age_seconds", tenant="obs", status="queued") == 0
        # The default backend (ONNX int8) serves without torch: its libraries are not even mapped.
        maps = open(f"/proc/{svc.proc.pid}/maps").read()
        assert "onnxruntime" in maps and "libtorch" not in maps

    log = svc.log.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    retrieved = [x for x in lines if x.get("message") == "retrieve"]
    assert len(retrieved) == 3, retrieved
    traced = next(x for x in retrieved if x["request_id"] == "trace-abc123")
    assert traced["tenant"] == "obs" and traced["snapshot"] == snap and traced["cached"] is False
    assert traced["query"]["chars"] == len(SECRET_QUERY) and traced["recipe"]["rerank"] == "late-interaction"
    assert set(traced["timings_ms"]) >= {"first_stage", "total"} and traced["level"] == "INFO"
    assert any(x.get("logger") == "uvicorn.access" for x in lines)  # uvicorn's lines are JSON too
    # Neither the query nor the document text reaches the log.
    assert "tamarisk" not in log.lower() and "aquifer" not in log.lower()


def test_ready_reports_an_unreachable_redis(tmp_path):
    rt = make_runtime(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    checks = rt.readiness()
    assert checks["catalog"] == "ok" and checks["vector_store"] == "ok"
    assert checks["redis"].startswith("ConnectionError"), checks
    rt.close()


def test_warm_up_leaves_what_it_loaded_to_no_full_collection(tmp_path):
    """A full collection walks every tracked object; after warm-up the loaded ones are frozen out of it, so a
    request that triggers one does not pay for walking the model's and libraries' objects."""
    import gc

    rt = make_runtime(tmp_path)
    gc.unfreeze()
    try:
        rt.warm_up(ingest=False)
        frozen = gc.get_freeze_count()
        assert rt.models_loaded and frozen > 10_000
    finally:
        gc.unfreeze()  # this test process goes on making and dropping runtimes
        rt.close()


def test_an_unexpected_error_is_a_json_500_naming_the_request_id(caplog):
    import httpx
    from prometheus_client import CollectorRegistry

    from api.metrics import HttpMetrics, RequestMetricsMiddleware

    async def broken(scope, receive, send):
        raise RuntimeError("disk on fire")

    metrics = HttpMetrics(CollectorRegistry())
    app = RequestMetricsMiddleware(broken, metrics=metrics)

    async def call():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/x", headers={"X-Request-ID": "req-42"})

    import asyncio

    r = asyncio.run(call())
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-42"
    assert r.json() == {"detail": "internal error; report request id req-42"}  # no trace, no internals
    assert "disk on fire" in caplog.text  # the trace is in the log, under the same id
    assert metrics.requests.labels("unmatched", "GET", "500")._value.get() == 1
