from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from api.deps import RuntimeDep, TenantDep
from api.enqueue import enqueue
from api.schemas import DeleteDocumentResponse, errors

router = APIRouter(tags=["ingest"], responses=errors(404, 422, 503))


@router.delete("/documents/{doc_id:path}", status_code=202, response_model=DeleteDocumentResponse,
               summary="Drop a document from the next snapshot")
async def delete_document(doc_id: str, rt: RuntimeDep, tenant: TenantDep) -> DeleteDocumentResponse:
    if not await run_in_threadpool(rt.catalog.mark_deleted, tenant, doc_id):
        raise HTTPException(status_code=404, detail=f"document {doc_id} not found")
    await run_in_threadpool(enqueue, "build_snapshot", tenant)
    return DeleteDocumentResponse(doc_id=doc_id, deleted=True)
