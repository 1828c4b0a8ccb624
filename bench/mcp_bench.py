"""`search` over MCP (Streamable HTTP, /mcp) against POST /retrieve for the same queries: what MCP adds.

One keyed `snapdex serve` (embedded default) over the first --docs SciFact abstracts. Each of the 300 test queries is
asked once over POST /retrieve first, so that both paths then answer it from the result cache: what is timed is
what each path adds around the same answer (the retrieval itself costs both the same; it is timed once, cold, for
scale). Then, --passes times, each query over both paths, one right after the other, the order alternating, from
one client process (the `mcp` SDK's own client; httpx for /retrieve, keep-alive both). Reported: each path's
p50/p95 in client-side milliseconds, the overhead as the difference of those percentiles, and the percentiles of the
per-query difference.

Usage: .venv/bin/python bench/mcp_bench.py [--docs 1000] [--passes 3] [--out bench/results/mcp.json]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import httpx2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, percentiles, scifact_bench, snapdex_serve, write_result  # noqa: E402
from harness.procs import key_for  # noqa: E402

TENANT = "bench"
TOP_K = 8  # the search tool's default


async def measure(url: str, queries: list[str], passes: int) -> dict:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key_for(TENANT)}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http, \
            httpx2.AsyncClient(headers=headers, timeout=120) as mcp_http:
        cold = []
        for q in queries:  # fills the result cache (and the query vector cache) for both paths
            started = time.perf_counter()
            (await http.post("/retrieve", json={"query": q, "top_k": TOP_K})).raise_for_status()
            cold.append((time.perf_counter() - started) * 1000)
        async with Client(streamable_http_client(f"{url}/mcp", http_client=mcp_http)) as client:

            async def over_mcp(q: str) -> tuple[float, list[str]]:
                started = time.perf_counter()
                r = await client.call_tool("search", {"query": q, "top_k": TOP_K})
                took = (time.perf_counter() - started) * 1000
                assert not r.is_error, r.content[0].text
                return took, [h["chunk_id"] for h in r.structured_content["hits"]]

            async def over_http(q: str) -> tuple[float, list[str]]:
                started = time.perf_counter()
                r = await http.post("/retrieve", json={"query": q, "top_k": TOP_K})
                took = (time.perf_counter() - started) * 1000
                r.raise_for_status()
                return took, [h["chunk_id"] for h in r.json()["hits"]]

            for q in queries[:20]:  # both paths' first calls (imports, connection) out of the timing
                await over_mcp(q)
            mcp_ms, http_ms, same = [], [], 0
            for p in range(passes):
                for i, q in enumerate(queries):
                    first, second = (over_mcp, over_http) if (i + p) % 2 == 0 else (over_http, over_mcp)
                    a, b = await first(q), await second(q)
                    (m, h) = (a, b) if first is over_mcp else (b, a)
                    mcp_ms.append(m[0])
                    http_ms.append(h[0])
                    same += m[1] == h[1]
    diff = [m - h for m, h in zip(mcp_ms, http_ms)]
    mcp, rest = percentiles(mcp_ms), percentiles(http_ms)
    return {"retrieve_cold_ms": percentiles(cold), "mcp_search_ms": mcp, "http_retrieve_ms": rest,
            "overhead_ms": {"p50": round(mcp["p50"] - rest["p50"], 2), "p95": round(mcp["p95"] - rest["p95"], 2)},
            "paired_difference_ms": percentiles(diff), "same_hits": f"{same}/{len(diff)}"}


def main() -> int:
    args, docs, ds, queries = scifact_bench(__doc__, REPO / "bench" / "results" / "mcp.json")
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp, \
            snapdex_serve(Path(tmp) / "data", tenants=(TENANT,), SNAPDEX_RATE_LIMIT_RETRIEVE="",
                          SNAPDEX_GATE_FLOORS="{}") as svc:
        started = time.perf_counter()
        job = svc.client.post("/ingest", json={"documents": docs}, headers={"Authorization": f"Bearer "
                                                                                            f"{key_for(TENANT)}"})
        job.raise_for_status()
        done = svc.wait_job(job.json()["job_id"], timeout=3600,
                            headers={"Authorization": f"Bearer {key_for(TENANT)}"})
        if done["status"] != "succeeded":
            raise SystemExit(f"ingest failed: {done}")
        ingest_s = time.perf_counter() - started
        load_before = os.getloadavg()[0]
        result = asyncio.run(measure(svc.url, queries, args.passes))
        load_after = os.getloadavg()[0]
    write_result(args.out, {
        "what": "search over MCP (Streamable HTTP /mcp, the mcp SDK's client) against POST /retrieve, the same "
                "queries answered from the result cache, interleaved; client-side milliseconds",
        "machine": machine(), "documents": len(docs), "queries": len(queries), "passes": args.passes,
        "top_k": TOP_K, "ingest_s": round(ingest_s, 1), **result,
        "load_average_1m": [round(load_before, 2), round(load_after, 2)]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
