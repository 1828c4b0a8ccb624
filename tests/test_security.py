"""API keys over HTTP, as an operator runs them: `snapdex keys` beside a running `snapdex serve`.

A tenant's key never reaches another tenant's chunks, snapshots, jobs, query sets, runs, sources or dashboard: every
operation of the OpenAPI document is tried with the wrong key (a test case per operation, so a new route
without one fails here), and the owner's data is checked unchanged afterwards.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest

from db.engine import Database
from eval.profiles import ProfileStore
from snapdex.keys import digest
from tests.benchmark_runs import peer_run
from harness.procs import REPO, auth, free_port, key_for, keys_env, snapdex_env, snapdex_serve, wait_until

pytestmark = pytest.mark.slow

DOCS = [{"id": "ledger", "text": "The alpha ledger closes every quarter on the last Friday.", "metadata": {"team": "fin"}},
        {"id": "vpn", "text": "Alpha staff reach the VPN through the north gateway only."}]
QUERIES = [{"id": "q1", "text": "when does the ledger close", "relevant": ["ledger"]},
           {"id": "q2", "text": "which gateway for the VPN", "relevant": ["vpn"]}]


def keys_cli(data_dir, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snapdex", "keys", "--data-dir", str(data_dir), *args], cwd=REPO,
                          env=snapdex_env(data_dir, **env), input=stdin, capture_output=True, text=True, timeout=120)


def stored_catalog(data, catalog_env) -> bytes:
    """Everything the catalog holds: the SQLite file and its write-ahead log, or every row of PostgreSQL's."""
    if not catalog_env:
        return b"".join(p.read_bytes() for p in data.glob("catalog.sqlite3*"))
    from db import Database
    from db.tables import metadata

    db = Database(catalog_env["SNAPDEX_DATABASE_URL"])
    try:
        return repr([db.all(t.select()) for t in metadata.sorted_tables]).encode()
    finally:
        db.dispose()


def test_keyless_serves_one_tenant_then_keys_made_by_the_cli_are_required(tmp_path, catalog_env):
    data = tmp_path / "data"
    keys_cli = functools.partial(globals()["keys_cli"], **catalog_env)  # the CLI reaches the service's catalog
    with snapdex_serve(data, log_level="info", **catalog_env) as svc:
        c = svc.client
        wait_until(lambda: "KEYLESS" in svc.log.read_text(), 30, "the start-up line")
        assert "every request is tenant 'default'" in svc.log.read_text()
        assert c.post("/retrieve", json={"query": "q"}).status_code == 404  # the default tenant, no snapshot yet
        r = c.get("/snapshots", headers={"X-Tenant": "acme"})
        assert r.status_code == 403 and "keyless for the one tenant 'default'" in r.json()["detail"]

        made = keys_cli(data, "create", "--tenant", "acme", "--name", "ci")
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        assert key.startswith("sdx_") and "shown once" in made.stderr
        # The key is kept only as its SHA-256: not in the catalog (its file and write-ahead log on SQLite).
        stored = stored_catalog(data, catalog_env)
        assert key.encode() not in stored and digest(key).encode() in stored

        r = wait_until(lambda: (x := c.get("/snapshots")).status_code == 401 and x, 15, "keys to be required")
        assert "no API key" in r.json()["detail"] and r.headers["www-authenticate"].startswith("Bearer")
        bearer = {"Authorization": f"Bearer {key}"}
        assert c.get("/snapshots", headers=bearer).json()["tenant"] == "acme"
        assert c.get("/snapshots", headers={"X-API-Key": key}).json()["tenant"] == "acme"
        assert c.get("/health").status_code == 200  # liveness needs no key

        key_id = key.split("_")[1]
        listing = keys_cli(data, "list")
        assert key_id in listing.stdout and "acme" in listing.stdout and key not in listing.stdout
        assert keys_cli(data, "revoke", key_id).returncode == 0
        wait_until(lambda: c.get("/snapshots", headers=bearer).status_code == 401, 15, "the revoked key to stop")
        assert "revoked" in keys_cli(data, "list", "--all").stdout

        hashed = keys_cli(data, "hash", stdin="some-key\n")
        assert hashed.stdout.strip() == digest("some-key")
        assert keys_cli(data, "create").returncode != 0  # neither --tenant nor --operator
        assert "invalid" in keys_cli(data, "create", "--tenant", "Bad Name").stderr


