"""Benchmark history over HTTP, as an operator feeds it: runs of bench/peer_bench.py imported into a real
`snapdex serve` (by the API and by `snapdex bench import`), summarised newest first for any key, kept once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.benchmark_runs import peer_run
from harness.procs import REPO, auth, key_for, snapdex_env, snapdex_serve

pytestmark = pytest.mark.slow

OPERATOR, TENANT = auth(None), auth("acme")
MISSED_WALL = "run: whole command < 20 min (s)"


def bench_cli(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snapdex", "bench", "import", *args], cwd=REPO,
                          env=snapdex_env(tmp_path / "cli", **env), capture_output=True, text=True, timeout=120)


def error_fields(r) -> set[str]:
    """Where a 422 says the body was wrong: the validation errors' locations, dotted."""
    detail = r.json()["detail"]
    return {".".join(str(p) for p in e["loc"][1:]) for e in detail} if isinstance(detail, list) else {detail}


def test_an_operator_imports_runs_and_every_key_reads_them(tmp_path):
    with snapdex_serve(tmp_path / "data", tenants=("acme",)) as svc:
        c = svc.client
        r = c.get("/benchmarks", headers=TENANT)
        assert r.status_code == 200 and r.json() == {"benchmarks": []}

        run = peer_run()
        r = c.post("/benchmarks", json=run, headers=OPERATOR)
        assert r.status_code == 201, r.text
        first = r.json()
        assert first["created"] is True and first["name"] == "peers"
        assert first["date"] == run["date"] and first["commit"] == run["git"]["commit"]
        assert first["machine"] == "x86_64, 2 cores, Python 3.11.7" and first["dirty"] is False
        assert first["ndcg_at_10"] == {"snapdex": 0.7412, "peer": 0.7165}
        assert first["recall_at_100"] == {"snapdex": 0.953, "peer": 0.9483}
        assert first["first_stage_p95_ms"] == 28.94 and first["peer_p95_ms"] == 95.27
        assert first["first_stage_p95_ratio"] == round(28.94 / 95.27, 4) == 0.3038
        assert first["p95_100k_ms"] == 31.57
        assert first["build_s"] == {"snapdex": 1474.33, "peer": 237.26} and first["wall_s"] == 2079.6
        assert first["targets"] == {"met": 6, "total": 7, "missed": [MISSED_WALL]}

        # The same run again, even with its date spelled another way, is the stored one: 200, same id, no copy.
        again = c.post("/benchmarks", json=run, headers=OPERATOR)
        assert again.status_code == 200 and again.json()["id"] == first["id"] and again.json()["created"] is False
        same_instant = peer_run(date="2026-11-25T03:36:13Z")
        assert c.post("/benchmarks", json=same_instant, headers=OPERATOR).json()["id"] == first["id"]

        # A later run orders first; an older one imported last still orders by when it ran.
        later = peer_run(date="2026-12-02T09:00:00+00:00", commit="fbb6958", wall_s=1100.0)
        older = peer_run(date="2026-11-20T08:00:00+01:00", commit="35429c2")
        r_later = c.post("/benchmarks", json=later, headers=OPERATOR)
        r_older = c.post("/benchmarks", json=older, headers=OPERATOR)
        assert r_later.status_code == 201 and r_older.status_code == 201
        assert r_later.json()["targets"] == {"met": 7, "total": 7, "missed": []}
        listing = c.get("/benchmarks", headers=TENANT)  # a tenant's key reads the service-wide history
        assert listing.status_code == 200
        runs = listing.json()["benchmarks"]
        assert [b["id"] for b in runs] == [r_later.json()["id"], first["id"], r_older.json()["id"]]
        assert [b["commit"] for b in runs] == ["fbb6958", run["git"]["commit"], "35429c2"]
        assert runs[1] == {**first, "created": None}
        newest = c.get("/benchmarks", params={"limit": 1}, headers=OPERATOR).json()["benchmarks"]
        assert [b["commit"] for b in newest] == ["fbb6958"]
        assert c.get("/benchmarks", params={"name": "other"}, headers=TENANT).json() == {"benchmarks": []}

        # One run, whole: every key the benchmark wrote, as it wrote it.
        r = c.get(f"/benchmarks/{first['id']}", headers=TENANT)
        assert r.status_code == 200
        assert r.json()["run"] == run and r.json()["targets"] == first["targets"]
        r = c.get("/benchmarks/999999", headers=TENANT)
        assert r.status_code == 404 and "999999" in r.json()["detail"]
        assert c.get("/benchmarks/latest", headers=TENANT).status_code == 422

        # A tenant's key cannot write the service's history; no key reaches it at all.
        r = c.post("/benchmarks", json=peer_run(commit="aaaaaaa"), headers=TENANT)
        assert r.status_code == 403 and "operator key" in r.json()["detail"]
        for method, url in (("POST", "/benchmarks"), ("GET", "/benchmarks"), ("GET", f"/benchmarks/{first['id']}")):
            r = c.request(method, url, headers={"Authorization": ""}, json=run if method == "POST" else None)
            assert r.status_code == 401, (method, url, r.text)
        assert len(c.get("/benchmarks", headers=OPERATOR).json()["benchmarks"]) == 3


