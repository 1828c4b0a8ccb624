"""MCP (api/mcp_server/): the `mcp` SDK's own client against a real `snapdex serve`, over Streamable HTTP (`/mcp`) and
over stdio (`snapdex mcp --url` as a subprocess of the client).

One service for the module: two keyed tenants ("acl" with 400 documents under random access lists, the leak test's
corpus, and "other"), a service key and a user key of acl made with `snapdex keys create`. Its default ranking is
BM25 alone (as the leak test's requests ask for it), so the oracle knows which documents each search must return.
Writes are enabled on the service (`SNAPDEX_MCP_ALLOW_WRITES`), the retrieve rate limit is off (the leak test asks
hundreds of questions) and the ingest one is 3 a minute (reached by the write test).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from db import Database
from eval.usage import AnswerStore, UsageLog
from harness.procs import REPO, auth, key_for, snapdex_serve, wait_until
from tests.test_access import GROUPS, USERS, corpus, keys_cli, visible, word_index

pytestmark = pytest.mark.slow

TENANT, OTHER = "acl", "other"
TOP_K = 10
READS = {"search", "get_context", "get_document", "list_documents", "report_usage"}
WRITES = {"ingest_text", "delete_document"}
# The leak test's ranking (tests/test_access.py BM25_ONLY), as the service's defaults: the tools take no options.
BM25_DEFAULTS = {"SNAPDEX_RERANK": "late-interaction", "SNAPDEX_LATE_WEIGHT_DENSE": "0",
                 "SNAPDEX_LATE_WEIGHT_WINDOWS": "0", "SNAPDEX_LATE_WEIGHT_BM25": "1", "SNAPDEX_RERANK_DEPTH": "50",
                 "SNAPDEX_RETRIEVAL_CANDIDATES": "50", "SNAPDEX_RETRIEVAL_FUSION": "rrf"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    rng = random.Random(36)
    words, docs = corpus(rng, n=400)
    for d in docs:
        d["metadata"] = {"shard": int(d["id"][1:]) % 3}
    data = tmp_path_factory.mktemp("mcp") / "data"
    with snapdex_serve(data, tenants=(TENANT, OTHER), SNAPDEX_RATE_LIMIT_RETRIEVE="",
                       SNAPDEX_RATE_LIMIT_INGEST="3/minute", SNAPDEX_GATE_FLOORS="{}", SNAPDEX_MCP_ALLOW_WRITES="true",
                       **BM25_DEFAULTS) as svc:
        job = svc.client.post("/ingest", json={"documents": docs}, headers=auth(TENANT))
        assert job.status_code == 202, job.text
        theirs = svc.client.post("/ingest", json={"documents": [{"id": "theirs", "text": "Another tenant's words."}]},
                                 headers=auth(OTHER))
        assert theirs.status_code == 202, theirs.text
        service_key = keys_cli(data, "create", "--tenant", TENANT, "--scope", "service")
        user = (USERS[3], [GROUPS[1], GROUPS[2]])
        user_key = keys_cli(data, "create", "--tenant", TENANT, "--scope", "user", "--user", user[0],
                            "--groups", ",".join(user[1]))
        done = svc.wait_job(job.json()["job_id"], headers=auth(TENANT), timeout=600)
        assert done["status"] == "succeeded", done
        assert svc.wait_job(theirs.json()["job_id"], headers=auth(OTHER))["status"] == "succeeded"
        texts: dict[str, str] = {}
        group = {d["id"]: texts.setdefault(d["text"], d["id"]) for d in docs}  # documents of one text: one chunk
        yield SimpleNamespace(svc=svc, url=svc.url, data=data, words=[w for w in words if w in word_index(docs)],
                              docs=docs, acl={d["id"]: d.get("access") for d in docs}, index=word_index(docs),
                              group=group, service_key=service_key, user_key=user_key, user=user,
                              snapshot=done["snapshot"])


@asynccontextmanager
async def over_http(url: str, key: str | None, principal: dict | None = None, **headers: str):
    """The SDK's client on /mcp, with the key as a bearer token (and a session principal, if given)."""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if principal is not None:
        headers["X-Snapdex-Principal"] = json.dumps(principal)
    async with httpx2.AsyncClient(headers=headers, timeout=120) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            yield client


