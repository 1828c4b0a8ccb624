"""Recall dashboard load times at the size the issue names: 100 snapshots and 1,000 queries a set.

A fresh data folder is seeded through the library (manifest, evaluation store, gate verdicts; synthetic but
realistic per-query results from eval.metrics.evaluate), then the real service is started on it and measured:

- GET /dashboard (the page with the overview embedded): time and bytes;
- GET /eval/overview;
- GET /eval/compare between two snapshots of a 1,000-query set (adjacent builds, and the oldest vs the live one);
- in headless chromium (Playwright, Debian's /usr/bin/chromium): navigation start to the chart drawn (cold cache
  in a new context each time, and warm reloads), and a click on Compare to the drill-down tables drawn.

No vector collection is created: the dashboard reads the catalog database only. Each snapshot carries the
service's canonical index config, so the service sees no config drift at start-up and queues no rebuild.

Usage: .venv/bin/python bench/dashboard_bench.py [--snapshots 100] [--queries 1000] [--reps 20]
       [--out bench/results/dashboard.json] [--screenshot artifacts/dashboard-bench.png]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.common import machine, snapdex_serve, write_result  # noqa: E402
from eval.gate import SetOutcome, judge  # noqa: E402
from eval.metrics import QueryResult, evaluate, metric_names  # noqa: E402
from eval.store import LabelledQuery, Verdict  # noqa: E402
from index_snapshots.builder import collection_name  # noqa: E402
from snapdex.runtime import Runtime  # noqa: E402
from snapdex.settings import Settings  # noqa: E402
from harness.procs import auth, wait_until  # noqa: E402  (the launcher the tests use)

WORDS = ("invoice refund vpn password laptop badge parking vacation contract payroll printer wifi onboarding "
         "expense travel insurance pension locker canteen meeting room license backup migration release deploy "
         "incident outage ticket escalation region tenant quota billing export import audit policy").split()
TOPICS = ("how do I", "where can I find", "what is the policy for", "who approves", "when does", "why is my",
          "can I change", "steps to reset")
RECIPE = {"synthetic": "bench/dashboard_bench.py", "rerank": "late-interaction", "fusion": "dbsf"}


# --- seeding ---------------------------------------------------------------------------------------------------


class Corpus:
    """Per-query rankings that drift from build to build: most queries keep their ranking, some are redrawn at
    the build's quality, so adjacent snapshots differ in tens of queries and distant ones in hundreds."""

    def __init__(self, rng: random.Random, n_queries: int, n_docs: int, depth: int) -> None:
        self.rng, self.depth = rng, depth
        docs = [f"doc-{i:05d}" for i in range(n_docs)]
        self.queries = []
        self.qrels: dict[str, dict[str, int]] = {}
        self.distractors: dict[str, list[str]] = {}
        for i in range(n_queries):
            qid = f"q{i:04d}"
            text = f"{rng.choice(TOPICS)} {' '.join(rng.sample(WORDS, rng.randint(2, 4)))}"
            if i % 97 == 5:
                text += " <b>&amp;</b> </script>"  # markup in query text: the page must show it as text
            relevant = rng.sample(docs, rng.choice((1, 1, 1, 2, 2, 3)))
            self.qrels[qid] = {d: rng.choice((1, 1, 2)) for d in relevant}
            self.queries.append(LabelledQuery(qid, text, self.qrels[qid]))
            self.distractors[qid] = [d for d in rng.sample(docs, depth + 10) if d not in self.qrels[qid]]
        self.ranks = {qid: self._draw(qid, 0.88) for qid in self.qrels}

    def _draw(self, qid: str, quality: float) -> dict[str, int | None]:
        out, taken = {}, set()
        for doc in self.qrels[qid]:
            if self.rng.random() > quality + 0.08:
                out[doc] = None
                continue
            rank = 1 + int(self.rng.expovariate(1 / (0.6 + (1 - quality) * 25)))
            while rank in taken:
                rank += 1
            out[doc] = rank if rank <= self.depth else None
            taken.add(rank)
        return out

    def step(self, state: dict, quality: float, changed: float) -> dict:
        """The next build's per-query relevant ranks, from the given state."""
        nxt = dict(state)
        for qid in self.qrels:
            if self.rng.random() < changed:
                nxt[qid] = self._draw(qid, quality)
        return nxt

    def ranking(self, qid: str, ranks: dict[str, int | None]) -> list[str]:
        placed = {r: d for d, r in ranks.items() if r is not None}
        fill = iter(self.distractors[qid])
        return [placed.get(pos) or next(fill) for pos in range(1, self.depth + 1)]


