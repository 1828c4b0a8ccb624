"""The hostile-input suite (issue 31): what a hostile caller sends to a keyed `snapdex serve` with two tenants and
per-document access lists, class by class, each case checking the status, the reason (the field, the limit or the
key named), that neither tenant's documents, jobs or snapshots changed, and (at the end) that the service still
ingests and answers and shows no tenant or principal what it may not read.

- What nothing here can store (non-finite numbers, integers past 64 bits, lone surrogates, NUL, control characters
  in ids, names and keys, nesting past the limit, a JSON field sent as a file) is a 422 naming the field (FastAPI's
  `loc`), on every route and both body kinds, before anything is stored.
- Filters are an allow-list, read through the documents the principal may read, also where a hidden document shares
  a chunk with a readable one.
- A request body over SNAPDEX_MAX_REQUEST_BYTES is a 413, multipart included.
- What held before stays held: keys, tenants, path tricks in ids, private webhook URLs, a zip bomb, a body that never
  ends.
- An access change is all or nothing (in process, with a real failure of the vector store injected half way).

Elsewhere, by class: a parser that loops or eats memory (tests/test_parse_limits.py), ids with a route's suffix or
reserved characters (tests/test_document_ids.py), filters against a brute-force oracle (tests/test_filters_http.py),
every operation with hostile values (schemathesis, tests/test_fuzz_api.py), a document whose payload the store
refuses (tests/test_snapshots.py).
"""

from __future__ import annotations

import json
import socket
import sqlite3
from urllib.parse import quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from index_snapshots.access import DOCS_PER_SCROLL
from ingest.access import reassigned
from store.base import StoreError
from harness.helpers import ingest, make_runtime, text_doc
from harness.procs import auth, snapdex_serve
from tests.test_access import bearer, keys_cli

pytestmark = pytest.mark.slow

A, B, OP = auth("acme"), auth("beta"), auth(None)
J = {"content-type": "application/json"}
ALICE = {"X-Snapdex-Principal": json.dumps({"user": "alice@acme"})}
BOB = {"X-Snapdex-Principal": json.dumps({"user": "bob@acme"})}
DEEP = "[" * 100_000 + "]" * 100_000
MAX_REQUEST = 8 * 1024 * 1024  # SNAPDEX_MAX_REQUEST_BYTES of the module's service
OPEN_TEXT = "Opening hours of the canteen are eight to four."


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data = tmp_path_factory.mktemp("strict") / "data"
    with snapdex_serve(data, tenants=("acme", "beta"), SNAPDEX_GATE_FLOORS="{}", SNAPDEX_RATE_LIMIT_INGEST="",
                       SNAPDEX_RATE_LIMIT_RETRIEVE="", SNAPDEX_MAX_REQUEST_BYTES=str(MAX_REQUEST)) as svc:
        c = svc.client
        for h, docs in ((A, [{"id": "memo", "text": "The board memo on the merger of the two ledgers.",
                              "metadata": {"team": "board", "year": 2024}, "access": {"users": ["alice@acme"]}},
                             {"id": "open", "text": OPEN_TEXT, "metadata": {"team": "all"}},
                             # The same text as "open" (one chunk, two sources), hidden from alice.
                             {"id": "open-copy", "text": OPEN_TEXT, "access": {"users": ["carol@acme"]},
                              "metadata": {"title": "Board copy", "team": "board", "secret": "yes"}}]),
                        (B, [{"id": "beta-doc", "text": "Beta tenant's own ledger notes.", "metadata": {"x": 1}}])):
            job = c.post("/ingest", json={"documents": docs}, headers=h).json()["job_id"]
            assert svc.wait_job(job, headers=h)["status"] == "succeeded"
        svc.data = data
        svc.alice = bearer(keys_cli(data, "create", "--tenant", "acme", "--scope", "user", "--user", "alice@acme"))
        yield svc


def state(svc) -> dict:
    """What a refused request must leave as it was: both tenants' documents (with their access lists), snapshots
    and jobs."""
    c = svc.client
    with sqlite3.connect(f"file:{svc.data / 'catalog.sqlite3'}?mode=ro", uri=True) as db:
        jobs = db.execute("SELECT tenant, count(*) FROM jobs GROUP BY tenant ORDER BY tenant").fetchall()
    out = {"jobs": jobs}
    for name, h in (("acme", A), ("beta", B)):
        docs = c.get("/documents", headers=h)
        assert docs.status_code == 200, docs.text
        snaps = c.get("/snapshots", headers=h).json()
        out[name] = ([(d["doc_id"], d["metadata"], d["access"]) for d in docs.json()["documents"]],
                     snaps["live"], [s["hash"] for s in snaps["snapshots"]])
    return out