def operations(openapi: dict) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ops in openapi["paths"].items() for m in ops}


def test_a_key_never_reaches_another_tenants_data(tmp_path):
    data = tmp_path / "data"
    with snapdex_serve(data, tenants=("alpha", "beta"), SNAPDEX_GATE_FLOORS="{}",
                       SNAPDEX_WEBHOOK_ALLOW_PRIVATE="true", SNAPDEX_SOURCE_ALLOW_PRIVATE="true") as svc:
        c, A, B = svc.client, auth("alpha"), auth("beta")
        job = c.post("/ingest", json={"documents": DOCS}, headers=A).json()["job_id"]
        snap = svc.wait_job(job, headers=A)["snapshot"]
        assert c.post("/eval/query-sets", json={"name": "qa", "queries": QUERIES}, headers=A).status_code == 201
        run_id = wait_until(lambda: next((r["id"] for r in c.get("/eval/runs", headers=A).json()["runs"]
                                          if r["status"] == "done"), None), 120, "alpha's evaluation run")
        before = c.post("/retrieve", json={"query": "ledger close"}, headers=A).json()
        # Feedback of alpha's on that answer, enough for a query set of alpha's made of it.
        r = c.post("/feedback", json={"request_id": before["request_id"], "helpful": True, "signals": [
            {"chunk_id": before["hits"][0]["chunk_id"], "signal": "cited"}]}, headers=A)
        assert r.status_code == 200 and r.json()["recorded"] == 2, r.text
        # Benchmarks are the service's, not a tenant's: the operator imports a run, which every key may read.
        r = c.post("/benchmarks", json=peer_run(), headers=auth(None))
        assert r.status_code == 201, r.text
        bench_id = r.json()["id"]
        # A tuning run and a profile of alpha's, written to the catalog as the tuner would (alpha's two labelled
        # queries are too few to tune on over HTTP).
        profiles = ProfileStore(Database(data / "catalog.sqlite3"))
        tuning_id = profiles.create_tuning("alpha", {"folds": 5}).id
        profiles.record("alpha", {"fusion": "rrf"}, {"tuned_cv": 0.9}, "alpha's own", tuning_id, adopt=True)
        # A webhook of alpha's (nothing listens there: its deliveries only fail) and one delivery of it.
        nowhere = f"http://127.0.0.1:{free_port()}/alpha-hook"
        hook = c.post("/webhooks", json={"url": nowhere, "events": ["job.failed"]}, headers=A).json()
        assert c.post(f"/webhooks/{hook['id']}/test", headers=A).status_code == 202
        delivery = c.get(f"/webhooks/{hook['id']}/deliveries", headers=A).json()["deliveries"][0]["id"]
        # A source of alpha's with a sealed key (never synced: nothing answers at its endpoint).
        r = c.post("/sources", json={"name": "alpha-bucket", "kind": "s3", "config": {
            "endpoint_url": f"http://127.0.0.1:{free_port()}", "bucket": "alpha-docs", "access_key_id": "AKIAALPHA",
            "secret_access_key": "alpha-s3-secret-value"}}, headers=A)
        assert r.status_code == 201, r.text
        source = r.json()
        # A rollout of alpha's (its live snapshot against itself: an A/A).
        r = c.post("/rollouts", json={"candidate": snap}, headers=A)
        assert r.status_code == 201, r.text
        rollout = r.json()["id"]

        # Without a key, or with one that is not valid, every operation but /health is 401 (docs and MCP included).
        spec = c.get("/openapi.json", headers=A).json()
        for method, path in sorted(operations(spec) | {("GET", "/docs"), ("GET", "/openapi.json"), ("POST", "/mcp"),
                                                       ("GET", "/mcp")}):
            url = path.format(job_id=job, snap_hash=snap, doc_id="ledger", name="qa", run_id=run_id,
                              benchmark_id=bench_id, tuning_id=tuning_id, version=1,
                              webhook_id=hook["id"], delivery_id=delivery, source_id=source["id"],
                              rollout_id=rollout)
            for headers in ({"Authorization": ""}, {"Authorization": "Bearer sdx_wrong"},
                            {"Authorization": "", "X-API-Key": "nope"}):
                r = c.request(method, url, headers=headers)
                # /health is open; the sign-in form is where a key is presented (none here: 422).
                expected = {"/health": 200, "/dashboard/login": 422}.get(path, 401)
                assert r.status_code == expected, (method, path, headers, r.status_code, r.text[:200])

        # Beta's key on each of alpha's resources: refused or empty, never alpha's data.
        j = {"json": {}}
        cases = {
            ("POST", "/ingest"): ("/ingest", {"json": {"documents": [{"id": "b", "text": "beta's own words"}]}}, {202}),
            ("GET", "/jobs/{job_id}"): (f"/jobs/{job}", {}, {404}),
            ("DELETE", "/documents/{doc_id}"): ("/documents/ledger", {}, {404}),
            ("PATCH", "/documents/{doc_id}/access"): ("/documents/ledger/access", {"json": {"access": None}}, {404}),
            ("GET", "/snapshots"): ("/snapshots", {}, {200}),
            ("POST", "/snapshots"): ("/snapshots", {}, {202}),  # rebuilds beta's own index
            ("POST", "/snapshots/rollback"): ("/snapshots/rollback", {}, {404, 409}),
            ("POST", "/snapshots/{snap_hash}/promote"): (f"/snapshots/{snap}/promote", {}, {404}),
            ("POST", "/retrieve"): ("/retrieve", {"json": {"query": "quarter close"}}, {200, 404}),
            ("POST", "/retrieve/batch"): ("/retrieve/batch", {"json": {"requests": [
                {"query": "quarter close", "context": {"max_tokens": 200}}]}}, {200, 404}),
            ("POST", "/usage"): ("/usage", {"json": {"request_id": before["request_id"], "cited": ["[1]"]}},
                                 {422}),  # alpha's answer is not one beta's key was given
            ("POST", "/feedback"): ("/feedback", {"json": {"request_id": before["request_id"], "signals": [
                {"doc_id": "ledger", "signal": "cited"}]}}, {422}),  # alpha's answer is not one of beta's
            ("POST", "/rollouts"): ("/rollouts", {"json": {"candidate": snap}}, {404}),  # not a snapshot of beta's
            ("GET", "/rollouts"): ("/rollouts", {}, {200}),  # beta's own (none): never alpha's
            ("GET", "/rollouts/{rollout_id}"): (f"/rollouts/{rollout}", {}, {404}),
            ("POST", "/rollouts/{rollout_id}/stop"): (f"/rollouts/{rollout}/stop", {}, {404}),
            ("GET", "/documents"): ("/documents", {}, {200}),  # beta's own (none yet): never alpha's
            ("GET", "/documents/{doc_id}"): ("/documents/ledger", {}, {404}),
            ("GET", "/documents/{doc_id}/chunks"): ("/documents/ledger/chunks", {}, {404}),
            ("POST", "/eval/query-sets"): ("/eval/query-sets", j, {422}),
            ("GET", "/eval/query-sets"): ("/eval/query-sets", {}, {200}),
            ("GET", "/eval/query-sets/{name}"): ("/eval/query-sets/qa", {}, {404}),
            ("DELETE", "/eval/query-sets/{name}"): ("/eval/query-sets/qa", {}, {404}),
            ("POST", "/eval/query-sets/{name}/from-feedback"): ("/eval/query-sets/qa/from-feedback",
                                                                {"json": {"min_signals": 1}}, {422}),  # none of beta's
            ("POST", "/query-sets/{name}/from-feedback"): ("/query-sets/qa/from-feedback",
                                                           {"json": {"min_signals": 1}}, {422}),  # the same route
            ("POST", "/eval/runs"): ("/eval/runs", {"json": {"query_set": "qa"}}, {404}),
            ("GET", "/eval/runs"): ("/eval/runs", {}, {200}),
            ("GET", "/eval/runs/{run_id}"): (f"/eval/runs/{run_id}", {}, {404}),
            ("GET", "/eval/compare"): (f"/eval/compare?base={snap}&candidate={snap}&query_set=qa", {}, {404}),
            ("GET", "/eval/overview"): ("/eval/overview", {}, {200}),
            ("POST", "/tuning"): ("/tuning", j, {422}),  # beta has no labelled queries of its own
            ("GET", "/tuning"): ("/tuning", {}, {200}),
            ("GET", "/tuning/{tuning_id}"): (f"/tuning/{tuning_id}", {}, {404}),
            ("GET", "/profiles"): ("/profiles", {}, {200}),
            ("POST", "/profiles/rollback"): ("/profiles/rollback", {}, {409}),
            ("POST", "/profiles/{version}/activate"): ("/profiles/1/activate", {}, {404}),
            ("POST", "/webhooks"): ("/webhooks", {"json": {"url": "http://127.0.0.1:9/b", "events": ["job.failed"]}},
                                    {201}),  # beta's own
            ("GET", "/webhooks"): ("/webhooks", {}, {200}),
            ("DELETE", "/webhooks/{webhook_id}"): (f"/webhooks/{hook['id']}", {}, {404}),
            ("POST", "/webhooks/{webhook_id}/test"): (f"/webhooks/{hook['id']}/test", {}, {404}),
            ("GET", "/webhooks/{webhook_id}/deliveries"): (f"/webhooks/{hook['id']}/deliveries", {}, {404}),
            ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): (
                f"/webhooks/{hook['id']}/deliveries/{delivery}/redeliver", {}, {404}),
            ("POST", "/sources"): ("/sources", {"json": {"name": "beta-site", "kind": "web", "config": {
                "url": "http://127.0.0.1:9/beta/"}}}, {201}),  # beta's own
            ("GET", "/sources"): ("/sources", {}, {200}),
            ("GET", "/sources/{source_id}"): (f"/sources/{source['id']}", {}, {404}),
            ("PATCH", "/sources/{source_id}"): (f"/sources/{source['id']}", {"json": {"name": "mine"}}, {404}),
            ("DELETE", "/sources/{source_id}"): (f"/sources/{source['id']}", {}, {404}),
            ("POST", "/sources/{source_id}/sync"): (f"/sources/{source['id']}/sync", {}, {404}),
            ("GET", "/sources/{source_id}/syncs"): (f"/sources/{source['id']}/syncs", {}, {404}),
            ("GET", "/dashboard"): ("/dashboard", {}, {200}),
            ("GET", "/dashboard/assets/{name}"): ("/dashboard/assets/dashboard.js", {}, {200}),  # code, no data
            ("POST", "/dashboard/login"): ("/dashboard/login", {"data": {"key": key_for("beta")}}, {303}),
            ("POST", "/dashboard/logout"): ("/dashboard/logout", {}, {303}),
            ("GET", "/metrics"): ("/metrics", {}, {403}),  # every tenant's figures: the operator's only
            ("POST", "/benchmarks"): ("/benchmarks", {"json": peer_run(commit="bbbbbbb")}, {403}),  # the operator's
            ("GET", "/benchmarks"): ("/benchmarks", {}, {200}),  # the service's history, no tenant's data
            ("GET", "/benchmarks/{benchmark_id}"): (f"/benchmarks/{bench_id}", {}, {200}),
            ("GET", "/ready"): ("/ready", {}, {200, 503}),
            ("GET", "/health"): ("/health", {}, {200}),
        }
        assert set(cases) == operations(spec), operations(spec) ^ set(cases)
        secrets = ("ledger", "gateway", snap, job, run_id, tuning_id, "alpha's own", hook["secret"], hook["id"], delivery,
                   "alpha-hook", source["id"], "alpha-bucket", "alpha-docs", "alpha-s3-secret-value", rollout)
        for (method, _), (url, kw, allowed) in cases.items():
            r = c.request(method, url, headers=B, follow_redirects=False, **kw)
            assert r.status_code in allowed, (method, url, r.status_code, r.text[:300])
            if url != "/dashboard/assets/dashboard.js":
                asked = url + json.dumps(kw)  # a 404 may name what was asked for
                leaked = [s for s in secrets if s in r.text and s not in asked]
                assert not leaked, (method, url, leaked, r.text[:300])
            # Naming alpha while holding beta's key is refused, not followed. (The dashboard names its tenant in
            # the URL instead: below. Service-wide routes serve no tenant, so a tenant named there changes nothing.)
            if url not in ("/health", "/dashboard", "/dashboard/login", "/dashboard/logout", "/metrics", "/ready",
                           "/dashboard/assets/dashboard.js", "/benchmarks", f"/benchmarks/{bench_id}"):
                r = c.request(method, url, headers={**B, "X-Tenant": "alpha"}, **kw)
                assert r.status_code == 403 and "belongs to tenant 'beta'" in r.text, (method, url, r.text[:200])
        r = c.get("/dashboard", params={"tenant": "alpha"}, headers=B)
        assert r.status_code == 403

        # The operator reads service-wide figures and nothing of a tenant's.
        op = auth(None)
        assert c.get("/metrics", headers=op).status_code == 200 and c.get("/ready", headers=op).status_code == 200
        r = c.get("/snapshots", headers=op)
        assert r.status_code == 403 and "operator key" in r.json()["detail"]
        assert [b["id"] for b in c.get("/benchmarks", headers=op).json()["benchmarks"]] == [bench_id]  # beta's not kept

        # Alpha's data is as it was.
        after = c.post("/retrieve", json={"query": "ledger close"}, headers=A).json()
        assert after["snapshot"] == snap and [h["doc_id"] for h in after["hits"]] == [h["doc_id"] for h in before["hits"]]
        assert [s["name"] for s in c.get("/eval/query-sets", headers=A).json()["query_sets"]] == ["qa"]
        assert c.get(f"/jobs/{job}", headers=A).json()["status"] == "succeeded"
        assert c.get("/profiles", headers=A).json()["live"] == 1
        assert [h["id"] for h in c.get("/webhooks", headers=A).json()["webhooks"]] == [hook["id"]]
        assert [x["id"] for x in c.get("/sources", headers=A).json()["sources"]] == [source["id"]]
        assert "alpha-s3-secret-value" not in c.get("/sources", headers=A).text
        assert c.get(f"/rollouts/{rollout}", headers=A).json()["state"] == "running"


def test_settings_keys_are_checked_at_start_up(tmp_path):
    env = snapdex_env(tmp_path / "data", SNAPDEX_API_KEYS='{"not-a-hash": "acme"}')
    run = subprocess.run([sys.executable, "-m", "snapdex", "keys", "list"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0 and "is not a SHA-256 in hex" in run.stderr
    env["SNAPDEX_API_KEYS"] = keys_env("acme")
    run = subprocess.run([sys.executable, "-m", "snapdex", "keys", "list"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "acme" in run.stdout and "(operator)" in run.stdout and "settings" in run.stdout