def over_stdio(url: str, key: str | None, **env: str) -> Client:
    """The SDK's client starting `snapdex mcp --url` as its stdio server, the key in SNAPDEX_API_KEY."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SNAPDEX_")}
    environment.update(HF_HUB_OFFLINE="1", SNAPDEX_API_KEY=key or "", **env)
    return Client(StdioServerParameters(command=sys.executable, args=["-m", "snapdex", "mcp", "--url", url],
                                        env=environment, cwd=str(REPO)))


async def ok(client: Client, tool: str, **arguments) -> dict:
    r = await client.call_tool(tool, arguments)
    assert not r.is_error, (tool, arguments, r.content[0].text[:500])
    assert r.content[0].text and r.structured_content is not None
    return r.structured_content


async def failed(client: Client, tool: str, **arguments) -> tuple[dict, str]:
    """(the error's status, reason, detail and retry delay; its text) of a call that must fail."""
    r = await client.call_tool(tool, arguments)
    text = r.content[0].text
    assert r.is_error, (tool, arguments, text[:300])
    assert "Traceback" not in text and 'File "' not in text, text
    return r.structured_content["error"], text


def readable(served, principal: tuple[str, list[str]] | None) -> set[str]:
    return {d for d, access in served.acl.items() if principal is None or visible(access, *principal)}


def http_retrieve(served, key: str, body: dict) -> httpx.Response:
    return served.svc.client.post("/retrieve", json=body, headers={"Authorization": f"Bearer {key}"})


def test_the_tools_as_a_client_lists_them(served):
    async def listings():
        async with over_http(served.url, key_for(TENANT)) as c:
            http = {t.name: t for t in (await c.list_tools()).tools}
            templates = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
        async with over_stdio(served.url, key_for(TENANT)) as c:
            stdio = {t.name: t for t in (await c.list_tools()).tools}
            unknown = await c.call_tool("ingest_text", {"id": "x", "text": "y"})
        return http, templates, stdio, unknown

    http, templates, stdio, unknown = asyncio.run(listings())
    # Read-only unless SNAPDEX_MCP_ALLOW_WRITES=true (this service sets it; the stdio process reads its own: with it
    # set, see test_write_tools_and_a_rate_limit).
    assert set(http) == READS | WRITES
    assert set(stdio) == READS and unknown.is_error and "ingest_text" in unknown.content[0].text
    assert templates == ["snapdex://documents/{id}"]
    for name, tool in http.items():
        assert tool.description and tool.output_schema and tool.annotations, name
        if name in READS:
            assert tool.input_schema == stdio[name].input_schema, name  # one implementation, two transports
        assert tool.annotations.read_only_hint is (name in READS - {"report_usage"}), name
    arguments = {name: (sorted(t.input_schema["properties"]), sorted(t.input_schema.get("required", [])))
                 for name, t in http.items()}
    print("tools:", json.dumps(arguments))
    assert arguments == {
        "search": (["filters", "principal", "query", "top_k"], ["query"]),
        "get_context": (["expand", "filters", "max_tokens", "principal", "query"], ["query"]),
        "get_document": (["doc_id", "end", "principal", "start"], ["doc_id"]),
        "list_documents": (["cursor", "filters", "principal"], []),
        "report_usage": (["cited", "helpful", "principal", "request_id"], ["request_id"]),
        "ingest_text": (["id", "metadata", "text"], ["id", "text"]),
        "delete_document": (["doc_id"], ["doc_id"])}
    # The bounds a model is shown are the HTTP API's.
    top_k = http["search"].input_schema["properties"]["top_k"]
    assert (top_k["default"], top_k["minimum"], top_k["maximum"]) == (8, 1, 100)
    ctx = http["get_context"].input_schema["properties"]
    assert ctx["max_tokens"]["default"] == 2000 and ctx["expand"]["default"] == "section"


def test_write_tools_on_mcp_only_when_the_setting_says_so(tmp_path):
    from api.main import create_app
    from snapdex.settings import Settings

    for allow in (False, True):
        app = create_app(Settings(data_dir=tmp_path, mcp_allow_writes=allow))
        names = {t.name for t in asyncio.run(app.state.mcp.server.list_tools())}
        assert names == (READS | WRITES if allow else READS), (allow, names)


def test_answers_equal_the_http_apis(served):
    """search, get_context, get_document and list_documents against POST /retrieve and GET /documents for the same
    request: the same hits, the same context, the same snapshot; over both transports, as an admin key and as a
    service key's principal (a session principal over stdio, a per-call one over HTTP)."""
    rng = random.Random(7)
    words = rng.sample(served.words, 12)
    principal = {"user": USERS[5], "groups": [GROUPS[0], GROUPS[4]]}
    checks = {"search": 0, "get_context": 0, "get_document": 0, "list_documents": 0}

    async def compare(c, key: str, as_principal: dict | None, per_call: bool):
        extra = {"principal": as_principal} if per_call and as_principal else {}
        asked = {"principal": as_principal} if as_principal else {}
        for i, w in enumerate(words):
            filters = {"metadata.shard": i % 3} if i % 4 == 0 else None
            s = await ok(c, "search", query=w, top_k=TOP_K, **({"filters": filters} if filters else {}), **extra)
            h = http_retrieve(served, key, {"query": w, "top_k": TOP_K, "filters": filters, **asked}).json()
            assert s["snapshot"] == h["snapshot"] == served.snapshot
            assert [(x["citation"], x["chunk_id"], x["doc_id"], x["title"], x["text"], x["start"], x["end"],
                     x["pages"], x["headings"], x["score"]) for x in s["hits"]] == \
                [(f"[{n}]", x["chunk_id"], x["doc_id"], x["sources"][0]["title"], x["text"], x["start"], x["end"],
                  x["pages"], x["headings"], x["score"]) for n, x in enumerate(h["hits"], 1)]
            checks["search"] += 1
            expand = "section" if i % 2 else {"neighbors": 1}
            g = await ok(c, "get_context", query=w, max_tokens=300, expand=expand, **extra)
            h = http_retrieve(served, key, {"query": w, "top_k": 8, "context": {"max_tokens": 300, "expand": expand},
                                            **asked}).json()
            assert g["snapshot"] == h["snapshot"] and g["tokenizer"] == h["context"]["tokenizer"]
            assert {k: g[k] for k in ("tokenizer", "tokens", "passages")} == h["context"]
            checks["get_context"] += 1
            for hit in s["hits"][:2]:
                d = await ok(c, "get_document", doc_id=hit["doc_id"], start=hit["start"], end=hit["end"], **extra)
                stored = served.svc.client.get(f"/documents/{hit['doc_id']}", headers={
                    "Authorization": f"Bearer {key}", **({"X-Snapdex-Principal": json.dumps(as_principal)}
                                                         if as_principal else {})}).json()
                assert d["text"] == stored["text"][hit["start"]:hit["end"]] == hit["text"]
                assert (d["title"], d["metadata"], d["length"]) == (stored["title"], stored["metadata"],
                                                                    len(stored["text"]))
                checks["get_document"] += 1
        for filters in (None, {"shard": 2}):
            page = await ok(c, "list_documents", **({"filters": filters} if filters else {}), **extra)
            params = {"limit": 50, **({"filters": json.dumps(filters)} if filters else {})}
            h = served.svc.client.get("/documents", params=params, headers={
                "Authorization": f"Bearer {key}",
                **({"X-Snapdex-Principal": json.dumps(as_principal)} if as_principal else {})}).json()
            assert page == h
            checks["list_documents"] += 1

    async def run():
        async with over_http(served.url, key_for(TENANT)) as c:
            await compare(c, key_for(TENANT), None, per_call=False)
        async with over_http(served.url, served.service_key) as c:
            await compare(c, served.service_key, principal, per_call=True)
        async with over_stdio(served.url, served.service_key, SNAPDEX_PRINCIPAL=json.dumps(principal)) as c:
            await compare(c, served.service_key, principal, per_call=False)

    asyncio.run(run())
    print("parity:", checks)
    assert checks == {"search": 36, "get_context": 36, "get_document": 72, "list_documents": 6}


def test_no_principal_sees_through_mcp_what_it_may_not(served):
    """The leak test's oracle on 150 (principal, query) pairs through search, get_context and get_document with a
    service key over /mcp (and 30 more over stdio): no hit, passage or document a principal may not read, and every
    one it may read that holds the word, up to top_k (documents of one text share one chunk: one of them)."""
    rng = random.Random(11)
    principals = [(rng.choice(USERS), sorted(rng.sample(GROUPS, rng.randint(0, 3)))) for _ in range(60)]
    pairs = [(*rng.choice(principals), rng.choice(served.words)) for _ in range(180)]
    ids = [d["id"] for d in served.docs]
    totals = {"pairs": 0, "hits": 0, "passages": 0, "documents": 0}
    problems: list = []

    async def check(c, chunk):
        for user, groups, word in chunk:
            principal = {"user": user, "groups": groups}
            allowed = readable(served, (user, groups))
            s = await ok(c, "search", query=word, top_k=TOP_K, principal=principal)
            returned = {served.group[h["doc_id"]] for h in s["hits"]}
            leaked = {h["doc_id"] for h in s["hits"]} - allowed
            expected = {served.group[d] for d in served.index[word] & allowed}
            if leaked:
                problems.append(("leaked hit", user, groups, word, sorted(leaked)))
            if len(expected) <= TOP_K and not expected <= returned:
                problems.append(("missed", user, groups, word, sorted(expected - returned)))
            elif len(expected) > TOP_K and len(s["hits"]) < TOP_K:
                problems.append(("short", user, groups, word, len(s["hits"])))
            g = await ok(c, "get_context", query=word, max_tokens=400, expand={"neighbors": 1}, principal=principal)
            problems.extend(("leaked passage", user, groups, word, p["doc_id"]) for p in g["passages"]
                            if p["doc_id"] not in allowed)
            doc = rng.choice(ids)
            r = await c.call_tool("get_document", {"doc_id": doc, "principal": principal})
            if (doc in allowed) != (not r.is_error):
                problems.append(("document", user, groups, doc, r.content[0].text[:100]))
            if r.is_error:
                assert r.structured_content["error"]["status"] == 404, r.content[0].text
            totals["pairs"] += 1
            totals["hits"] += len(s["hits"])
            totals["passages"] += len(g["passages"])
            totals["documents"] += 1

    async def run():
        async with over_http(served.url, served.service_key) as c:
            await check(c, pairs[:150])
        async with over_stdio(served.url, served.service_key) as c:
            await check(c, pairs[150:])

    asyncio.run(run())
    print(f"leak test through MCP: {totals}, {len(problems)} problems")
    assert totals["pairs"] == 180 and totals["hits"] > 500
    assert problems == [], problems[:10]


def test_scopes_tenants_and_keys(served):
    acl_ids = ("d0", "d1", "d2", "d3")  # acl's ids: d0000 to d0399
    user_reads = readable(served, served.user)

    async def run():
        # A user key reads as itself and may not name anyone else: per call or per session.
        async with over_http(served.url, served.user_key) as c:
            for w in served.words[:10]:
                s = await ok(c, "search", query=w, top_k=TOP_K)
                assert {h["doc_id"] for h in s["hits"]} <= user_reads
            error, text = await failed(c, "search", query="x", principal={"user": USERS[0]})
            assert error["status"] == 403 and "user key reads as its own principal" in text
            hidden = sorted(set(served.acl) - user_reads)[0]
            error, _ = await failed(c, "get_document", doc_id=hidden)
            assert error["status"] == 404
            mine = sorted(user_reads)[0]
            assert (await c.read_resource(f"snapdex://documents/{mine}")).contents[0].text == \
                next(d["text"] for d in served.docs if d["id"] == mine)
            with pytest.raises(MCPError, match="404 not found"):
                await c.read_resource(f"snapdex://documents/{hidden}")
            pages, cursor = [], None
            while True:
                page = await ok(c, "list_documents", **({"cursor": cursor} if cursor else {}))
                pages += [d["doc_id"] for d in page["documents"]]
                if not (cursor := page["next_cursor"]):
                    break
            assert set(pages) == user_reads and len(pages) == len(user_reads)
        async with over_http(served.url, served.user_key, principal={"user": USERS[0]}) as c:
            error, text = await failed(c, "search", query="x")
            assert error["status"] == 403 and "user key" in text
        # A service key names whom it reads for.
        async with over_http(served.url, served.service_key) as c:
            error, text = await failed(c, "search", query="x")
            assert error["status"] == 403 and "principal" in text
        # Another tenant's key: none of acl's documents exist for it.
        async with over_http(served.url, key_for(OTHER)) as c:
            for w in served.words[:5]:
                assert not [h for h in (await ok(c, "search", query=w))["hits"] if h["doc_id"].startswith(acl_ids)]
            error, text = await failed(c, "get_document", doc_id="d0001")
            assert error["status"] == 404 and text == "404 not found: document d0001 not found"
            with pytest.raises(MCPError, match="404 not found"):
                await c.read_resource("snapdex://documents/d0001")
            assert not [d for d in (await ok(c, "list_documents"))["documents"] if d["doc_id"].startswith(acl_ids)]
        # Naming another tenant on the MCP connection is refused, not followed.
        async with over_http(served.url, key_for(OTHER), **{"X-Tenant": TENANT}) as c:
            error, text = await failed(c, "search", query="x")
            assert error["status"] == 403 and "belongs to tenant 'other'" in text

    asyncio.run(run())
    # /mcp needs a key exactly like every other route.
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "search", "arguments": {"query": served.words[0]}}}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    for bad in ({}, {"Authorization": "Bearer sdx_wrong"}):
        r = httpx.post(f"{served.url}/mcp", json=message, headers={**headers, **bad})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), r.text
        assert "d0" not in r.text