def multipart(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, dict]:
    """A multipart body written byte for byte (a client library would clean a file name): (field, filename, data)."""
    boundary = "strict-edge-boundary"
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def json_body(text: str | bytes) -> dict:
    return {"content": text.encode() if isinstance(text, str) else text, "headers": J}


def files(metadata=None, access=None, metadata_as_file=False) -> dict:
    data = {k: v for k, v in (("metadata", metadata), ("access", access)) if v is not None}
    parts = [("files", ("note.txt", b"a plain note"))]
    if metadata_as_file:
        parts.append(("metadata", ("meta.json", b'{"team": "x"}')))
    return {"files": parts, "data": data}


def doc(**fields) -> str:
    """An /ingest JSON body of one document whose fields are written as given (JSON text, not Python values)."""
    inner = ", ".join(f'"{k}": {v}' for k, v in {"id": '"hostile"', "text": '"some text"', **fields}.items())
    return '{"documents": [{%s}]}' % inner


# (what, method, path, request keywords, headers, the loc the 422 must name)
CASES = [
    # /ingest, JSON: numbers the engine cannot store, text it cannot carry, ids no route could address
    *[(f"ingest metadata {lit}", "POST", "/ingest", json_body(doc(metadata='{"x": %s}' % lit)), A,
       ["body", "documents", 0, "metadata", "x"]) for lit in ("NaN", "Infinity", "-Infinity", "1e309", "-1e400")],
    ("ingest metadata integer past 64 bits", "POST", "/ingest", json_body(doc(metadata='{"x": %d}' % 2**63)), A,
     ["body", "documents", 0, "metadata", "x"]),
    ("ingest metadata list integer past 64 bits", "POST", "/ingest",
     json_body(doc(metadata='{"x": [1, %d]}' % (-(2**63) - 1))), A, ["body", "documents", 0, "metadata", "x", 1]),
    ("ingest metadata 5,000 digits", "POST", "/ingest", json_body(doc(metadata='{"x": %s}' % ("7" * 5000))), A,
     ["body", "documents", 0, "metadata", "x"]),
    ("ingest id with CR LF", "POST", "/ingest", json_body(doc(id='"a\\r\\nb"')), A, ["body", "documents", 0, "id"]),
    ("ingest id blank", "POST", "/ingest", json_body(doc(id='"   "')), A, ["body", "documents", 0, "id"]),
    ("ingest id lone surrogate", "POST", "/ingest", json_body(doc(id='"\\ud800x"')), A,
     ["body", "documents", 0, "id"]),
    ("ingest text NUL", "POST", "/ingest", json_body(doc(text='"a\\u0000b"')), A, ["body", "documents", 0, "text"]),
    ("ingest text lone surrogate", "POST", "/ingest", json_body(doc(text='"a\\udfffb"')), A,
     ["body", "documents", 0, "text"]),
    ("ingest metadata key with a line feed", "POST", "/ingest", json_body(doc(metadata='{"a\\nb": 1}')), A,
     ["body", "documents", 0, "metadata", "a\nb"]),
    ("ingest metadata key lone surrogate", "POST", "/ingest", json_body(doc(metadata='{"\\ud800": 1}')), A,
     ["body", "documents", 0, "metadata", "\\ud800"]),
    ("ingest access user lone surrogate", "POST", "/ingest", json_body(doc(access='{"users": ["\\ud800"]}')), A,
     ["body", "documents", 0, "access", "users", 0]),
    ("ingest access group with a control character", "POST", "/ingest",
     json_body(doc(access='{"groups": ["hr\\u0007"]}')), A, ["body", "documents", 0, "access", "groups", 0]),
    ("ingest nested 100,000 deep", "POST", "/ingest", json_body(DEEP), A, ["body"]),
    ("ingest not UTF-8", "POST", "/ingest", json_body(b'{"documents": [{"id": "x", "text": "\xff"}]}'), A, ["body"]),
    # /ingest, multipart: the same rules for its JSON fields and its file names
    *[(f"multipart metadata {lit}", "POST", "/ingest", files(metadata='{"x": %s}' % lit), A, ["body", "metadata", "x"])
      for lit in ("NaN", "Infinity", "1e309")],
    ("multipart metadata as a file", "POST", "/ingest", files(metadata_as_file=True), A, ["body", "metadata"]),
    ("multipart metadata 5,000 digits", "POST", "/ingest", files(metadata="9" * 5000), A, ["body", "metadata"]),
    ("multipart metadata nested 100,000 deep", "POST", "/ingest", files(metadata=DEEP), A, ["body", "metadata"]),
    ("multipart metadata lone surrogate", "POST", "/ingest", files(metadata='{"x": "\\ud800"}'), A,
     ["body", "metadata", "x"]),
    ("multipart metadata nested object", "POST", "/ingest", files(metadata='{"x": {"y": 1}}'), A,
     ["body", "metadata", "x", "str"]),
    ("multipart access lone surrogate", "POST", "/ingest", files(access='{"users": ["\\ud800"]}'), A,
     ["body", "access", "users", 0]),
    ("multipart file name with a control character", "POST", "/ingest",
     dict(zip(("content", "headers"), multipart(("files", "a\tb.txt", b"text")))), A, ["body", "files", 0]),
    # /retrieve and its batch
    ("retrieve query lone surrogate", "POST", "/retrieve", json_body('{"query": "a\\ud800"}'), A, ["body", "query"]),
    ("retrieve filter value lone surrogate", "POST", "/retrieve",
     json_body('{"query": "a", "filters": {"metadata.team": "\\ud800"}}'), A, ["body", "filters", "metadata.team"]),
    ("retrieve filter integer past 64 bits", "POST", "/retrieve",
     json_body('{"query": "a", "filters": {"metadata.year": %d}}' % 2**64), A, ["body", "filters", "metadata.year"]),
    ("retrieve filter bound 1e309", "POST", "/retrieve",
     json_body('{"query": "a", "filters": {"metadata.year": {"gte": 1e309}}}'), A,
     ["body", "filters", "metadata.year", "gte"]),
    ("retrieve principal user lone surrogate", "POST", "/retrieve",
     json_body('{"query": "a", "principal": {"user": "\\udc00"}}'), A, ["body", "principal", "user"]),
    ("retrieve nested 100,000 deep", "POST", "/retrieve", json_body(DEEP), A, ["body"]),
    ("retrieve/batch query lone surrogate", "POST", "/retrieve/batch",
     json_body('{"requests": [{"query": "\\ud800"}]}'), A, ["body", "requests", 0, "query"]),
    # the other JSON bodies
    ("webhook url lone surrogate", "POST", "/webhooks",
     json_body('{"url": "https://example.com/\\ud800", "events": ["job.failed"]}'), A, ["body", "url"]),
    ("webhook description lone surrogate", "POST", "/webhooks",
     json_body('{"url": "https://example.com/", "events": ["job.failed"], "description": "\\ud800"}'), A,
     ["body", "description"]),
    ("query set text lone surrogate", "POST", "/eval/query-sets",
     json_body('{"name": "qs", "queries": [{"id": "q", "text": "\\ud800", "relevant": ["memo"]}]}'), A,
     ["body", "queries", 0, "text"]),
    ("query set relevant id lone surrogate", "POST", "/eval/query-sets",
     json_body('{"name": "qs", "queries": [{"id": "q", "text": "memo", "relevant": ["\\ud800"]}]}'), A,
     ["body", "queries", 0, "relevant", 0]),
    ("query set query id with a line feed", "POST", "/eval/query-sets",
     json_body('{"name": "qs", "queries": [{"id": "q\\n", "text": "memo", "relevant": ["memo"]}]}'), A,
     ["body", "queries", 0, "id"]),
    ("eval run NaN", "POST", "/eval/runs", json_body('{"query_set": NaN}'), A, ["body", "query_set"]),
    ("tuning query set with a control character", "POST", "/tuning", json_body('{"query_sets": ["a\\u0001"]}'), A,
     ["body", "query_sets", 0]),
    ("tuning level Infinity", "POST", "/tuning", json_body('{"level": Infinity}'), A, ["body", "level"]),
    ("benchmark import lone surrogate", "POST", "/benchmarks", json_body('{"date": "\\ud800"}'), OP, ["body", "date"]),
    ("access change user lone surrogate", "PATCH", "/documents/memo/access",
     json_body('{"access": {"users": ["\\ud800"]}}'), A, ["body", "access", "users", 0]),
    ("access change NUL in a group", "PATCH", "/documents/memo/access",
     json_body('{"access": {"groups": ["a\\u0000"]}}'), A, ["body", "access", "groups", 0]),
    # path and query parameters, headers
    ("profile version past 64 bits", "POST", f"/profiles/{2**64}/activate", {}, A, ["path", "version"]),
    ("query set version past 64 bits", "GET", f"/eval/query-sets/qs?version={2**64}", {}, A, ["query", "version"]),
    ("compare version past 64 bits", "GET",
     f"/eval/compare?base={'0' * 64}&candidate={'1' * 64}&query_set=qs&version={2**64}", {}, A, ["query", "version"]),
    ("GET /documents filters lone surrogate", "GET", "/documents", {"params": {"filters": '{"team": "\\ud800"}'}}, A,
     ["query", "filters", "team"]),
    ("GET /documents filters integer past 64 bits", "GET", "/documents",
     {"params": {"filters": '{"year": %d}' % 2**64}}, A, ["query", "filters", "year"]),
    ("GET /documents filters NaN", "GET", "/documents", {"params": {"filters": '{"year": NaN}'}}, A,
     ["query", "filters", "year"]),
    ("principal header lone surrogate", "GET", "/documents",
     {"headers": {"X-Snapdex-Principal": '{"user": "\\ud800"}'}}, A, ["header", "x-snapdex-principal", "user"]),
    ("principal header NaN group", "GET", "/documents/open",
     {"headers": {"X-Snapdex-Principal": '{"groups": [NaN]}'}}, A, ["header", "x-snapdex-principal", "groups", 0]),
    ("query parameter NUL", "GET", "/eval/runs?query_set=a%00b", {}, A, ["query", "query_set"]),
    ("cursor holding a NUL", "GET", "/documents?cursor=YQBi", {}, A, ["query", "cursor"]),
    ("path parameter NUL", "GET", "/eval/query-sets/a%00b", {}, A, ["path", "name"]),
    ("document id NUL", "DELETE", "/documents/memo%00", {}, A, ["path", "doc_id"]),
]