def seed(data_dir: Path, tenant: str, n_snapshots: int, n_queries: int, seed_value: int) -> dict:
    started = time.perf_counter()
    rng = random.Random(seed_value)
    rt = Runtime(Settings(data_dir=data_dir))
    settings = rt.settings
    config = rt.index_config.canonical()  # loads the embedding model once, for its dimension
    ks = tuple(settings.eval_ks)
    names = metric_names(ks)
    corpus = Corpus(rng, n_queries, n_docs=max(5000, n_queries * 5), depth=max(ks))
    support, _ = rt.evals.put_query_set(tenant, "support", corpus.queries, "tickets labelled by the support team")
    smoke_v1, _ = rt.evals.put_query_set(tenant, "smoke", corpus.queries[:40])
    smoke_v2, _ = rt.evals.put_query_set(tenant, "smoke", corpus.queries[:50])

    state = corpus.ranks
    live_state, live_metrics, live_hash = state, None, None
    quality = 0.88
    documents, chunks = 4000, 9000
    held, overrides, hashes = [], [], []
    failed = 0
    parent = None
    cached: dict[tuple[str, str], QueryResult] = {}  # (qid, ranks signature) -> result

    def score(run_state: dict, qids: list[str]) -> tuple[dict[str, float], list[QueryResult]]:
        """evaluate() on the queries whose ranking is new; the others keep their earlier per-query result."""
        missing = {}
        for qid in qids:
            key = (qid, repr(sorted(run_state[qid].items())))
            if key not in cached:
                missing[qid] = key
        if missing:
            _, fresh = evaluate({q: corpus.qrels[q] for q in missing},
                                {q: corpus.ranking(q, run_state[q]) for q in missing}, ks=ks)
            for r in fresh:
                cached[missing[r.query_id]] = r
        per_query = [cached[(q, repr(sorted(run_state[q].items())))] for q in qids]
        aggregate = {n: math.fsum(r.metrics[n] for r in per_query) / len(per_query) for n in names}
        return aggregate, per_query

    def record(snap: str, query_set, run_state: dict, qids: list[str], trigger: str) -> tuple[str, dict]:
        metrics, per_query = score(run_state, qids)
        run_id = rt.evals.start_run(tenant, snap, query_set.id, RECIPE, trigger)
        latency = {"p50": rng.uniform(18, 26), "p95": rng.uniform(40, 70), "p99": rng.uniform(80, 120),
                   "mean": rng.uniform(20, 30)}
        rt.evals.finish_run(run_id, metrics, latency, per_query, seconds=len(qids) * 0.024)
        return run_id, metrics

    all_q = [q.id for q in corpus.queries]
    for i in range(n_snapshots):
        snap = hashlib.sha256(f"dashboard-bench-{seed_value}-{i}".encode()).hexdigest()
        hashes.append(snap)
        bad = i > 0 and rng.random() < 0.15  # a build that hurts retrieval: the gate should hold it
        quality = min(0.96, max(0.8, quality + rng.gauss(0.002, 0.005)))
        state = corpus.step(live_state, 0.55 if bad else quality, 0.25 if bad else 0.06)
        new_docs = rng.randint(0, 40)
        documents += new_docs
        chunks += new_docs * 2 + rng.randint(0, 5)
        rt.manifest.begin(tenant, snap, collection_name(tenant, snap), parent, config)
        embedded = rng.randint(20, 400)
        rt.manifest.finish(tenant, snap, documents=documents, chunks=chunks, embedded=embedded,
                           reused=chunks - embedded, seconds=rng.uniform(30, 90))
        run_id, metrics = record(snap, support, state, all_q, "build" if i else "upload")
        runs = [run_id]
        if i >= n_snapshots // 2:
            record(snap, smoke_v2, state, all_q[:50], "build")
        elif i % 3 == 0:
            record(snap, smoke_v1, state, all_q[:40], "build")
        verdict = judge(settings.gate_policy, [SetOutcome("support", 1, metrics, live_metrics)])
        rt.evals.put_verdict(tenant, snap, Verdict(verdict.passed, verdict.reasons, verdict.checks, runs, live_hash))
        failed += not verdict.passed
        if verdict.passed or failed % 6 == 0:  # now and then an operator overrides the gate
            rt.manifest.promote(tenant, snap, action="promote" if verdict.passed else "override")
            if not verdict.passed:
                rt.evals.record_override(tenant, snap)
                overrides.append(snap)
            live_state, live_metrics, live_hash = state, metrics, snap
            parent = snap
        else:
            rt.manifest.hold(tenant, snap, "held by the gate: " + "; ".join(verdict.reasons))
            held.append(snap)

    # Spread the builds over the past weeks (seeded just now, they would all say "just now").
    now = time.time()
    from sqlalchemy import case, update

    from db.tables import eval_runs, gate_verdicts, snapshots, switches

    with rt.db.tx() as conn:
        for i, snap in enumerate(hashes):
            at = now - (n_snapshots - i) * 9 * 3600
            conn.execute(update(snapshots).where(snapshots.c.tenant == tenant, snapshots.c.hash == snap)
                         .values(created_at=at, built_at=at + snapshots.c.build_seconds))
            conn.execute(update(eval_runs).where(eval_runs.c.tenant == tenant, eval_runs.c.snapshot == snap)
                         .values(created_at=at + 120, finished_at=at + 150))
            g = gate_verdicts.c
            conn.execute(update(gate_verdicts).where(g.tenant == tenant, g.snapshot == snap).values(
                decided_at=at + 160, override_at=case((g.override_at.is_(None), None), else_=at + 7200)))
            conn.execute(update(switches).where(switches.c.tenant == tenant, switches.c.to_hash == snap)
                         .values(at=at + 170))
    rt.close()
    live = live_hash
    if live is None:
        raise SystemExit("no seeded snapshot passed the gate; try another --seed")
    newest_other = next(h for h in reversed(hashes) if h != live)
    return {"seconds": time.perf_counter() - started, "live": live, "held": len(held), "overrides": len(overrides),
            "pairs": {"adjacent": (live, newest_other, "recall@10"), "far": (hashes[0], live, "recall@10"),
                      "far_ndcg": (hashes[0], live, "ndcg@10")}}