def test_errors_are_tool_errors_with_the_apis_reasons(served):
    admin = key_for(TENANT)
    http = served.svc.client

    async def run():
        async with over_http(served.url, admin) as c:
            error, text = await failed(c, "search", query="x", filters={"access": "u:someone"})
            detail = http_retrieve(served, admin, {"query": "x", "filters": {"access": "u:someone"}}).json()["detail"]
            assert error["status"] == 422 and error["detail"] == detail and text == f"422 invalid input: {detail}"
            error, text = await failed(c, "get_document", doc_id="no-such-doc")
            assert error["detail"] == http.get("/documents/no-such-doc", headers=auth(TENANT)).json()["detail"]
            error, text = await failed(c, "get_document", doc_id="d0001", start=5, end=10 ** 6)
            assert error["status"] == 422 and text.startswith("422 invalid input: end: start 5 and end 1000000")
            error, text = await failed(c, "search", query="x", topk=3)
            assert text == "422 invalid input: topk: not an argument of search (it takes filters, principal, query, " \
                           "top_k)"
            error, text = await failed(c, "search", query="x", top_k=0)
            assert text == "422 invalid input: top_k: Input should be greater than or equal to 1"
            error, text = await failed(c, "search", query="q" * 16_001)
            assert text.endswith("over this service's limit of 16,000 (SNAPDEX_MAX_QUERY_CHARS)")
            error, text = await failed(c, "get_context", query="x", expand={"neighbors": 99})
            assert error["status"] == 422 and "expand.ContextNeighbors.neighbors: Input should be less than or " \
                                              "equal to 8" in text
            error, text = await failed(c, "get_document", doc_id="a\x01b")
            assert error["status"] == 422 and "control character" in text
            error, text = await failed(c, "search", query="x\x00y")
            assert text == "422 invalid input: query: string holds a NUL character (U+0000)"

    asyncio.run(run())
    # What the SDK's client cannot even send (it writes NaN as null), a raw request can: refused as over HTTP.
    headers = {**auth(TENANT), "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18",
               "Content-Type": "application/json"}
    for value, refusal in (("NaN", "NaN is not a number this service stores"),
                           ("1e999", "Infinity is not a number this service stores"),  # the SDK read it: inf
                           ("123456789012345678901234567890", "outside signed 64 bits"),
                           ('"{\\"metadata.a\\": Infinity}"', "Infinity is not a number")):
        body = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": '
                f'{{"query": "x", "filters": {{"metadata.a": {value}}}}}}}}}' if not value.startswith('"') else
                '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": '
                f'{{"query": "x", "filters": {value}}}}}}}')
        r = httpx.post(f"{served.url}/mcp", content=body, headers=headers)
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert result["isError"] and refusal in result["content"][0]["text"], (value, result)
        assert result["structuredContent"]["error"]["detail"][0]["loc"] == ["arguments", "filters", "metadata.a"]