@pytest.mark.parametrize("what,method,path,kwargs,headers,loc", CASES, ids=[c[0] for c in CASES])
def test_what_cannot_be_stored_is_a_422_naming_the_field_and_nothing_is_stored(service, what, method, path, kwargs,
                                                                              headers, loc):
    before = state(service)
    request = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
    r = service.client.request(method, path, **request)
    assert r.status_code == 422, (what, r.status_code, r.text[:500])
    detail = r.json()["detail"]
    assert loc in [e["loc"] for e in detail], (what, detail)
    assert all(e["msg"] for e in detail)
    assert state(service) == before, what


# (what, method, path, request keywords, headers, status, a phrase the answer's detail must hold)
HELD = [
    ("no key", "GET", "/documents", {}, {}, 401, "no API key"),
    ("a key nobody issued", "GET", "/documents", {}, {"Authorization": "Bearer sdx_made_up_0123456789abcdef"}, 401,
     "is not valid"),
    ("another tenant named", "GET", "/documents", {}, {**B, "X-Tenant": "acme"}, 403, "belongs to tenant 'beta'"),
    ("another tenant's document", "GET", "/documents/memo", {}, B, 404, "not found"),
    ("another tenant's document, deleted", "DELETE", "/documents/memo", {}, B, 404, "not found"),
    ("another tenant's access list", "PATCH", "/documents/memo/access", {"json": {"access": None}}, B, 404,
     "not found"),
    ("a path climbing out of the documents", "GET", "/documents/..%2F..%2Fcatalog.sqlite3", {}, A, 404, "not found"),
    ("a path climbing out, unencoded", "GET", "/documents/../../catalog.sqlite3", {}, A, 404, "not found"),
    *[(f"a webhook to {url}", "POST", "/webhooks", {"json": {"url": url, "events": ["job.failed"]}}, A, 422,
       "loopback, link-local or private") for url in
      ("http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://localhost/x",
       "http://10.0.0.1/x", "http://0.0.0.0/x")],
    ("a multipart body past SNAPDEX_MAX_REQUEST_BYTES", "POST", "/ingest",
     {"files": [("files", (f"big-{i}.txt", b"x" * (MAX_REQUEST // 3))) for i in range(4)]}, A, 413,
     "SNAPDEX_MAX_REQUEST_BYTES"),
    ("a JSON body past SNAPDEX_MAX_REQUEST_BYTES", "POST", "/retrieve",
     {"json": {"query": "x", "filters": {"metadata.team": ["y" * 1000] * (MAX_REQUEST // 900)}}}, A, 413,
     "SNAPDEX_MAX_REQUEST_BYTES"),
    # A user key (alice) on internal payload fields: who else reads a document is not hers to ask.
    *[(f"a user key filtering on {key}", "POST", "/retrieve", {"json": {"query": "canteen", "filters": {key: value}}},
       "alice", 422, key) for key, value in (("sources[].access", "u:carol@acme"), ("access", "u:carol@acme"),
                                             ("doc_ids", "open-copy"), ("tenant", "beta"), ("sources[].doc_id", "x"),
                                             ("text", "canteen"))],
]


@pytest.mark.parametrize("what,method,path,kwargs,headers,status,phrase", HELD, ids=[c[0] for c in HELD])
def test_what_a_caller_may_not_reach_is_refused_with_its_reason_and_nothing_changes(service, what, method, path,
                                                                                   kwargs, headers, status, phrase):
    before = state(service)
    headers = service.alice if headers == "alice" else headers
    with httpx.Client(base_url=service.url, timeout=60) as bare:  # no key of its own: only what the case sends
        r = bare.request(method, path, **{**kwargs, "headers": headers})
    assert r.status_code == status, (what, r.status_code, r.text[:500])
    assert phrase.lower() in r.text.lower(), (what, r.text[:500])
    assert state(service) == before, what


def test_filters_read_only_what_the_principal_may_read_where_a_hidden_document_shares_the_chunk(service):
    """"open-copy" (carol's) has the same text as "open" (everyone's): one chunk, two sources. Alice's filters on
    the hidden copy's id, title or metadata find nothing, on the open document's they find the chunk as "open" alone;
    an admin key finds it through either."""
    c = service.client
    as_alice = [{"headers": service.alice, "json": {}},
                {"headers": A, "json": {"principal": {"user": "alice@acme"}}}]
    hidden = [{"doc_id": "open-copy"}, {"doc_id": ["open-copy", "nothing"]}, {"title": "Board copy"},
              {"metadata.secret": "yes"}, {"metadata.team": "board", "doc_id": "open"}]
    for who in as_alice:
        for filters in hidden:
            r = c.post("/retrieve", headers=who["headers"],
                       json={"query": "canteen opening hours", "top_k": 5, "filters": filters, **who["json"]})
            assert r.status_code == 200, r.text
            assert r.json()["hits"] == [], (filters, r.json()["hits"])
        for filters in ({"doc_id": "open"}, {"metadata.team": "all"}, None):
            r = c.post("/retrieve", headers=who["headers"],
                       json={"query": "canteen opening hours", "top_k": 5, "filters": filters, **who["json"]})
            hits = r.json()["hits"]
            assert [h["doc_id"] for h in hits][:1] == ["open"], (filters, hits)
            assert "open-copy" not in r.text and "Board copy" not in r.text and "secret" not in r.text, filters
    r = c.post("/retrieve", headers=A, json={"query": "canteen opening hours", "top_k": 5,
                                             "filters": {"metadata.secret": "yes"}})
    assert {s["doc_id"] for h in r.json()["hits"] for s in h["sources"]} >= {"open-copy"}, r.json()["hits"]


def test_a_body_that_never_ends_holds_its_own_connection_only(service):
    """A client that sends a body's head and then nothing: other requests, of both tenants, are answered meanwhile."""
    url = urlsplit(service.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as slow:
        slow.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\n" + f"Authorization: {A['Authorization']}".encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"query\": \"ca")
        for h, doc_id in ((A, "open"), (B, "beta-doc")):
            r = service.client.post("/retrieve", headers=h, json={"query": "canteen ledger notes", "top_k": 1})
            assert r.status_code == 200 and r.json()["hits"][0]["doc_id"] == doc_id, r.text[:300]
        assert service.client.get("/health").status_code == 200


def test_after_every_refusal_the_service_ingests_answers_and_keeps_its_access_lists(service):
    c = service.client
    # The refused access change left the list as it was: alice reads the memo everywhere, bob nowhere.
    assert c.get("/documents/memo", headers=A).json()["access"] == {"users": ["alice@acme"], "groups": []}
    assert c.get("/documents/memo", headers={**A, **ALICE}).status_code == 200
    assert c.get("/documents/memo", headers={**A, **BOB}).status_code == 404
    for who, sees in (("alice@acme", True), ("bob@acme", False)):
        hits = c.post("/retrieve", headers=A, json={"query": "board memo merger ledgers", "top_k": 5,
                                                     "principal": {"user": who}}).json()["hits"]
        assert ("memo" in {h["doc_id"] for h in hits}) is sees, (who, hits)
    # Lawful input next to the refused kinds still passes: text with tabs and line breaks, unicode, big integers
    # within 64 bits, negative floats.
    job = c.post("/ingest", headers=A, json={"documents": [{
        "id": "later ünï/cødé", "text": "Tabs\tand\nline breaks\r\nstay in text.\fForm feeds too.",
        "metadata": {"big": 2**63 - 1, "small": -(2**63), "ratio": -1.5e300, "tags": ["a", "b"]}}]}).json()["job_id"]
    view = service.wait_job(job, headers=A)
    assert view["status"] == "succeeded" and view["failures"] == [], view
    hit = c.post("/retrieve", headers=A, json={"query": "form feeds line breaks", "top_k": 3}).json()["hits"][0]
    assert hit["doc_id"] == "later ünï/cødé"
    stored = c.get(f"/documents/{quote(hit['doc_id'], safe='')}", headers=A).json()["metadata"]
    assert stored["big"] == 2**63 - 1 and stored["small"] == -(2**63) and stored["ratio"] == -1.5e300
    other = c.post("/retrieve", headers=B, json={"query": "ledger notes"}).json()["hits"]
    assert [h["doc_id"] for h in other] == ["beta-doc"]


# --- an access change is all or nothing (in process: a real failure of the store, injected) ----------------------


def _agree(rt, tenant: str, doc_id: str) -> list[set[str]]:
    """Every snapshot's points of `doc_id` hold the catalog's list of it (nothing for `reassigned` to change); the
    access tokens of each snapshot's points, for the caller to check which list that is."""
    lists = rt.catalog.access_lists(tenant, [doc_id])
    tokens = []
    for snap in rt.manifest.list(tenant):
        records, _ = rt.store.scroll(snap.collection, filters={"doc_ids": [doc_id]}, limit=DOCS_PER_SCROLL)
        assert records, snap.hash
        assert all(reassigned(r.payload, lists) is None for r in records), (snap.hash, lists)
        tokens.append({t for r in records for t in r.payload["access"]})
    return tokens


def test_an_access_change_a_snapshot_refuses_is_undone_everywhere(tmp_path, monkeypatch):
    rt = make_runtime(tmp_path)
    ingest(rt, [text_doc("memo", "The board memo on the merger of the ledgers.")])
    rt.catalog.set_access("default", "memo", {"users": ["alice"], "groups": []})
    rt.access_sync.apply("default", ["memo"])
    ingest(rt, [text_doc("other", "Canteen opening hours are eight to four.")])  # a second snapshot holds memo
    assert len(rt.manifest.list("default")) == 2
    assert _agree(rt, "default", "memo") == [{"u:alice"}, {"u:alice"}]

    real, calls = rt.store.set_payloads, []

    def failing_second(collection, payloads):  # the first snapshot takes the list, the second cannot
        calls.append(collection)
        if len(calls) == 2:
            raise StoreError("no space left on device")
        return real(collection, payloads)

    monkeypatch.setattr(rt.store, "set_payloads", failing_second)
    with TestClient(create_app(runtime=rt)) as c:
        r = c.patch("/documents/memo/access", json={"access": {"users": ["bob"]}})
        assert r.status_code == 503 and "Send the change again" in r.json()["detail"], r.text
        assert r.headers["retry-after"]
        assert rt.catalog.access_lists("default", ["memo"])["memo"] == {"users": ["alice"], "groups": []}
        assert _agree(rt, "default", "memo") == [{"u:alice"}, {"u:alice"}]
        assert len(calls) > 2  # the first snapshot had taken the new list: it was written back
        assert c.get("/documents", headers=BOB).status_code == 200

        monkeypatch.setattr(rt.store, "set_payloads", real)  # the store recovers: the same change goes through
        r = c.patch("/documents/memo/access", json={"access": {"users": ["bob"]}})
        assert r.status_code == 202, r.text
        assert rt.catalog.access_lists("default", ["memo"])["memo"] == {"users": ["bob"], "groups": []}
        assert _agree(rt, "default", "memo") == [{"u:bob"}, {"u:bob"}]