# --- measuring ------------------------------------------------------------------------------------------------


def pcts(values: list[float]) -> dict:
    a = np.array(values, dtype=float)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "min": round(float(a.min()), 1), "max": round(float(a.max()), 1), "n": len(values)}


def timed_get(client, url: str, reps: int, **kw) -> tuple[dict, object]:
    client.get(url, **kw).raise_for_status()  # warm-up, not counted
    took, r = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        r = client.get(url, **kw)
        took.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return pcts(took), r


def http_bench(svc, tenant: str, info: dict, reps: int) -> dict:
    headers = auth(tenant)
    out = {}
    t, r = timed_get(svc.client, f"/dashboard?tenant={tenant}", reps, headers=headers)
    out["dashboard"] = {"ms": t, "bytes": len(r.content)}
    t, r = timed_get(svc.client, "/eval/overview", reps, headers=headers)
    out["overview"] = {"ms": t, "bytes": len(r.content)}
    for label, (base, cand, metric) in info["pairs"].items():
        params = {"base": base, "candidate": cand, "query_set": "support", "metric": metric}
        t, r = timed_get(svc.client, "/eval/compare", reps, headers=headers, params=params)
        body = r.json()
        out[f"compare_{label}"] = {"ms": t, "bytes": len(r.content), "gained": len(body["gained"]),
                                   "lost": len(body["lost"]), "unchanged": body["unchanged"]}
    js = svc.client.get("/dashboard/assets/plotly.min.js", headers={**headers, "Accept-Encoding": "gzip"})
    out["plotly_js_bytes"] = {"gzip": int(js.headers.get("content-length", len(js.content))),
                              "raw": len(svc.client.get("/dashboard/assets/plotly.min.js",
                                                        headers={**headers, "Accept-Encoding": "identity"}).content)}
    return out