def test_report_usage_records_what_an_answer_used_for_its_own_principal(served):
    admin, principal = key_for(TENANT), {"user": USERS[7], "groups": [GROUPS[3]]}
    word = next(w for w in served.words if len(served.index[w]) >= 3)

    async def run():
        async with over_http(served.url, admin) as c:
            s = await ok(c, "search", query=word, top_k=TOP_K)
            hits = s["hits"]
            r = await ok(c, "report_usage", request_id=s["request_id"],
                         cited=["[1]", hits[1]["chunk_id"], hits[2]["doc_id"]], helpful=True)
            assert r["snapshot"] == served.snapshot and not r["replaced"] and r["helpful"] is True
            assert [(x["ref"], x["citation"], x["doc_id"], x["chunk_ids"]) for x in r["cited"]] == [
                ("[1]", "[1]", hits[0]["doc_id"], [hits[0]["chunk_id"]]),
                (hits[1]["chunk_id"], None, hits[1]["doc_id"], [hits[1]["chunk_id"]]),
                (hits[2]["doc_id"], None, hits[2]["doc_id"], [hits[2]["chunk_id"]])]
            assert (await ok(c, "report_usage", request_id=s["request_id"], cited=["[2]"]))["replaced"]
            error, text = await failed(c, "report_usage", request_id=s["request_id"], cited=["[99]", "d9999"])
            assert error["status"] == 422 and "'[99]', 'd9999' not in answer" in text
            g = await ok(c, "get_context", query=word, max_tokens=400, expand={"neighbors": 1})
            r = await ok(c, "report_usage", request_id=g["request_id"], cited=["[1]"])
            assert r["cited"][0]["doc_id"] == g["passages"][0]["doc_id"] and r["cited"][0]["chunk_ids"]
            # An answer from POST /retrieve, reported over MCP; one over MCP, reported over HTTP.
            h = http_retrieve(served, admin, {"query": word, "top_k": 3}).json()
            assert (await ok(c, "report_usage", request_id=h["request_id"], cited=["[1]"]))["cited"]
            back = served.svc.client.post("/usage", json={"request_id": g["request_id"], "cited": ["[1]"],
                                                          "helpful": False}, headers=auth(TENANT))
            assert back.status_code == 200 and back.json()["replaced"], back.text
            admin_answer = s["request_id"]
        # Only the key and principal the answer was for may report on it.
        async with over_http(served.url, served.service_key) as c:
            s = await ok(c, "search", query=word, principal=principal)
            error, text = await failed(c, "report_usage", request_id=s["request_id"], cited=["[1]"],
                                       principal={"user": USERS[8]})
            assert error["status"] == 422 and "not an answer this key and principal were given" in text
            error, _ = await failed(c, "report_usage", request_id=admin_answer, cited=["[1]"], principal=principal)
            assert error["status"] == 422
            service_answer = s["request_id"]
        async with over_stdio(served.url, served.service_key, SNAPDEX_PRINCIPAL=json.dumps(principal)) as c:
            r = await ok(c, "report_usage", request_id=service_answer, cited=["[1]"], helpful=False)
            assert r["cited"][0]["doc_id"] in readable(served, (principal["user"], principal["groups"]))
        async with over_http(served.url, served.user_key) as c:
            error, _ = await failed(c, "report_usage", request_id=service_answer, cited=["[1]"])
            assert error["status"] == 422
        async with over_http(served.url, key_for(OTHER)) as c:
            error, _ = await failed(c, "report_usage", request_id=admin_answer, cited=["[1]"])
            assert error["status"] == 422
        return admin_answer, service_answer

    admin_answer, service_answer = asyncio.run(run())
    db = Database(served.data / "catalog.sqlite3")
    usage = UsageLog(db, AnswerStore(db, 0, 0))
    reports = {r["request_id"]: r for r in usage.reports(TENANT)}
    assert [c["ref"] for c in reports[admin_answer]["cited"]] == ["[2]"]  # replaced by the second report
    assert reports[service_answer]["reporter"][1:] == [principal["user"], principal["groups"]]
    assert reports[service_answer]["helpful"] is False and reports[service_answer]["snapshot"] == served.snapshot
    assert len(reports) == 4 and not usage.reports(OTHER)
    # report_usage records the same feedback signals as POST /feedback: the second report's citations only.
    cited = [s for s in usage.answers.signals(TENANT, admin_answer) if s["target"] != "answer"]
    assert [(s["signal"], s["via"], s["position"]) for s in cited] == [("cited", "usage", 2)]


