"""The recall dashboard in a real browser (Debian's chromium driven by Playwright) against a real service: two
builds scored on an uploaded query set, the chart, the snapshot table, the per-query drill-down, the benchmark
history, the sources with their last sync, and not one request leaving the machine."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from eval.profiles import ProfileStore
from db.engine import Database
from tests.benchmark_runs import peer_run
from harness.procs import REPO, auth, free_port, key_for, snapdex_serve, wait_until
from tests.test_access import keys_cli

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

TENANT = auth("dash")
DOCS = [
    {"id": "billing", "text": "# Billing\n\nInvoices are sent on the first working day of each month. "
                              "Refunds take five to seven business days.", "metadata": {"title": "Billing"}},
    {"id": "vpn", "text": "The VPN client must be updated before connecting from abroad. Use the company "
                          "certificate and two-factor authentication.", "metadata": {"title": "VPN"}},
    {"id": "leave", "text": "Employees get twenty-five vacation days per year. Unused vacation days carry over "
                            "until the end of March.", "metadata": {"title": "Leave"}},
    {"id": "coffee", "text": "The coffee machine on the third floor is descaled every Friday. Report a broken "
                             "machine to the facilities team.", "metadata": {"title": "Coffee"}},
    {"id": "passwords", "text": "Reset a forgotten password at the self-service portal. Passwords expire after "
                                "ninety days and must have twelve characters.", "metadata": {"title": "Passwords"}},
    {"id": "parking", "text": "The parking garage opens at six in the morning. Visitors park on level minus two "
                              "with a ticket from reception.", "metadata": {"title": "Parking"}},
]
QUERIES = [
    {"id": "q-billing", "text": "when are invoices sent", "relevant": ["billing"]},
    {"id": "q-vpn", "text": "how do I connect to the VPN from abroad", "relevant": ["vpn"]},
    {"id": "q-leave", "text": "how many vacation days do employees get", "relevant": ["leave"]},
    {"id": "q-coffee", "text": "who fixes the coffee machine", "relevant": ["coffee"]},
    {"id": "q-passwords", "text": "I forgot my password <b>help</b>", "relevant": ["passwords"]},
    {"id": "q-parking", "text": "where do visitors park", "relevant": ["parking"]},
]
# The second build: a document that competes with "leave", and "parking" rewritten into something else, so
# that its query most likely loses rank (the gate may then hold the build; either outcome is fine here).
CHANGES = [
    {"id": "contractors", "text": "Contractors do not get paid vacation days. Vacation days of contractors are "
                                  "agreed per contract, and how many days they get is up to their agency.",
     "metadata": {"title": "Contractors"}},
    {"id": "parking", "text": "The canteen serves lunch from noon until two. The soup of the day is vegetarian.",
     "metadata": {"title": "Canteen"}},
]


def artifacts_dir() -> Path:
    return Path(os.environ.get("SNAPDEX_TEST_ARTIFACTS") or REPO / "artifacts")


def ingest(svc, documents: list[dict]) -> dict:
    r = svc.client.post("/ingest", json={"documents": documents}, headers=TENANT)
    assert r.status_code == 202, r.text
    job = svc.wait_job(r.json()["job_id"], headers=TENANT)
    assert job["status"] == "succeeded", job
    return job


BENCH_EMPTY = ("No benchmark runs imported yet: run bench/peer_bench.py, then snapdex bench import "
               "bench/results/peers.json")


def sign_in(page, key: str) -> None:
    page.fill("form input#key", key)
    with page.expect_navigation(wait_until="load"):
        page.click("form button[type=submit]")


def test_dashboard_in_chromium(tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian package chromium not installed; .ci/run installs it")
    if sync_playwright is None:
        pytest.skip("playwright is not installed (pip install -e '.[dev]'); it drives Debian's chromium")

    with snapdex_serve(tmp_path / "data", tenants=("dash", "nobody"), SNAPDEX_WEBHOOK_ALLOW_PRIVATE="true",
                       SNAPDEX_SOURCE_FOLDER_ROOTS=json.dumps([str(tmp_path)])) as svc:
        # --- state: a build, a query set scored on it, a second build scored and gated ----------------------
        first = ingest(svc, DOCS)
        r = svc.client.post("/eval/query-sets", json={"name": "kb", "queries": QUERIES}, headers=TENANT)
        assert r.status_code == 201, r.text

        def evaluated():
            runs = svc.client.get("/eval/runs", headers=TENANT).json()["runs"]
            failed = [x for x in runs if x["status"] == "failed"]
            assert not failed, failed
            return [x for x in runs if x["status"] == "done"]

        wait_until(evaluated, 120, "the evaluation of the first snapshot")
        second = ingest(svc, CHANGES)
        assert second["snapshot"] != first["snapshot"]
        listing = svc.client.get("/snapshots", headers=TENANT).json()
        statuses = {s["hash"]: s["status"] for s in listing["snapshots"]}
        assert set(statuses) == {first["snapshot"], second["snapshot"]}, statuses
        live = listing["live"]
        assert live in statuses
        runs = svc.client.get("/eval/runs", headers=TENANT).json()["runs"]
        assert {x["snapshot"] for x in runs if x["status"] == "done"} == set(statuses), runs

        # --- plain HTTP: assets, 404, a bad tenant -----------------------------------------------------------
        js = svc.client.get("/dashboard/assets/plotly.min.js", headers=TENANT)
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert "max-age" in js.headers["cache-control"] and len(js.content) > 1_000_000
        assert svc.client.get("/dashboard/assets/secrets.txt", headers=TENANT).status_code == 404
        assert svc.client.get("/dashboard/assets/index.html", headers=TENANT).status_code == 404
        bad = svc.client.get("/dashboard?tenant=Bad%20Name", headers=TENANT)
        assert bad.status_code == 422 and "tenant" in bad.text
        other = svc.client.get("/dashboard?tenant=nobody", headers=TENANT)  # the key decides, never the URL
        assert other.status_code == 403 and "belongs to tenant 'dash'" in other.text
        page_html = svc.client.get("/dashboard", params={"tenant": "dash"}, headers=TENANT)
        assert page_html.status_code == 200 and 'id="overview"' in page_html.text
        assert "https://" not in page_html.text and "http://" not in page_html.text

        # A webhook whose receiver is not there: its test event is tried, fails and waits for its next attempt.
        hook = svc.client.post("/webhooks", json={"url": f"http://127.0.0.1:{free_port()}/hook", "events":
                                                  ["snapshot.held"], "description": "on-call"}, headers=TENANT).json()
        assert svc.client.post(f"/webhooks/{hook['id']}/test", headers=TENANT).status_code == 202
        wait_until(lambda: svc.client.get(f"/webhooks/{hook['id']}/deliveries", headers=TENANT)
                   .json()["deliveries"][0]["attempts"] >= 1, 30, "the first delivery attempt")

        # Two sources, neither changing a document: one synced (its include matches no file), one whose folder is
        # gone by its sync (it fails with the reason).
        for name, include in (("shelf", ["*.none"]), ("archive", None)):
            (tmp_path / name).mkdir()
            (tmp_path / name / "a.txt").write_text("a file")
            config = {"path": str(tmp_path / name), **({"include": include} if include else {})}
            r = svc.client.post("/sources", json={"name": name, "kind": "folder", "config": config,
                                                  "schedule": {"every_s": 86400}}, headers=TENANT)
            assert r.status_code == 201, r.text
            if name == "archive":
                shutil.rmtree(tmp_path / name)
            assert svc.client.post(f"/sources/{r.json()['id']}/sync", headers=TENANT).status_code == 202
            wait_until(lambda: svc.client.get(f"/sources/{r.json()['id']}", headers=TENANT).json()["state"]
                       in ("ok", "failed"), 60, f"the sync of {name}")

        # A rollout of the snapshot that is not live, interleaved, with feedback on three answers, then stopped: the
        # Online card shows its arms with intervals and its decisions.
        other = next(h for h in statuses if h != live)
        r = svc.client.post("/rollouts", json={"candidate": other, "mode": "interleave", "steps": [1.0]},
                            headers=TENANT)
        assert r.status_code == 201, r.text
        rollout = r.json()["id"]
        for query in ("parking permits", "vpn gateway", "ledger quarter"):
            answer = svc.client.post("/retrieve", json={"query": query, "top_k": 4}, headers=TENANT).json()
            assert answer["rollout"]["id"] == rollout, answer
            r = svc.client.post("/feedback", json={"request_id": answer["request_id"], "helpful": True, "signals": [
                {"chunk_id": answer["hits"][0]["chunk_id"], "signal": "cited"}]}, headers=TENANT)
            assert r.status_code == 200, r.text
        assert svc.client.post(f"/rollouts/{rollout}/stop", headers=TENANT).json()["state"] == "stopped"

        # --- the page in chromium ----------------------------------------------------------------------------
        requests: list[str] = []
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.on("request", lambda req: requests.append(req.url))
                page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}")
                        if msg.type == "error" else None)
                page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
                # Without a key the page is the sign-in form; a wrong key is refused; the tenant's key opens it.
                page.goto(f"{svc.url}/dashboard", wait_until="load")
                assert page.locator("form input#key").is_visible()
                sign_in(page, "sdx_not_a_key")
                assert page.locator('[role="alert"]').inner_text() == "That key is not valid."
                sign_in(page, key_for("dash"))
                assert page.url.startswith(f"{svc.url}/dashboard")  # the page adds its view to the query
                assert all("401" in e for e in errors), errors  # the browser logs the sign-in page's status
                errors.clear()

                page.wait_for_selector('[data-testid="recall-chart"][data-rendered="1"]', timeout=20_000)
                chart = page.evaluate("""() => {
                    const g = document.querySelector('[data-testid="recall-chart"]');
                    return {traces: g.data.filter(t => t.mode === 'lines+markers').map(t => ({name: t.name, x: t.x,
                                                                                            visible: t.visible})),
                            annotations: (g.layout.annotations || []).map(a => a.text),
                            svg: !!g.querySelector('svg.main-svg')};
                }""")
                assert chart["svg"], chart
                order = [s["hash"] for s in reversed(listing["snapshots"])]  # build order
                assert chart["traces"], chart
                for trace in chart["traces"]:
                    assert trace["x"] == [h[:12] for h in order], trace
                shown = {t["name"] for t in chart["traces"] if t["visible"] is True}
                assert {"recall@1", "recall@10", "recall@100", "ndcg@10", "mrr@10"} <= shown, shown
                assert any("live" in a for a in chart["annotations"]), chart["annotations"]

                # No benchmark run imported yet: the history says how to get one.
                page.wait_for_selector('[data-testid="benchmarks"][data-state="empty"]', timeout=20_000)
                assert page.locator('[data-testid="benchmarks-empty"]').inner_text() == BENCH_EMPTY
                assert page.locator('[data-testid="benchmark-row"]').count() == 0

                rows = page.locator('[data-testid="snapshot-row"]')
                assert rows.count() == 2
                for h in statuses:
                    assert page.locator(f'[data-testid="snapshot-row"][data-hash="{h}"]').count() == 1
                live_row = page.locator(f'[data-testid="snapshot-row"][data-hash="{live}"]')
                assert live_row.locator('[data-testid="live-badge"]').count() == 1
                assert page.locator('[data-testid="live-badge"]').count() == 1
                assert page.locator('[data-testid="live-snapshot"]').inner_text().startswith(live[:12])

                page.select_option('[data-testid="compare-base"]', first["snapshot"])
                page.select_option('[data-testid="compare-candidate"]', second["snapshot"])
                page.select_option('[data-testid="compare-metric"]', "ndcg@10")
                page.click('[data-testid="compare-button"]')
                page.wait_for_selector('[data-testid="drilldown"][data-state="done"]', timeout=20_000)
                summary = page.locator('[data-testid="drilldown-summary"]')
                assert summary.is_visible()
                assert first["snapshot"][:12] in summary.inner_text() and second["snapshot"][:12] in summary.inner_text()
                assert page.locator('[data-testid="drilldown-lost"]').count() == 1
                assert page.locator('[data-testid="drilldown-gained"]').count() == 1
                # Every changed query's text is shown as text, never as markup.
                assert page.locator('[data-testid="drilldown"] b:text("help")').count() == 0

                # Two benchmark runs imported by the operator over HTTP: one row each, newest first.
                older = peer_run(date="2026-11-25T03:36:13+00:00", commit="225b5fb98b7543c3393fb2c3708746a002148f9e",
                                 machine="x86_64, <b>2 cores</b>")
                newer = peer_run(date="2026-12-02T09:00:00+00:00", commit="fbb6958", wall_s=1100.0)
                for run in (newer, older):
                    r = svc.client.post("/benchmarks", json=run, headers=auth(None))
                    assert r.status_code == 201, r.text
                page.reload(wait_until="load")
                page.wait_for_selector('[data-testid="benchmarks"][data-state="loaded"]', timeout=20_000)
                assert not page.locator('[data-testid="benchmarks-empty"]').is_visible()
                bench_rows = page.locator('[data-testid="benchmark-row"]')
                assert bench_rows.count() == 2

                def cells(row) -> dict[str, str]:
                    return row.evaluate("""tr => Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map(
                        td => [td.dataset.col, td.innerText.replace(/\\s+/g, ' ').trim()]))""")

                top, bottom = cells(bench_rows.nth(0)), cells(bench_rows.nth(1))
                assert top == {"date": "2026-12-02 09:00 UTC x86_64, 2 cores, Python 3.11.7", "commit": "fbb6958",
                               "ndcg": "0.7412 vs 0.7165 +0.0247", "recall100": "0.9530 vs 0.9483 +0.0047",
                               "p95": "28.9 0.30x of 95.3", "p95-100k": "31.6", "build": "1,474.3 / 237.3",
                               "wall": "18.3", "targets": "7/7"}, top
                assert bottom["date"] == "2026-11-25 03:36 UTC x86_64, <b>2 cores</b>", bottom  # text, not markup
                assert bottom["commit"] == "225b5fb" and bottom["wall"] == "34.7"
                assert bottom["targets"] == "6/7 run: whole command < 20 min (s)", bottom
                assert page.locator('[data-testid="benchmark-table"] b').count() == 0

                # Retrieval profiles: none tuned yet, then one adopted and one rejected (as the tuner records
                # them), and a rollback from the page.
                page.wait_for_selector('[data-testid="profiles"][data-state="empty"]', timeout=20_000)
                assert page.locator('[data-testid="profile-rollback"]').is_hidden()
                store = ProfileStore(Database(tmp_path / "data" / "catalog.sqlite3"))
                test = {"mean_gain": 0.031, "ci_low": 0.012, "ci_high": 0.05}
                store.record("dash", {"fusion": "rrf", "late_windows": 1.0}, {
                    "metric": "ndcg@10", "queries": 120, "tuned_cv": 0.812, "live": 0.781, "live_version": 0,
                    "default": 0.781, "test": test}, "adopted: <b>gain</b> above zero", "t1", adopt=True)
                store.record("dash", {"fusion": "dbsf", "late_windows": 2.0}, {
                    "metric": "ndcg@10", "queries": 120, "tuned_cv": 0.815, "live": 0.812, "live_version": 1,
                    "default": 0.781, "test": {"mean_gain": 0.003, "ci_low": -0.01, "ci_high": 0.016}},
                    "not adopted", "t2", adopt=False)
                page.reload(wait_until="load")
                page.wait_for_selector('[data-testid="profiles"][data-state="loaded"]', timeout=20_000)
                profile_rows = page.locator('[data-testid="profile-row"]')
                assert profile_rows.count() == 2
                newest, adopted = cells(profile_rows.nth(0)), cells(profile_rows.nth(1))
                assert (newest["version"], newest["status"], newest["tuned"]) == ("v2", "rejected", "0.8150 ndcg@10, 120 queries")
                assert newest["gain"] == "+0.0030 [−0.0100, +0.0160]" and newest["params"].startswith("fusion=dbsf late_windows=2")
                assert (adopted["status"], adopted["live"], adopted["default"]) == ("live", "0.7810 v0", "0.7810")
                assert adopted["params"] == "fusion=rrf adopted: <b>gain</b> above zero"  # text, never markup
                page.click('[data-testid="profile-rollback"]')
                page.wait_for_selector('.banner.ok', timeout=20_000)
                assert "v0 is live again" in page.locator('#banner').inner_text()
                page.wait_for_selector('[data-testid="profile-row"][data-version="1"][data-status="retired"]',
                                       timeout=20_000)
                assert svc.client.get("/profiles", headers=TENANT).json()["live"] == 0

                # The tenant's webhook and its last delivery: tried, no answer, waiting for the next attempt.
                page.wait_for_selector('[data-testid="webhooks"][data-state="loaded"]', timeout=20_000)
                row = page.locator('[data-testid="webhook-row"]')
                assert row.count() == 1 and row.get_attribute("data-id") == hook["id"]
                page.wait_for_selector('[data-testid="webhook-row"][data-state="loaded"]', timeout=20_000)
                assert "on-call" in row.inner_text() and "snapshot.held" in row.inner_text()
                delivery = page.locator('[data-testid="webhook-delivery"]')
                assert delivery.count() == 1 and delivery.get_attribute("data-status") == "pending"
                text = delivery.inner_text()
                assert "webhook.test" in text and "no answer" in text and "next try" in text and "ConnectError" in text
                assert hook["secret"] not in page.content()

                # The Online card: the rollout, its arms' figures with intervals, its decisions in order.
                page.wait_for_selector('[data-testid="rollouts"][data-state="loaded"]', timeout=20_000)
                row = page.locator('[data-testid="rollout-row"]')
                assert row.count() == 1 and row.get_attribute("data-id") == rollout
                assert row.get_attribute("data-state") == "stopped" and "3 events" in row.inner_text()
                arms = {c: row.locator(f'[data-col="{c}"]').inner_text() for c in ("live", "candidate", "difference")}
                assert all(" of 3" in arms[c] and "[" in arms[c] for c in ("live", "candidate")), arms
                assert "now: continue" in arms["difference"], arms
                decisions = row.locator('[data-testid="rollout-decision"]')
                assert [decisions.nth(i).get_attribute("data-action") for i in range(decisions.count())] == \
                    ["start", "stop"]
                assert "stopped by api key" in decisions.nth(1).inner_text()

                # The sources, each with its last sync.
                page.wait_for_selector('[data-testid="sources"][data-state="loaded"]', timeout=20_000)
                shelf = page.locator('[data-testid="source-row"][data-state="ok"]')
                archive = page.locator('[data-testid="source-row"][data-state="failed"]')
                assert page.locator('[data-testid="source-row"]').count() == 2
                assert shelf.count() == 1 and archive.count() == 1
                assert "shelf" in shelf.inner_text() and "listed 0" in shelf.inner_text()
                assert "on request" not in shelf.locator('[data-col="next"]').inner_text()
                assert "is not there" in archive.inner_text()

                out = artifacts_dir() / "dashboard.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                assert out.exists() and out.stat().st_size > 10_000

                # A user key of the tenant: the figures of every snapshot, none of the admin's cards or actions,
                # and a drill-down without the queries about a document it may not read.
                r = svc.client.patch("/documents/parking/access", json={"access": {"users": ["ops@acme"]}},
                                     headers=TENANT)
                assert r.status_code == 202, r.text
                params = {"base": first["snapshot"], "candidate": second["snapshot"], "query_set": "kb",
                          "metric": "ndcg@10"}
                changed = svc.client.get("/eval/compare", params=params, headers=TENANT).json()
                parking_changed = any(q["query_id"] == "q-parking" for q in changed["lost"] + changed["gained"])
                page.request.post(f"{svc.url}/dashboard/logout")
                page.goto(f"{svc.url}/dashboard", wait_until="load")
                sign_in(page, keys_cli(tmp_path / "data", "create", "--tenant", "dash", "--scope", "user",
                                       "--user", "eve@acme"))
                errors[:] = [e for e in errors if "401" not in e]
                assert page.locator('[data-testid="viewer-note"]').is_visible()
                assert page.locator('[data-testid="snapshot-row"]').count() >= 2
                assert page.locator('[data-testid="promote-button"]').count() == 0
                assert page.locator('[data-testid="profiles"]').is_hidden()
                assert page.locator('[data-testid="webhooks"]').is_hidden()
                assert page.locator('[data-testid="sources"]').is_hidden()
                assert page.locator('[data-testid="rollouts"]').is_hidden()
                page.select_option('[data-testid="compare-base"]', first["snapshot"])
                page.select_option('[data-testid="compare-candidate"]', second["snapshot"])
                page.select_option('[data-testid="compare-metric"]', "ndcg@10")
                page.click('[data-testid="compare-button"]')
                page.wait_for_selector('[data-testid="drilldown"][data-state="done"]', timeout=20_000)
                shown = page.locator('[data-testid="drilldown"]').inner_text()
                assert "visitors park" not in shown and "parking" not in shown, shown
                assert page.locator('[data-testid="drilldown-hidden"]').count() == (1 if parking_changed else 0)

                # A tenant with nothing yet gets the empty states, not a broken page.
                page.request.post(f"{svc.url}/dashboard/logout")
                page.goto(f"{svc.url}/dashboard", wait_until="load")
                sign_in(page, key_for("nobody"))
                errors[:] = [e for e in errors if "401" not in e]
                assert page.locator(".tenant-name").first.inner_text() == "nobody"
                assert page.locator('[data-testid="empty-snapshots"]').is_visible()
                assert page.locator('[data-testid="empty-query-sets"]').is_visible()
                assert page.locator('[data-testid="snapshot-row"]').count() == 0
                # The benchmark history is the service's: every tenant's page shows it.
                page.wait_for_selector('[data-testid="benchmarks"][data-state="loaded"]', timeout=20_000)
                assert page.locator('[data-testid="benchmark-row"]').count() == 2
                page.wait_for_selector('[data-testid="webhooks"][data-state="empty"]', timeout=20_000)
                assert page.locator('[data-testid="webhooks-empty"]').is_visible()
                page.wait_for_selector('[data-testid="sources"][data-state="empty"]', timeout=20_000)
                assert page.locator('[data-testid="sources-empty"]').is_visible()
            finally:
                browser.close()

    left = [u for u in requests if not (u.startswith(svc.url + "/") or u.startswith("data:"))]
    assert not left, f"requests that left 127.0.0.1: {left}"
    assert any(u.startswith(f"{svc.url}/dashboard/assets/plotly.min.js") for u in requests), requests
    assert any(u.startswith(f"{svc.url}/eval/compare?") for u in requests), requests
    assert any(u == f"{svc.url}/benchmarks" for u in requests), requests
    assert any(u == f"{svc.url}/profiles" for u in requests), requests
    assert any(u == f"{svc.url}/webhooks" for u in requests), requests
    assert any(u == f"{svc.url}/sources" for u in requests), requests
    assert not errors, errors