MEASURE_COMPARE = """async ([base, candidate, metric]) => {
    const dd = document.querySelector('[data-testid="drilldown"]');
    document.getElementById('base').value = base;
    document.getElementById('candidate').value = candidate;
    document.getElementById('metric').value = metric;
    const seq = dd.dataset.seq;
    const done = new Promise(resolve => {
        const mo = new MutationObserver(() => { if (dd.dataset.seq !== seq) { mo.disconnect(); resolve(); } });
        mo.observe(dd, {attributes: true, attributeFilter: ['data-seq']});
    });
    const t0 = performance.now();
    document.querySelector('[data-testid="compare-button"]').click();
    await done;
    void document.body.offsetHeight;                          // layout of the new tables
    await new Promise(r => requestAnimationFrame(() => r()));  // and the frame that paints them
    return {ms: performance.now() - t0, state: dd.dataset.state, error: dd.dataset.state === "error" ? dd.textContent : null,
            rows: dd.querySelectorAll('table.changes tbody tr').length};
}"""


def browser_bench(url: str, info: dict, reps: int, screenshot: Path | None, headers: dict[str, str]) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        return {"skipped": "Debian package chromium not installed"}
    outside: list[str] = []
    errors: list[str] = []
    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            def watch(page):
                page.on("request", lambda r: outside.append(r.url) if not (r.url.startswith(url.split("/dashboard")[0])
                                                                          or r.url.startswith("data:")) else None)
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))

            def chart_ms(page) -> float:
                page.wait_for_function("window.__chartDrawnAt !== undefined", timeout=60_000)
                return page.evaluate("window.__chartDrawnAt")

            cold, html_done, plotly_got, table_drawn, plotly_ran = [], [], [], [], []
            for _ in range(reps):
                context = browser.new_context(viewport={"width": 1400, "height": 900}, extra_http_headers=headers)
                page = context.new_page()
                watch(page)
                page.goto(url, wait_until="commit")
                cold.append(chart_ms(page))
                html_done.append(page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd"))
                table_drawn.append(page.evaluate("window.__tableDrawnAt"))
                plotly_ran.append(page.evaluate("window.__plotlyAt"))
                plotly_got.append(page.evaluate("performance.getEntriesByType('resource')"
                                                ".find(e => e.name.includes('plotly.min.js')).responseEnd"))
                context.close()
            out["cold_breakdown_ms"] = {"html_received": pcts(html_done), "plotly_js_received": pcts(plotly_got),
                                        "table_drawn": pcts(table_drawn),
                                        "plotly_js_compiled_and_running": pcts(plotly_ran),
                                        "chart_drawn": pcts(cold)}
            context = browser.new_context(viewport={"width": 1400, "height": 900}, extra_http_headers=headers)
            page = context.new_page()
            watch(page)
            page.goto(url)
            chart_ms(page)
            warm = []
            for _ in range(reps):
                page.reload(wait_until="commit")
                warm.append(chart_ms(page))
            out["chart_cold_cache_ms"] = pcts(cold)
            out["chart_warm_cache_ms"] = pcts(warm)
            out["table_rows"] = page.locator('[data-testid="snapshot-row"]').count()
            out["chart_points"] = page.evaluate(
                "document.querySelector('[data-testid=\"recall-chart\"]').data[0].x.length")
            for label, pair in info["pairs"].items():
                page.evaluate(MEASURE_COMPARE, list(pair))  # warm-up, not counted
                samples = [page.evaluate(MEASURE_COMPARE, list(pair)) for _ in range(reps)]
                assert all(s["state"] == "done" for s in samples), samples[:1]
                out[f"compare_{label}_ms"] = pcts([s["ms"] for s in samples])
                out[f"compare_{label}_rows"] = samples[-1]["rows"]
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
                page.locator('[data-testid="drilldown"]').scroll_into_view_if_needed()
                page.screenshot(path=str(screenshot.with_name(screenshot.stem + "-drilldown.png")))
            context.close()
        finally:
            browser.close()
    out["requests_outside_127.0.0.1"] = len(set(outside))
    out["console_errors"] = errors[:10]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--snapshots", type=int, default=100)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--tenant", default="default")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dashboard.json")
    p.add_argument("--screenshot", type=Path, default=None, help="also save the page as seen by the bench")
    p.add_argument("--keep", action="store_true", help="keep the seeded data folder")
    args = p.parse_args()


    tmp = Path(tempfile.mkdtemp(prefix="snapdex-dashbench-"))
    try:
        print(f"seeding {args.snapshots} snapshots x {args.queries} queries in {tmp} ...", flush=True)
        info = seed(tmp / "data", args.tenant, args.snapshots, args.queries, args.seed)
        print(f"seeded in {info['seconds']:.1f}s: {info['held']} held, {info['overrides']} overridden; "
              "starting the service ...", flush=True)
        with snapdex_serve(tmp / "data", tenants=(args.tenant,)) as svc:
            wait_until(lambda: svc.client.get("/ready").json()["ready"], 120, "/ready")
            snaps = svc.client.get("/snapshots", headers=auth(args.tenant)).json()
            assert len(snaps["snapshots"]) == args.snapshots and not snaps["config_drift"], snaps["config_drift"]
            http = http_bench(svc, args.tenant, info, args.reps)
            browser = browser_bench(f"{svc.url}/dashboard?tenant={args.tenant}&set=support&version=1", info, args.reps, args.screenshot,
                                    auth(args.tenant))
            jobs_queued = svc.client.get("/snapshots", headers=auth(args.tenant)).json()["snapshots"]
            assert len(jobs_queued) == args.snapshots, "the service built a snapshot of its own (config drift?)"
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "machine": machine(),
        "params": {"snapshots": args.snapshots, "queries": args.queries, "reps": args.reps, "seed": args.seed},
        "seed_seconds": round(info["seconds"], 1), "held": info["held"], "overrides": info["overrides"],
        "http": http, "browser": browser,
    }
    rows = [("GET /dashboard", http["dashboard"]["ms"], f"{http['dashboard']['bytes'] / 1024:.0f} KiB"),
            ("GET /eval/overview", http["overview"]["ms"], f"{http['overview']['bytes'] / 1024:.0f} KiB")]
    for label, (_, _, metric) in info["pairs"].items():
        c = http[f"compare_{label}"]
        rows.append((f"GET /eval/compare ({label})", c["ms"], f"{c['bytes'] / 1024:.0f} KiB, {metric}: "
                     f"{c['gained']} gained / {c['lost']} lost"))
    if "skipped" not in browser:
        rows += [("table drawn, cold cache", browser["cold_breakdown_ms"]["table_drawn"],
                  "navigation start -> snapshot table and drill-down usable"),
                 ("chart drawn, cold cache", browser["chart_cold_cache_ms"], "navigation start -> Plotly drawn"),
                 ("  of which plotly.min.js compiled", browser["cold_breakdown_ms"][
                     "plotly_js_compiled_and_running"], "navigation start -> plotly.min.js ran"),
                 ("chart drawn, warm cache", browser["chart_warm_cache_ms"], "reload")]
        rows += [(f"drill-down drawn ({label})", browser[f"compare_{label}_ms"],
                  f"{browser[f'compare_{label}_rows']} rows") for label in info["pairs"]]
    print(f"\n{machine()}; {args.snapshots} snapshots, {args.queries} queries a set, {args.reps} repetitions")
    print(f"{'':34} {'p50 ms':>8} {'p95 ms':>8}")
    for name, t, note in rows:
        print(f"{name:34} {t['p50']:8.1f} {t['p95']:8.1f}   {note}")
    print()
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
