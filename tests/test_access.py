"""Permission-aware retrieval over HTTP, as a chat backend uses it: `snapdex serve`, documents with access lists,
a service key retrieving on behalf of end users, user keys with a fixed principal.

One service for the module: each test works in a tenant of its own, so none reads what another left.

The leak test checks every answer against a brute-force oracle. Each document is a bag of made-up words; each query
is one of those words. A request ranks its candidates by BM25 alone (late interaction with only the BM25 weight,
every fused candidate reranked), so the documents holding the word rank above all others, and the oracle knows
exactly which the principal may read: `top_k` of them, or all of them when fewer, must come back, and nothing else
a principal may not read (hits, their sources, context passages).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
import time

import pytest

from snapdex.client import Client
from harness.procs import REPO, auth, key_for, snapdex_env, snapdex_serve, wait_until
from tests.test_security import operations

pytestmark = pytest.mark.slow

TENANT = "acl"  # the leak test's; each other test has its own (TENANTS)
SCOPES, PINNED, DASHBOARD = "scopes", "pinned", "dashboard"
TENANTS = (TENANT, SCOPES, PINNED, DASHBOARD)
USERS = [f"user{i}@acme" for i in range(50)]
GROUPS = [f"group{i}" for i in range(20)]
LETTERS = "bcdfghjklmnpqrtvwxz"  # no vowels (and no y, s): the stemmer leaves such words alone
TOP_K = 10
# BM25 decides the order among every fused candidate: see the module's docstring.
# RRF keeps every BM25 match of a rank up to 10 among the 50 fused candidates (only dense ranks below 10 can pass it).
BM25_ONLY = {"rerank": "late-interaction", "late_dense": 0, "late_windows": 0, "late_bm25": 1, "rerank_depth": 50,
             "candidates": 50, "fusion": "rrf"}


def keys_cli(data_dir, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "snapdex", "keys", "--data-dir", str(data_dir), *args], cwd=REPO,
                       env=snapdex_env(data_dir), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = tmp_path_factory.mktemp("access") / "data"
    # Info logs: the impersonation line is one. No retrieve rate limit: the leak test asks thousands of questions.
    with snapdex_serve(data, tenants=TENANTS, log_level="info", SNAPDEX_RATE_LIMIT_RETRIEVE="",
                       SNAPDEX_GATE_FLOORS="{}", SNAPDEX_RESULT_CACHE_BYTES=str(1 << 30),
                       SNAPDEX_BUILD_DEBOUNCE_S="4",  # the leak test's 100 access changes below make few snapshots
                       # ... but more on a loaded machine: retention, not under test here,
                       # then dropped the snapshot the test reads pinned (a 404 in two loaded runs).
                       SNAPDEX_RETENTION_KEEP="100") as svc:
        svc.data = data
        yield svc


def random_access(rng: random.Random):
    roll = rng.random()
    if roll < 0.2:
        return None  # the whole tenant
    if roll < 0.25:
        return {"users": [], "groups": []}  # nobody but admin keys
    return {"users": rng.sample(USERS, rng.randint(0, 3)), "groups": rng.sample(GROUPS, rng.randint(0, 2))}


def visible(access, user: str, groups: list[str]) -> bool:
    return access is None or user in access["users"] or bool(set(groups) & set(access["groups"]))


def corpus(rng: random.Random, n: int = 1000):
    words = sorted({"".join(rng.choice(LETTERS) for _ in range(7)) for _ in range(1500)})
    docs = []
    for i in range(n):
        if i % 20 == 19:  # a twin: the same text under another access list (one chunk, two sources)
            text = docs[-1]["text"]
        else:
            text = " ".join(rng.sample(words, 12)) + "."
        doc = {"id": f"d{i:04d}", "text": text}
        access = random_access(rng)
        if access is not None:
            doc["access"] = access
        docs.append(doc)
    return words, docs


def word_index(docs) -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for d in docs:
        for w in re.findall(r"[a-z]+", d["text"]):
            index.setdefault(w, set()).add(d["id"])
    return index


def check_answers(pairs, answers, acl: dict, index) -> tuple[int, list]:
    """(hits checked, leaks and misses) of one pass."""
    checked, problems = 0, []
    for (user, groups, word), answer in zip(pairs, answers):
        allowed = {d for d in acl if visible(acl[d], user, groups)}
        expected = index.get(word, set()) & allowed
        returned = set()
        for h in answer["hits"]:
            checked += 1
            ids = {h["doc_id"], *(s["doc_id"] for s in h["sources"])}
            returned |= ids
            if ids - allowed:
                problems.append(("leaked hit", user, groups, word, sorted(ids - allowed)))
        for p in (answer.get("context") or {}).get("passages", []):
            checked += 1
            if p["doc_id"] not in allowed:
                problems.append(("leaked passage", user, groups, word, p["doc_id"]))
        matched = returned & expected
        if len(expected) <= TOP_K and matched != expected:
            problems.append(("missed", user, groups, word, sorted(expected - returned)))
        elif len(expected) > TOP_K and len(answer["hits"]) < TOP_K:
            problems.append(("short", user, groups, word, len(answer["hits"])))
    return checked, problems


def run_pairs(client, key: str, pairs, with_context: bool, snapshot: str | None = None) -> list[dict]:
    answers = []
    for i in range(0, len(pairs), 64):
        requests = [{"query": w, "top_k": TOP_K, "options": BM25_ONLY, "principal": {"user": u, "groups": g},
                     **({"snapshot": snapshot} if snapshot else {}),
                     **({"context": {"max_tokens": 400, "expand": {"neighbors": 1}}} if with_context and j % 4 == 0
                        else {})}
                    for j, (u, g, w) in enumerate(pairs[i:i + 64])]
        r = client.post("/retrieve/batch", json={"requests": requests}, headers=bearer(key))
        assert r.status_code == 200, r.text[:500]
        answers.extend(r.json()["answers"])
    return answers


def live_hash(client, tenant: str) -> str | None:
    return client.get("/snapshots", headers=auth(tenant)).json()["live"]


def settled_live(client, tenant: str, quiet_s: float = 8.0) -> str:
    """The live snapshot once no build has run or switched it for `quiet_s` (longer than the module's debounce)."""
    seen = {"state": None, "since": time.monotonic()}

    def quiet():
        body = client.get("/snapshots", headers=auth(tenant)).json()
        state = (body["live"], tuple(sorted((s["hash"], s["status"]) for s in body["snapshots"])))
        if state != seen["state"]:
            seen.update(state=state, since=time.monotonic())
        building = any(s["status"] == "building" for s in body["snapshots"])
        return not building and time.monotonic() - seen["since"] >= quiet_s and body["live"]

    return wait_until(quiet, 600, "the builds after the access changes", interval=1.0)


def test_no_principal_ever_sees_what_it_may_not(served):
    rng = random.Random(17)
    words, docs = corpus(rng)  # each word in about 8 documents: a principal must get back every one it may read
    index = word_index(docs)
    acl = {d["id"]: d.get("access") for d in docs}
    svc, data = served, served.data
    c = svc.client
    service_key = keys_cli(data, "create", "--tenant", TENANT, "--scope", "service")
    job = c.post("/ingest", json={"documents": docs}, headers=auth(TENANT))
    assert job.status_code == 202, job.text
    t0 = time.perf_counter()
    first = svc.wait_job(job.json()["job_id"], headers=auth(TENANT), timeout=600)
    print("ingest", round(time.perf_counter() - t0, 1), "s", flush=True)
    assert first["status"] == "succeeded" and first["snapshot"], first

    # 800 (principal, query) pairs; 100 query words each asked by 8 principals, so that an answer cached for
    # one principal and served to another would show up as a leak.
    asked = rng.sample([w for w in words if w in index], 100)
    principals = [(rng.choice(USERS), sorted(rng.sample(GROUPS, rng.randint(0, 3)))) for _ in range(400)]
    pairs = [(*rng.choice(principals), w) for w in asked for _ in range(8)]
    rng.shuffle(pairs)

    totals = {"pairs": 0, "checked": 0, "problems": []}

    def one_pass(label: str, with_context: bool = True, snapshot: str | None = None):
        t0 = time.perf_counter()
        answers = run_pairs(c, service_key, pairs, with_context, snapshot)
        print(label, round(time.perf_counter() - t0, 1), "s", flush=True)
        checked, problems = check_answers(pairs, answers, acl, index)
        totals["pairs"] += len(pairs)
        totals["checked"] += checked
        totals["problems"] += [(label, *p) for p in problems]
        return answers

    one_pass("before, computed")
    cached = one_pass("before, cached")
    assert sum(a["cached"] for a in cached) == len(pairs), sum(a["cached"] for a in cached)

    # An access change: 100 documents get new lists, without parsing or embedding again.
    changed = rng.sample(docs, 100)
    old_acl = dict(acl)
    t0 = time.perf_counter()
    for d in changed:
        access = random_access(rng)
        r = c.patch(f"/documents/{d['id']}/access", json={"access": access}, headers=auth(TENANT))
        assert r.status_code == 202, r.text
        acl[d["id"]] = r.json()["access"]
    print("100 access changes", round(time.perf_counter() - t0, 1), "s", flush=True)
    before = first["snapshot"]
    # Each change was written into the snapshot built before it: pinned to it, a request reads today's lists
    # (and no answer cached under the old ones).
    one_pass("pinned to the snapshot before the change", snapshot=before)
    wait_until(lambda: live_hash(c, TENANT) != before, 300, "the rebuilt snapshot")
    # A burst longer than half the debounce makes more than one build: the last of them holds every change.
    after = settled_live(c, TENANT)
    snaps = {s["hash"]: s for s in c.get("/snapshots", headers=auth(TENANT)).json()["snapshots"]}
    assert snaps[after]["embedded"] == 0 and snaps[after]["chunks"] == snaps[before]["chunks"]
    one_pass("after change, computed")
    one_pass("after change, cached")

    # A rollback answers from a snapshot built before (some of) the changes, with today's lists: the changes
    # were written into it too, and nothing cached under the old lists is served.
    r = c.post("/snapshots/rollback", headers=auth(TENANT))
    assert r.status_code == 200, r.text
    assert live_hash(c, TENANT) != after and acl != old_acl
    one_pass("after rollback")

    print(f"leak test: {totals['pairs']} pairs, {totals['checked']} hits and passages checked, "
          f"{len(totals['problems'])} problems")
    assert totals["problems"] == [], totals["problems"][:10]


SCOPE_DOCS = [
    {"id": "board-minutes", "text": "The board approved the merger with Quintex in closed session.",
     "access": {"users": ["carol@acme"], "groups": ["board"]}},
    {"id": "hr-salaries", "text": "Salary bands for engineers rise four percent in spring.",
     "access": {"groups": ["hr"]}},
    {"id": "alice-draft", "text": "Alice's draft: the merger memo needs legal review first.",
     "access": {"users": ["alice@acme"]}},
    {"id": "handbook", "text": "Everyone may read the handbook: offices open at nine."},
]
SECRETS = ("Quintex", "quintex", "Salary bands", "board-minutes", "hr-salaries", "closed session", "four percent")


def test_scopes_and_every_route_with_a_user_key(served):
    svc, data = served, served.data
    c, admin = svc.client, auth(SCOPES)
    job = c.post("/ingest", json={"documents": SCOPE_DOCS}, headers=admin).json()["job_id"]
    snap = svc.wait_job(job, headers=admin)["snapshot"]
    service = bearer(keys_cli(data, "create", "--tenant", SCOPES, "--scope", "service"))
    alice = bearer(keys_cli(data, "create", "--tenant", SCOPES, "--scope", "user", "--user", "alice@acme",
                            "--groups", "eng,legal"))
    listed = [line.split() for line in keys_cli(data, "list").splitlines()]
    assert {line[2] for line in listed if line[1] == SCOPES} == {"user:alice@acme", "service"}, listed

    # Access on uploaded files: one multipart field for every file.
    r = c.post("/ingest", files=[("files", ("quintex-terms.txt", b"Quintex terms: the price is final."))],
               data={"access": json.dumps({"groups": ["board"]})}, headers=admin)
    assert r.status_code == 202, r.text
    svc.wait_job(r.json()["job_id"], headers=admin)
    assert c.get("/documents/quintex-terms.txt", headers=admin).json()["access"] == {"users": [], "groups": ["board"]}
    bad = c.post("/ingest", files=[("files", ("x.txt", b"x"))], data={"access": '{"users": "bob"}'}, headers=admin)
    assert bad.status_code == 422 and "access" in bad.text
    # A user key reads as itself: its own draft and the handbook, never the board's or HR's documents.
    r = c.post("/retrieve", json={"query": "merger approved board salary", "top_k": 10,
                                  "context": {"max_tokens": 500}}, headers=alice)
    assert r.status_code == 200, r.text
    assert {h["doc_id"] for h in r.json()["hits"]} <= {"alice-draft", "handbook"}
    assert not [s for s in SECRETS if s in r.text]
    # Grouped by document, the top 2 are the two she may read: the board's better matches are never counted.
    r = c.post("/retrieve", json={"query": "merger approved board salary", "top_k": 2, "group_by": "document",
                                  "context": {"max_tokens": 500}}, headers=alice)
    assert r.status_code == 200, r.text
    grouped = r.json()
    assert [d["doc_id"] for d in grouped["documents"]] == ["alice-draft", "handbook"]
    assert [grouped["hits"][i]["doc_id"] for d in grouped["documents"] for i in d["hits"]] == \
        ["alice-draft", "handbook"]
    assert not [s for s in SECRETS if s in r.text]
    # ...and may not name another principal.
    r = c.post("/retrieve", json={"query": "merger", "principal": {"user": "carol@acme", "groups": ["board"]}},
               headers=alice)
    assert r.status_code == 403 and "user key" in r.json()["detail"]
    # A service key must name whom it asks for; it reads as them.
    r = c.post("/retrieve", json={"query": "merger"}, headers=service)
    assert r.status_code == 403 and "principal" in r.json()["detail"]
    logged = svc.log.stat().st_size  # the log is the module's: what this test logs comes after
    r = c.post("/retrieve", json={"query": "merger approved", "principal": {"user": "carol@acme"}},
               headers=service)
    assert r.status_code == 200 and "board-minutes" in {h["doc_id"] for h in r.json()["hits"]}
    # The GET /documents routes (no body) take the principal in X-Snapdex-Principal, parsed as /retrieve's.
    as_alice = {**service, "X-Snapdex-Principal": json.dumps({"user": "alice@acme", "groups": ["eng"]})}
    assert {d["doc_id"] for d in c.get("/documents", headers=as_alice).json()["documents"]} == \
        {"alice-draft", "handbook"}
    assert c.get("/documents/board-minutes", headers=as_alice).status_code == 404
    assert c.get("/documents/board-minutes/chunks", headers=as_alice).status_code == 404
    assert c.get("/documents/alice-draft/chunks", headers=as_alice).json()["chunks"][0]["text"].startswith("Alice")
    as_carol = {**service, "X-Snapdex-Principal": json.dumps({"user": "carol@acme"})}
    r = c.get("/documents/board-minutes", headers=as_carol)
    assert r.status_code == 200 and "Quintex" in r.json()["text"] and r.json()["access"] is None  # not the list
    assert c.get("/documents", headers=service).status_code == 403  # no principal: refused, as on /retrieve
    for bad in ('{"user": ""}', "alice@acme", '{"user": "a", "role": "admin"}'):
        r = c.get("/documents", headers={**service, "X-Snapdex-Principal": bad})
        assert r.status_code == 422 and "X-Snapdex-Principal" in r.text, (bad, r.text)
    r = c.get("/documents", headers={**alice, "X-Snapdex-Principal": json.dumps({"user": "carol@acme"})})
    assert r.status_code == 403 and "user key" in r.json()["detail"]
    # Its request filters cannot widen the principal's reach.
    r = c.post("/retrieve", json={"query": "merger", "principal": {"user": "bob@acme"},
                                  "filters": {"access": "g:board"}}, headers=service)
    assert r.status_code == 422
    # Impersonation is logged with a digest of the user, never the name.
    digest = hashlib.sha256(b"carol@acme").hexdigest()[:16]
    log = wait_until(lambda: (new := svc.log.read_bytes()[logged:].decode(errors="replace")) and digest in new and new,
                     10, "the principal log line")
    assert "carol@acme" not in log
    # The admin key reads everything.
    r = c.post("/retrieve", json={"query": "salary bands", "top_k": 10}, headers=admin)
    assert "hr-salaries" in {h["doc_id"] for h in r.json()["hits"]}

    # Every operation with alice's key against documents she may not read: refused, or without their text.
    spec = c.get("/openapi.json", headers=admin).json()
    for method, path in sorted(operations(spec)):
        url = path.format(job_id=job, snap_hash=snap, doc_id="board-minutes", name="qa", run_id="x",
                          benchmark_id=1, tuning_id="x", version=1, webhook_id="x", delivery_id="x",
                          source_id="x", rollout_id="x")
        body = {"json": {"query": "merger board salary", "top_k": 10}} if path == "/retrieve" else \
            {"json": {"requests": [{"query": "merger board salary", "top_k": 10}]}} if path == "/retrieve/batch" \
            else {"json": {"access": None}} if path.endswith("/access") else {}
        r = c.request(method, url, headers=alice, follow_redirects=False, **body)
        leaked = [s for s in SECRETS if s in r.text and s not in url]
        assert not leaked, (method, url, r.status_code, leaked)
        if r.status_code < 300 and path not in OPEN_TO_USERS:
            raise AssertionError((method, url, r.status_code, "a user key reached it"))
    # The documents she may not read do not exist for her; her own do.
    assert c.get("/documents/board-minutes", headers=alice).status_code == 404
    assert c.get("/documents/alice-draft", headers=alice).json()["text"].startswith("Alice's draft")
    assert {d["doc_id"] for d in c.get("/documents", headers=alice).json()["documents"]} == \
        {"alice-draft", "handbook"}
    # A query set may run as a principal: recall as alice gets it, and a drill-down naming only what she reads.
    queries = [{"id": "q1", "text": "merger approved in closed session", "relevant": ["board-minutes"]},
               {"id": "q2", "text": "merger memo legal review", "relevant": ["alice-draft"]}]
    for name, principal in (("as-alice", {"user": "alice@acme", "groups": ["eng"]}), ("everyone", None)):
        body = {"name": name, "queries": queries, **({"principal": principal} if principal else {})}
        r = c.post("/eval/query-sets", json=body, headers=admin)
        assert r.status_code == 201 and r.json()["principal"] == (principal and {**principal}), r.text
    runs = wait_until(lambda: (rs := {r["query_set"]: r for r in c.get("/eval/runs", headers=admin).json()["runs"]
                                      if r["status"] == "done"}) and len(rs) == 2 and rs, 120, "both runs")
    assert runs["as-alice"]["metrics"]["recall@10"] == 0.5 and runs["everyone"]["metrics"]["recall@10"] == 1.0
    detail = c.get(f"/eval/runs/{runs['as-alice']['id']}", headers=admin).text
    assert "hr-salaries" not in detail and "board-minutes" in detail  # named as the missed relevant one only
    retrieved = json.loads(detail)
    assert all("board-minutes" not in json.dumps(q.get("retrieved", [])) for q in retrieved["results"])
    # The Python client: a principal on retrieve, an access change by an admin key.
    key = service["Authorization"].removeprefix("Bearer ")
    with Client(svc.url, api_key=key) as sx:
        hits = sx.retrieve("merger memo legal review", top_k=10, principal={"user": "alice@acme"}).hits
        assert {h.doc_id for h in hits} <= {"alice-draft", "handbook"}
        documents = sx.retrieve("merger memo legal review", top_k=10, principal={"user": "alice@acme"},
                                group_by="document").documents
        assert {d.doc_id for d in documents} == {"alice-draft", "handbook"}
        mine = {d.doc_id for d in sx.iter_documents(principal={"user": "alice@acme"})}
        assert mine == {"alice-draft", "handbook"}
        assert sx.document("board-minutes", principal={"user": "carol@acme"}).text.startswith("The board")
        assert sx.document_chunks("alice-draft", principal={"user": "alice@acme"}).chunks
    with Client(svc.url, api_key=key_for(SCOPES)) as ax:
        changed = ax.set_access("handbook", {"groups": ["staff"]})
        assert changed.access == {"users": [], "groups": ["staff"]}
        assert ax.set_access("handbook", None).access is None
    # Nothing she did changed an access list.
    assert c.get("/documents/board-minutes", headers=admin).json()["access"] == \
        {"users": ["carol@acme"], "groups": ["board"]}


def test_no_snapshot_answers_under_a_changed_list_pinned_or_rolled_back(served):
    """Once PATCH /documents/{id}/access returns, every snapshot answers under the new list: the live one, one a
    request pins, the one a rollback brings back; and no answer cached before is served. Both ways: a revoked user
    sees nothing of the document, a granted one sees it everywhere."""
    svc, data = served, served.data
    c, admin = svc.client, auth(PINNED)
    first = svc.wait_job(c.post("/ingest", json={"documents": SCOPE_DOCS}, headers=admin).json()["job_id"],
                         headers=admin)["snapshot"]
    job = c.post("/ingest", json={"documents": [{"id": "parking", "text": "Parking behind the building."}]},
                 headers=admin).json()["job_id"]
    second = svc.wait_job(job, headers=admin)["snapshot"]
    assert first != second and live_hash(c, PINNED) == second
    alice = bearer(keys_cli(data, "create", "--tenant", PINNED, "--scope", "user", "--user", "alice@acme"))

    def seen(key, query: str, snapshot: str | None = None) -> set[str]:
        r = c.post("/retrieve", json={"query": query, "top_k": 10, "context": {"max_tokens": 300},
                                      **({"snapshot": snapshot} if snapshot else {})}, headers=key)
        assert r.status_code == 200, r.text
        body = r.json()
        return {d for h in body["hits"] for d in (h["doc_id"], *(s["doc_id"] for s in h["sources"]))} | \
            {p["doc_id"] for p in (body.get("context") or {}).get("passages", [])}

    draft, board = "merger memo needs legal review", "board approved the merger with Quintex"
    for snap in (first, second, None):  # computed, and cached under her principal
        assert "alice-draft" in seen(alice, draft, snap) and "board-minutes" not in seen(alice, board, snap)
    # Revoke her draft, grant her the board's minutes: at once, the snapshots built before answer so.
    for doc_id, access in (("alice-draft", {"users": ["bob@acme"]}),
                           ("board-minutes", {"users": ["carol@acme", "alice@acme"], "groups": ["board"]})):
        r = c.patch(f"/documents/{doc_id}/access", json={"access": access}, headers=admin)
        assert r.status_code == 202, r.text
    for snap in (first, second, None):
        assert "alice-draft" not in seen(alice, draft, snap), snap
        assert "board-minutes" in seen(alice, board, snap), snap
    # The debounced build makes a snapshot with the new lists; rolling back from it brings back one built before
    # them, which answers with the new lists all the same.
    wait_until(lambda: live_hash(c, PINNED) not in (first, second), 120, "the snapshot built after the change")
    r = c.post("/snapshots/rollback", headers=admin)
    assert r.status_code == 200 and live_hash(c, PINNED) == second, r.text
    assert "alice-draft" not in seen(alice, draft) and "board-minutes" in seen(alice, board)
    assert "alice-draft" not in seen(alice, "alice draft merger memo legal review quintex board")
    # The documents API agrees: her draft is gone for her, the minutes are hers to read.
    assert c.get("/documents/alice-draft", headers=alice).status_code == 404
    assert c.get("/documents/board-minutes", headers=alice).status_code == 200


# What a user key may call (each filtered to what it may read) and the routes without tenant data.
OPEN_TO_USERS = {"/retrieve", "/retrieve/batch", "/documents", "/documents/{doc_id}", "/documents/{doc_id}/chunks",
                 "/health", "/ready", "/benchmarks", "/benchmarks/{benchmark_id}", "/dashboard/assets/{name}",
                 "/dashboard/logout", "/dashboard/login", "/dashboard", "/eval/overview", "/eval/compare"}


def test_the_dashboard_for_a_user_key_shows_figures_and_only_its_own_drill_down_rows(served):
    """A user key opens the dashboard: every snapshot and its recall figures, no admin action or card, and a
    drill-down that lists only the changed queries whose documents it may read (the others counted, not named)."""
    svc, data = served, served.data
    c, admin = svc.client, auth(DASHBOARD)
    first = svc.wait_job(c.post("/ingest", json={"documents": SCOPE_DOCS}, headers=admin).json()["job_id"],
                         headers=admin)["snapshot"]
    queries = [{"id": "q-board", "text": "board approved the merger in closed session", "relevant": ["board-minutes"]},
               {"id": "q-draft", "text": "draft merger memo needs legal review", "relevant": ["alice-draft"]},
               {"id": "q-hand", "text": "offices open at nine handbook", "relevant": ["handbook"]}]
    r = c.post("/eval/query-sets", json={"name": "qa", "queries": queries}, headers=admin)
    assert r.status_code == 201, r.text
    wait_until(lambda: any(r["status"] == "done" for r in c.get("/eval/runs", headers=admin).json()["runs"]),
               120, "the first run")
    # Both documents leave the snapshot built after them: their queries lose. (The build the first deletion asks for
    # may start before the second arrives, on a loaded machine: it holds one of them still.)
    for doc_id in ("board-minutes", "alice-draft"):
        assert c.delete(f"/documents/{doc_id}", headers=admin).status_code == 202
    second = wait_until(lambda: next((s["hash"] for s in c.get("/snapshots", headers=admin).json()["snapshots"]
                                      if s["documents"] == len(SCOPE_DOCS) - 2
                                      and s["status"] in ("live", "candidate")), None),
                        180, "the snapshot without both documents")
    wait_until(lambda: any(r["snapshot"] == second and r["status"] == "done"
                           for r in c.get("/eval/runs", headers=admin).json()["runs"]), 120, "its run")
    alice = bearer(keys_cli(data, "create", "--tenant", DASHBOARD, "--scope", "user", "--user", "alice@acme"))
    service = bearer(keys_cli(data, "create", "--tenant", DASHBOARD, "--scope", "service"))
    params = {"base": first, "candidate": second, "query_set": "qa"}

    everything = c.get("/eval/compare", params=params, headers=admin).json()
    assert {q["query_id"] for q in everything["lost"]} == {"q-board", "q-draft"} and everything["hidden"] == 0
    mine = c.get("/eval/compare", params=params, headers=alice)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert [q["query_id"] for q in body["lost"]] == ["q-draft"] and body["hidden"] == 1
    assert body["base"]["metrics"] == everything["base"]["metrics"]  # the figures are the same
    assert "board-minutes" not in mine.text and "closed session" not in mine.text
    # The page and its overview: every snapshot, the figures, no admin card; nothing of the board's minutes.
    page = c.get("/dashboard", headers=alice)
    assert page.status_code == 200 and '"viewer":"user"' in page.text
    assert first[:12] in page.text and second[:12] in page.text
    assert not [s for s in SECRETS if s in page.text]
    overview = c.get("/eval/overview", headers=alice).json()
    assert overview["viewer"] == "user" and {s["hash"] for s in overview["snapshots"]} >= {first, second}
    assert c.get("/eval/overview", headers=admin).json()["viewer"] == "admin"
    # Per-query rows elsewhere, and every admin action, stay an admin key's; a service key has no dashboard.
    run_id = c.get("/eval/runs", headers=admin).json()["runs"][0]["id"]
    for method, url in (("GET", "/eval/runs"), ("GET", f"/eval/runs/{run_id}"), ("GET", "/eval/query-sets/qa"),
                        ("POST", f"/snapshots/{second}/promote"), ("GET", "/profiles"), ("GET", "/webhooks")):
        assert c.request(method, url, headers=alice).status_code == 403, url
    assert c.get("/dashboard", headers=service).status_code == 403
    assert c.get("/eval/compare", params=params, headers=service).status_code == 403