def test_write_tools_and_a_rate_limit(served):
    headers = auth(OTHER)

    async def run():
        async with over_stdio(served.url, key_for(OTHER), SNAPDEX_MCP_ALLOW_WRITES="true") as c:
            listed = {t.name: t.input_schema for t in (await c.list_tools()).tools}
            async with over_http(served.url, key_for(OTHER)) as h:  # one implementation, two transports
                assert listed == {t.name: t.input_schema for t in (await h.list_tools()).tools}
            assert set(listed) == READS | WRITES
            job = await ok(c, "ingest_text", id="notes/quokka", text="Quokkas live on Rottnest Island.",
                           metadata={"title": "Quokka notes"})
            assert served.svc.wait_job(job["job_id"], headers=headers)["status"] == "succeeded"
            hits = (await ok(c, "search", query="quokkas rottnest"))["hits"]
            assert hits[0]["doc_id"] == "notes/quokka" and hits[0]["title"] == "Quokka notes"
            assert (await ok(c, "delete_document", doc_id="notes/quokka"))["deleted"]
            wait_until(lambda: served.svc.client.get("/documents/notes%2Fquokka", headers=headers).status_code == 404,
                       60, "the deletion")
        async with over_http(served.url, served.service_key) as c:
            error, text = await failed(c, "ingest_text", id="x", text="y")
            assert error["status"] == 403 and "admin key" in text
        # The ingest limit is 3 a minute per key (a moving window). How many of the fixture's and the stdio call's
        # ingests are still in it depends on how long this took: ingest until refused, at the 4th call at the latest.
        async with over_http(served.url, key_for(OTHER)) as c:
            for n in range(4):
                r = await c.call_tool("ingest_text", {"id": f"note-{n}", "text": "A short note."})
                if r.is_error:
                    break
            assert r.is_error, "4 ingests within a minute, none refused"
            error, text = r.structured_content["error"], r.content[0].text
            assert error["status"] == 429 and error["retry_after"] >= 1
            assert text.startswith("429 rate limited: rate limit of 3 per 1 minute on ingest") and "retry after" in text

    asyncio.run(run())