def test_a_bad_run_is_refused_naming_the_field(tmp_path):
    with snapdex_serve(tmp_path / "data", tenants=("acme",)) as svc:
        c = svc.client

        def refused(run: dict, **kw) -> set[str]:
            r = c.post("/benchmarks", json=run, headers=OPERATOR, **kw)
            assert r.status_code == 422, r.text
            return error_fields(r)

        no_peer = peer_run()
        del no_peer["systems"]["peer"]
        assert "systems.peer" in refused(no_peer)
        no_ndcg = peer_run()
        del no_ndcg["systems"]["snapdex default"]["quality"]["ndcg@10"]
        assert "systems.snapdex default.quality.ndcg@10" in refused(no_ndcg)
        slow = peer_run()
        slow["systems"]["peer"]["latency_ms"]["p95"] = "slow"
        assert "systems.peer.latency_ms.p95" in refused(slow)
        no_date = peer_run()
        del no_date["date"]
        assert "date" in refused(no_date)
        assert "date" in refused(peer_run(date="last tuesday"))
        assert "git.commit" in refused(peer_run(commit="HEAD"))
        assert "git" in refused({k: v for k, v in peer_run().items() if k != "git"})
        assert "systems" in refused({"date": "2026-11-25T03:36:13+00:00", "git": {"commit": "fbb6958"}})
        # NaN is no JSON, but Python's reader takes it: refused in a checked figure and anywhere else in the run.
        nan_p95 = json.dumps(peer_run()).replace('"p95": 95.27', '"p95": NaN')
        r = c.post("/benchmarks", content=nan_p95, headers={**OPERATOR, "content-type": "application/json"})
        assert r.status_code == 422 and "systems.peer.latency_ms.p95" in error_fields(r)
        nan_extra = json.dumps({**peer_run(), "phases_s": {"queries": float("nan")}})
        r = c.post("/benchmarks", content=nan_extra, headers={**OPERATOR, "content-type": "application/json"})
        assert r.status_code == 422 and "phases_s.queries" in error_fields(r) and "NaN" in r.text
        r = c.post("/benchmarks", params={"name": "no such name!"}, json=peer_run(), headers=OPERATOR)
        assert r.status_code == 422 and "query.name" in {".".join(map(str, e["loc"])) for e in r.json()["detail"]}
        assert c.get("/benchmarks", headers=OPERATOR).json() == {"benchmarks": []}  # nothing half-stored


def test_cli_imports_a_results_file(tmp_path):
    results = tmp_path / "peers.json"
    results.write_text(json.dumps(peer_run(), indent=2))
    with snapdex_serve(tmp_path / "data", tenants=("acme",)) as svc:
        out = bench_cli(tmp_path, str(results), "--url", svc.url, "--api-key", key_for(None))
        assert out.returncode == 0, out.stderr
        (stored,) = svc.client.get("/benchmarks").json()["benchmarks"]
        assert out.stdout.splitlines() == [
            f"benchmark {stored['id']}: peers run of 2026-11-25T03:36:13+00:00, commit 225b5fb98b: imported (new)",
            f"targets met 6/7; missed: {MISSED_WALL}"]

        # Again, with the key from the environment: the stored run, said so.
        out = bench_cli(tmp_path, str(results), "--url", svc.url, SNAPDEX_API_KEY=key_for(None))
        assert out.returncode == 0, out.stderr
        assert f"benchmark {stored['id']}:" in out.stdout and "imported before, kept as it was" in out.stdout
        assert len(svc.client.get("/benchmarks").json()["benchmarks"]) == 1

        out = bench_cli(tmp_path, str(results), "--url", svc.url, "--api-key", key_for("acme"))
        assert out.returncode != 0 and "import refused (403)" in out.stderr
        broken = tmp_path / "broken.json"
        broken.write_text('{"date": ')
        out = bench_cli(tmp_path, str(broken), "--url", svc.url, "--api-key", key_for(None))
        assert out.returncode != 0 and f"cannot read {broken} as JSON" in out.stderr
        del_peer = peer_run(commit="fbb6958")
        del del_peer["systems"]["peer"]
        results.write_text(json.dumps(del_peer))
        out = bench_cli(tmp_path, str(results), "--url", svc.url, "--api-key", key_for(None))
        assert out.returncode != 0 and "import refused (422)" in out.stderr and "peer" in out.stderr


def test_keyless_service_takes_runs_from_its_one_caller(tmp_path):
    # As with /metrics: a keyless service (the embedded default on 127.0.0.1) has no operator to ask for.
    results = tmp_path / "peers.json"
    results.write_text(json.dumps(peer_run()))
    with snapdex_serve(tmp_path / "data") as svc:
        out = bench_cli(tmp_path, str(results), "--url", svc.url)
        assert out.returncode == 0 and "imported (new)" in out.stdout, out.stderr
        (run,) = svc.client.get("/benchmarks").json()["benchmarks"]
        assert run["commit"] == "225b5fb98b7543c3393fb2c3708746a002148f9e"
        assert svc.client.get(f"/benchmarks/{run['id']}").json()["run"]["corpus"]["documents"] == 5183
