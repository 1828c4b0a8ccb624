from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.deps import RuntimeDep, SettingsDep, TenantDep
from api.enqueue import enqueue
from api.ratelimit import IngestLimit
from api.schemas import AccessIn, IngestRequest, IngestResponse, errors
from ingest.jobs import NewDocument
from snapdex.settings import Settings

router = APIRouter(tags=["ingest"], responses=errors(400, 413, 422, 429, 503))


def _inline(schema: dict) -> dict:
    """The model's JSON schema with its $defs written in place: this body is documented by hand (it is JSON or
    multipart), so no components entry exists for the models it refers to."""
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            return walk(defs[ref.rsplit("/", 1)[-1]]) if ref.startswith("#/$defs/") else {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline(IngestRequest.model_json_schema())},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                                  "description": "txt, md, html, docx or pdf; the file name is the document id"},
                        "metadata": {"type": "string", "description": "JSON object applied to every file"},
                        "access": {"type": "string", "description": 'JSON {"users": [...], "groups": [...]} applied '
                                                                    "to every file; absent: the whole tenant"},
                    },
                }
            },
        },
    }
}


def _json_documents(body: bytes) -> list[NewDocument]:
    try:
        req = IngestRequest.model_validate_json(body)
    except ValidationError as e:
        # Without the input echoed back: it may be invalid UTF-8, which no JSON response can carry.
        detail = [{**err, "loc": list(err["loc"])} for err in e.errors(include_url=False, include_input=False,
                                                                        include_context=False)]
        raise HTTPException(status_code=422, detail=detail) from e
    return [NewDocument(d.id, d.text.encode("utf-8"), dict(d.metadata), access=d.access.stored() if d.access else None)
            for d in req.documents]


def _form_access(value) -> dict | None:
    """The multipart `access` field: the same JSON object a JSON document's `access` is."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise HTTPException(status_code=422, detail="access must be a form field holding JSON, not a file")
    try:
        return AccessIn.model_validate_json(value).stored()
    except ValidationError as e:
        detail = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'access'}: {err['msg']}"
                           for err in e.errors(include_url=False, include_input=False, include_context=False))
        raise HTTPException(status_code=422, detail=f"access is not a valid access list: {detail}") from e


async def _file_documents(request: Request, settings: Settings) -> list[NewDocument]:
    form = await request.form(max_files=settings.max_documents_per_request, max_part_size=1024 * 1024)
    try:
        meta = json.loads(form.get("metadata") or "{}")
    except json.JSONDecodeError as e:
        raise HTTPException(status_code=422, detail=f"metadata is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise HTTPException(status_code=422, detail="metadata must be a JSON object")
    access = _form_access(form.get("access"))
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    if not uploads:
        raise HTTPException(status_code=422, detail="multipart upload has no 'files' part")
    docs: list[NewDocument] = []
    for f in uploads:
        name = (f.filename or "").strip()
        if not name:
            raise HTTPException(status_code=422, detail="every uploaded file needs a file name")
        data = await f.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(status_code=413, detail=f"{name} is larger than {settings.max_upload_bytes} bytes")
        docs.append(NewDocument(name, data, {**meta, "source": name}, filename=name, access=access))
    names = [d.doc_id for d in docs]
    if len(set(names)) != len(names):
        raise HTTPException(status_code=422, detail="two uploaded files share a file name (the document id)")
    return docs


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (never read whole first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=f"request body of {declared} bytes; at most {limit} "
                                                    "(SNAPDEX_MAX_REQUEST_BYTES): send fewer documents a request")
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"request body over {limit} bytes (SNAPDEX_MAX_REQUEST_BYTES)")
        parts.append(part)
    return b"".join(parts)


@router.post("/ingest", status_code=202, response_model=IngestResponse, openapi_extra=_BODY_DOC,
             summary="Queue documents (JSON or multipart files) for ingestion")
async def ingest(request: Request, rt: RuntimeDep, settings: SettingsDep, tenant: TenantDep,
                 _: IngestLimit) -> IngestResponse:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        docs = await _file_documents(request, settings)
    else:
        docs = _json_documents(await _bounded_body(request, settings.max_request_bytes))
    if len(docs) > settings.max_documents_per_request:
        raise HTTPException(status_code=413, detail=f"{len(docs)} documents; at most {settings.max_documents_per_request} a request")
    job_id = await run_in_threadpool(rt.jobs.create, tenant, docs)
    try:
        await run_in_threadpool(enqueue, "ingest_job", job_id)
    except HTTPException:  # 503: not accepted, so nothing of it stays behind
        await run_in_threadpool(rt.jobs.discard, job_id)
        raise
    return IngestResponse(job_id=job_id, documents=len(docs))
