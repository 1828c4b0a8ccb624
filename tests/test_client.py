"""snapdex.client (sync, async, the LlamaIndex retriever) against a real `snapdex serve`, and its retry policy."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from snapdex.client import AsyncClient, Client, SnapdexError, SnapdexRetriever
from harness.procs import key_for, snapdex_serve

DOCS = [{"id": "leave", "text": "# Handbook\n\n## Parental leave\n\nEmployees get sixteen weeks of paid parental leave. "
                                "Leave starts up to four weeks before the due date.\n\n## Expenses\n\nManagers approve "
                                "expenses within five working days.", "metadata": {"team": "hr"}},
        {"id": "vpn", "text": "The VPN client must be updated before connecting from abroad. " * 6,
         "metadata": {"team": "it"}}]


def test_retries_honour_retry_after_then_give_up():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) < 3:
            return httpx.Response(429 if len(calls) == 1 else 503, headers={"Retry-After": "0.3"},
                                  json={"detail": "slow down"})
        return httpx.Response(200, json={"snapshots": [], "live": None, "tenant": "t"})

    sx = Client("http://sx", transport=httpx.MockTransport(handler), retries=3)
    try:
        sx.snapshots()
    except Exception:
        pass  # the body shape is the service's: only the waiting is checked here
    assert len(calls) == 3 and calls[1] - calls[0] >= 0.29 and calls[2] - calls[1] >= 0.29

    always = Client("http://sx", transport=httpx.MockTransport(
        lambda r: httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "store down"})), retries=2)
    with pytest.raises(SnapdexError) as e:
        always.document("x")
    assert e.value.status == 503 and e.value.detail == "store down"

    async def run():
        seen = []

        def handler(request):
            seen.append(1)
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "x"}) if len(seen) == 1 else \
                httpx.Response(404, json={"detail": "document x not found"})

        client = AsyncClient("http://sx", transport=httpx.MockTransport(handler))
        with pytest.raises(SnapdexError, match="not found"):
            await client.document("x")
        return len(seen)

    assert asyncio.run(run()) == 2


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    # A low retrieve limit: the client's retries must carry a burst through it.
    with snapdex_serve(tmp_path_factory.mktemp("client") / "data", tenants=("acme",),
                       SNAPDEX_RATE_LIMIT_RETRIEVE="4/second") as s:
        yield s


@pytest.mark.slow
def test_sync_client_covers_the_api(svc, documents_dir, tmp_path):
    with Client(svc.url, api_key=key_for("acme")) as sx:
        job = sx.ingest(DOCS)
        assert job.status == "succeeded" and job.counts.new == 2
        job = sx.ingest_files([documents_dir / "fake-memo.pdf"], metadata={"team": "legal"})
        assert job.status == "succeeded", job
        answers = [sx.retrieve("how long is parental leave?", top_k=3,
                               context={"max_tokens": 200, "expand": {"neighbors": 1}}) for _ in range(10)]
        answer = answers[-1]  # ten calls through a limit of four a second: the 429s were retried
        assert answer.hits[0].doc_id == "leave" and answer.context.passages[0].citation == "[1]"
        text = sx.document("leave").text
        p = answer.context.passages[0]
        assert text[p.start:p.end] == p.text and answer.context.tokens <= 200
        batch = sx.retrieve_batch([{"query": "vpn abroad"}, {"query": "expenses approval", "top_k": 2}])
        assert [a.hits[0].doc_id for a in batch.answers] == ["vpn", "leave"]
        assert sorted(d.doc_id for d in sx.iter_documents(limit=1)) == ["fake-memo.pdf", "leave", "vpn"]
        assert [d.doc_id for d in sx.documents(filters={"team": "hr"}).documents] == ["leave"]
        chunks = sx.document_chunks("fake-memo.pdf").chunks
        assert chunks and all(c.pages == [1] for c in chunks)
        snaps = sx.snapshots()
        assert snaps.live == answer.snapshot and snaps.snapshots
        made = sx.upload_query_set("qa", [{"id": "q1", "text": "parental leave weeks", "relevant": ["leave"]}])
        assert made.name == "qa"
        assert [s.name for s in sx.query_sets().query_sets] == ["qa"]
        assert sx.run_eval(query_set="qa").status == "queued"
        with pytest.raises(SnapdexError) as e:
            sx.document("missing")
        assert e.value.status == 404
        # A batch spends one unit of the retrieve limit per query: two of three within a second pass 4/second.
        three = {"requests": [{"query": "a"}, {"query": "b"}, {"query": "c"}]}
        first, second = (svc.client.post("/retrieve/batch", json=three) for _ in range(2))
        assert first.status_code == 404 and second.status_code == 429 and int(second.headers["Retry-After"]) >= 1
        with pytest.raises(Exception, match="max_tokens"):
            sx.retrieve("q", context={"max_tokens": 0})  # refused by the shared schema before it is sent


@pytest.mark.slow
def test_async_client_and_llamaindex_retriever(svc):
    async def run():
        async with AsyncClient(svc.url, api_key=key_for("acme")) as sx:
            await sx.ingest(DOCS)
            single = await sx.retrieve("who approves expenses?", top_k=2)
            nodes = await SnapdexRetriever(sx, top_k=2).aretrieve("who approves expenses?")
            return single, nodes

    single, nodes = asyncio.run(run())
    assert [n.node.node_id for n in nodes] == [h.chunk_id for h in single.hits]
    retriever = SnapdexRetriever(Client(svc.url, api_key=key_for("acme")), top_k=4,
                                 context={"max_tokens": 300, "expand": "section"})
    got = retriever.retrieve("who approves expenses?")
    assert got and got[0].node.metadata["citation"] == "[1]"
    assert got[0].node.metadata["doc_id"] == "leave" and got[0].node.metadata["headings"][0] == "Handbook"
    assert "Managers approve" in got[0].node.get_content()
