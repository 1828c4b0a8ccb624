"""A Python client of the snapdex API, typed with the service's own request and response schemas (wire/: light, it
loads nothing of the server).

    from snapdex.client import Client
    sx = Client("http://localhost:8000", api_key="sdx_...")
    sx.ingest([{"id": "handbook", "text": "..."}])          # waits for the job by default
    answer = sx.retrieve("how long is parental leave?", context={"max_tokens": 1500, "expand": {"neighbors": 1}})
    for p in answer.context.passages: print(p.citation, p.title, p.text)

`AsyncClient` has the same methods, to be awaited. Both retry 429 and 503 answers (and connection failures),
waiting what the service's Retry-After says. `SnapdexRetriever` puts either behind a LlamaIndex retriever.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import httpx
from pydantic import BaseModel

from wire.documents import DocumentSummary
from wire.jobs import SETTLED, JobResponse
from wire.operations import Call, Operations

RETRY_STATUS = (429, 503)


class SnapdexError(Exception):
    """An error answer: its status and the service's `detail` (a sentence, or validation errors)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


def _retry_after(response: httpx.Response | None, attempt: int, max_wait: float) -> float:
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        wait = float(header) if header is not None else 0.5 * 2 ** attempt
    except ValueError:  # an HTTP date: rare here, the service sends seconds
        wait = 1.0
    return min(max(wait, 0.0), max_wait)


def _parse(call: Call, response: httpx.Response):
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise SnapdexError(response.status_code, detail)
    return call.model.model_validate_json(response.content) if call.model else None


def _headers(api_key: str | None, tenant: str | None) -> dict[str, str]:
    return {**({"Authorization": f"Bearer {api_key}"} if api_key else {}), **({"X-Tenant": tenant} if tenant else {})}


class Client(Operations):
    """Synchronous client. `retries`: how many times a 429/503 answer or a failed connection is tried again;
    `max_wait`: the longest a Retry-After is honoured (seconds)."""

    def __init__(self, url: str, api_key: str | None = None, tenant: str | None = None, timeout: float = 60.0,
                 retries: int = 5, max_wait: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.retries, self.max_wait = retries, max_wait
        self.http = httpx.Client(base_url=url, headers=_headers(api_key, tenant), timeout=timeout,
                                 transport=transport)

    def _run(self, call: Call):
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(call.method, call.path, **call.kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(_retry_after(None, attempt, self.max_wait))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries:
                time.sleep(_retry_after(response, attempt, self.max_wait))
                continue
            return _parse(call, response)

    def wait_job(self, job_id: str, timeout: float = 600.0, interval: float = 0.5) -> JobResponse:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.status in SETTLED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            time.sleep(interval)

    def ingest(self, documents: Sequence[dict | BaseModel], wait: bool = True, timeout: float = 600.0):
        """Queue documents and (by default) wait for their job to finish; returns the job."""
        queued = self.ingest_json(documents)
        return self.wait_job(queued.job_id, timeout) if wait else self.job(queued.job_id)

    def ingest_files(self, paths: Sequence[str | Path], metadata: dict | None = None, wait: bool = True,
                     timeout: float = 600.0, access: dict | None = None):
        queued = self.ingest_files_queued(paths, metadata, access)
        return self.wait_job(queued.job_id, timeout) if wait else self.job(queued.job_id)

    def iter_documents(self, limit: int = 100, filters: dict | None = None,
                       principal: dict | None = None) -> Iterator[DocumentSummary]:
        cursor = None
        while True:
            page = self.documents(limit, cursor, filters, principal)
            yield from page.documents
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient(Operations):
    """The same operations, awaited (`await sx.retrieve(...)`)."""

    def __init__(self, url: str, api_key: str | None = None, tenant: str | None = None, timeout: float = 60.0,
                 retries: int = 5, max_wait: float = 30.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.retries, self.max_wait = retries, max_wait
        self.http = httpx.AsyncClient(base_url=url, headers=_headers(api_key, tenant), timeout=timeout,
                                      transport=transport)

    async def _run(self, call: Call):
        for attempt in range(self.retries + 1):
            try:
                response = await self.http.request(call.method, call.path, **call.kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(_retry_after(None, attempt, self.max_wait))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries:
                await asyncio.sleep(_retry_after(response, attempt, self.max_wait))
                continue
            return _parse(call, response)

    async def wait_job(self, job_id: str, timeout: float = 600.0, interval: float = 0.5) -> JobResponse:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job.status in SETTLED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            await asyncio.sleep(interval)

    async def ingest(self, documents: Sequence[dict | BaseModel], wait: bool = True, timeout: float = 600.0):
        queued = await self.ingest_json(documents)
        return await (self.wait_job(queued.job_id, timeout) if wait else self.job(queued.job_id))

    async def ingest_files(self, paths: Sequence[str | Path], metadata: dict | None = None, wait: bool = True,
                           timeout: float = 600.0, access: dict | None = None):
        queued = await self.ingest_files_queued(paths, metadata, access)
        return await (self.wait_job(queued.job_id, timeout) if wait else self.job(queued.job_id))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def __getattr__(name: str):
    """The LlamaIndex adapter lives in snapdex/llama.py and loads on first use: llama_index costs ~40 MB and a second
    to import, which a process that only calls the API (the MCP server inside `snapdex serve`) should not pay."""
    if name in ("SnapdexRetriever", "nodes_of"):
        from snapdex import llama

        return getattr(llama, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
