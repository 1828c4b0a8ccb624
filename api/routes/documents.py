from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from api.deps import AskedPrincipalDep, PrincipalDep, ReadingTenantDep, RuntimeDep, SettingsDep, TenantDep, reader_of
from api.document_paths import DocIdDep
from api.enqueue import enqueue
from api.schemas.common import errors, stored_access
from api.strict import StrictRoute, parse_json, refusal, refused
from index_snapshots.documents import holding_snapshots
from ingest.access import Reader
from ingest.catalog import DocumentRow
from wire.documents import (AccessChange, AccessResponse, DeleteDocumentResponse, DocumentChunk, DocumentChunksResponse,
                            DocumentListResponse, DocumentResponse, DocumentSummary)

router = APIRouter(tags=["documents"], responses=errors(403, 404, 422, 503), route_class=StrictRoute)
log = logging.getLogger("snapdex.documents")


def _cursor(doc_id: str) -> str:
    return base64.urlsafe_b64encode(doc_id.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:  # b64decode takes ASCII text only (a ValueError otherwise): a cursor this service gave is
        after = (base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
                 if cursor.isascii() else None)
    except (binascii.Error, UnicodeDecodeError):
        after = None
    # No id holds a NUL: not a cursor this service gave (and PostgreSQL could not compare it).
    if after is None or "\x00" in after:
        raise refused(refusal(("query", "cursor"), "cursor", f"cursor {cursor[:80]!r} is not one this service gave"))
    return after


def _filters(filters: str | None) -> dict | None:
    if filters is None:
        return None
    parsed = parse_json(filters, ("query", "filters"))
    if not isinstance(parsed, dict) or not all(isinstance(v, (str, int, float, bool)) for v in parsed.values()):
        raise HTTPException(status_code=422, detail='filters must be a JSON object of metadata values, e.g. '
                                                    '{"team": "hr"} (or {"metadata.team": "hr"}, as /retrieve takes it)')
    return {k.removeprefix("metadata."): v for k, v in parsed.items()}


def _summary(d: DocumentRow, snapshots: list[str], reader: Reader | None) -> dict:
    # The access list itself only to whoever reads everything: to a user it would name the other readers.
    return {"doc_id": d.doc_id, "title": d.title, "source": d.source, "status": d.status, "metadata": d.metadata,
            "content_hash": d.content_hash, "chunks": len(d.chunk_hashes), "snapshots": snapshots,
            "access": d.access if reader is None else None}


def _document(rt, tenant: str, doc_id: str, reader: Reader | None = None) -> DocumentRow:
    """The document, if it exists and `reader` may read it: one it may not is "not found" as well, so that its id
    cannot be probed for either."""
    doc = rt.catalog.get_document(tenant, doc_id)
    if doc is None or doc.status == "deleted" or (reader is not None and not reader.sees_document(doc.access)):
        raise HTTPException(status_code=404, detail=f"document {doc_id} not found")
    return doc


# Both query strings are bounded so that, percent-encoded at 12 bytes a character at worst, a request head stays far
# below the ~64 KiB the HTTP server parses; past that it answers a plain-text 400 that no route can shape.
@router.get("/documents", response_model=DocumentListResponse, summary="The tenant's documents, a page at a time")
async def list_documents(rt: RuntimeDep, tenant: ReadingTenantDep, principal: PrincipalDep, settings: SettingsDep,
                         asked: AskedPrincipalDep,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50,
                         cursor: Annotated[str | None, Query(max_length=1000, description="from next_cursor")] = None,
                         filters: Annotated[str | None, Query(max_length=1000, description=(
                             'JSON object of metadata values a document must have, e.g. {"team": "hr"}'))] = None
                         ) -> DocumentListResponse:
    reader = reader_of(principal, tenant, settings, asked)

    def page():
        docs, last = rt.catalog.page(tenant, limit, _after(cursor), _filters(filters),
                                     readable=reader.sees_document if reader else None)
        held = holding_snapshots(rt.manifest, rt.store, tenant, [d.doc_id for d in docs])
        return DocumentListResponse(documents=[DocumentSummary(**_summary(d, held[d.doc_id], reader)) for d in docs],
                                    next_cursor=_cursor(last) if last is not None else None)

    return await run_in_threadpool(page)


# Before GET /documents/{doc_id}: its :path would take ".../chunks" as part of the id. Only a literal "/chunks"
# ends the raw path here; "a%2Fchunks" is the document "a/chunks" (api/document_paths.py).
@router.get("/documents/{doc_id:path}/chunks", response_model=DocumentChunksResponse,
            summary="A document's chunks in order, with their offsets in its stored text, pages and heading paths")
async def document_chunks(doc_id: DocIdDep, rt: RuntimeDep, tenant: ReadingTenantDep, principal: PrincipalDep,
                          settings: SettingsDep, asked: AskedPrincipalDep) -> DocumentChunksResponse:
    reader = reader_of(principal, tenant, settings, asked)

    def chunks():
        doc = _document(rt, tenant, doc_id, reader)
        if doc.chunk_spans is not None and doc.text is not None:
            return [DocumentChunk(index=i, chunk_id=c.hash, text=doc.text[c.start:c.end], start=c.start, end=c.end,
                                  pages=list(c.pages), headings=list(c.headings),
                                  table={"number": c.table[0], "rows": list(c.table[1:])} if c.table else None)
                    for i, c in enumerate(doc.spans())]
        # Chunked before offsets were recorded (the next build re-chunks it): the chunk texts, unplaced.
        rows = rt.catalog.chunks(tenant, doc.chunk_hashes)
        return [DocumentChunk(index=i, chunk_id=h, text=rows[h].text if h in rows else "", start=None, end=None,
                              pages=[], headings=[]) for i, h in enumerate(doc.chunk_hashes)]

    return DocumentChunksResponse(doc_id=doc_id, chunks=await run_in_threadpool(chunks))


@router.get("/documents/{doc_id:path}", response_model=DocumentResponse,
            summary="A document: its stored text (what offsets index into) and metadata")
async def get_document(doc_id: DocIdDep, rt: RuntimeDep, tenant: ReadingTenantDep, principal: PrincipalDep,
                       settings: SettingsDep, asked: AskedPrincipalDep) -> DocumentResponse:
    reader = reader_of(principal, tenant, settings, asked)

    def one():
        doc = _document(rt, tenant, doc_id, reader)
        held = holding_snapshots(rt.manifest, rt.store, tenant, [doc_id])[doc_id]
        return DocumentResponse(**_summary(doc, held, reader), text=doc.text, pages=doc.page_starts or [])

    return await run_in_threadpool(one)


# Before DELETE /documents/{doc_id}: its :path would take ".../access" as part of the id.
@router.patch("/documents/{doc_id:path}/access", status_code=202, response_model=AccessResponse,
              summary="Change who may read a document, without parsing or embedding it again", responses=errors(400))
async def set_access(doc_id: DocIdDep, body: AccessChange, rt: RuntimeDep, tenant: TenantDep,
                     settings: SettingsDep) -> AccessResponse:
    # A payload change only. Before the answer, the new list is written into every snapshot of the tenant holding
    # the document (live, candidates, retired, one being built): from here on no request, live, pinned or after a
    # rollback, reads it under the old list, and no cached answer from before is served (index_snapshots/access.py).
    # The next snapshot takes every vector from the cache; its hash differs (access lists are part of it).
    # All or nothing: if a snapshot cannot take the new list, the catalog's old one is put back (index_snapshots/
    # access.py), so the document is read under one list everywhere, the old one, until the change is sent again.
    access = stored_access(body.access)
    try:
        changed = await run_in_threadpool(rt.access_sync.change, tenant, doc_id, access)
    except Exception as e:
        log.exception("the access change of %r (tenant %s) was undone", doc_id, tenant)
        raise HTTPException(status_code=503, headers={"Retry-After": "1"}, detail=(
            f"the new access list could not be written into every snapshot of the tenant ({type(e).__name__}); "
            "nothing was changed: the document keeps its old list. Send the change again")) from e
    if not changed:
        raise HTTPException(status_code=404, detail=f"document {doc_id} not found")
    # Debounced as after an ingest job: a burst of changes makes one snapshot. A build already queued in the first
    # half of its countdown reads this change too (it reads the catalog when it starts), so no other is queued.
    now = time.monotonic()
    if _queued_builds.get(tenant, 0.0) <= now:
        await run_in_threadpool(lambda: enqueue("build_snapshot", tenant, countdown=settings.build_debounce_s))
        _queued_builds[tenant] = now + settings.build_debounce_s / 2
    return AccessResponse(doc_id=doc_id, access=access)


_queued_builds: dict[str, float] = {}  # tenant -> until when an access change needs no build of its own


@router.delete("/documents/{doc_id:path}", status_code=202, response_model=DeleteDocumentResponse,
               summary="Drop a document from the next snapshot")
async def delete_document(doc_id: DocIdDep, rt: RuntimeDep, tenant: TenantDep) -> DeleteDocumentResponse:
    if not await run_in_threadpool(rt.catalog.mark_deleted, tenant, doc_id):
        raise HTTPException(status_code=404, detail=f"document {doc_id} not found")
    await run_in_threadpool(enqueue, "build_snapshot", tenant)
    return DeleteDocumentResponse(doc_id=doc_id, deleted=True)
