from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.deps import RuntimeDep, SettingsDep, TenantDep
from api.enqueue import enqueue
from api.ratelimit import IngestLimit
from api.schemas.common import errors, stored_access
from api.schemas.ingest import FormMetadata
from api.strict import StrictRoute, invalid, parse_json, refusal, refused, shown
from ingest.jobs import NewDocument
from snapdex.settings import Settings
from wire.common import AccessIn
from wire.ids import id_problem
from wire.ingest import IngestRequest, IngestResponse

router = APIRouter(tags=["ingest"], responses=errors(400, 413, 422, 429, 503), route_class=StrictRoute)


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


def _json_documents(body) -> list[NewDocument]:
    try:
        req = IngestRequest.model_validate(body)
    except ValidationError as e:
        raise invalid(e, ("body",)) from e
    return [NewDocument(d.id, d.text.encode("utf-8"), dict(d.metadata), access=stored_access(d.access))
            for d in req.documents]


def _form_json(form, field: str):
    """A multipart field holding JSON (`metadata`, `access`), read as every JSON body is; None when absent."""
    value = form.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise refused(refusal(("body", field), "string_type", f"{field} must be a form field holding JSON, not a file"))
    return parse_json(value, ("body", field))


def _form_fields(form) -> tuple[dict, dict | None]:
    """The multipart `metadata` (a JSON object, as a JSON document's) and `access`, each checked as in JSON."""
    try:
        meta = FormMetadata.validate_python(_form_json(form, "metadata") or {})
    except ValidationError as e:
        raise invalid(e, ("body", "metadata")) from e
    access = _form_json(form, "access")
    try:
        return meta, None if access is None else stored_access(AccessIn.model_validate(access))
    except ValidationError as e:
        raise invalid(e, ("body", "access")) from e


def _file_documents(form, settings: Settings) -> list[NewDocument]:
    """The files of a parsed multipart body, as documents whose payload is read from its spool when it is staged
    (ingest/jobs.py): the request holds no file in memory."""
    meta, access = _form_fields(form)
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    if not uploads:
        raise refused(refusal(("body", "files"), "missing", "multipart upload has no 'files' part"))
    docs: list[NewDocument] = []
    for i, f in enumerate(uploads):
        name = (f.filename or "").strip()
        if (problem := id_problem(name)) is not None:
            raise refused(refusal(("body", "files", i), "document_id", f"the file name is the document id, and it "
                                                                      f"{problem}"))
        if f.size is not None and f.size > settings.max_upload_bytes:
            raise HTTPException(status_code=413, detail=f"{shown(name)} is larger than {settings.max_upload_bytes} "
                                                        "bytes (SNAPDEX_MAX_UPLOAD_BYTES)")
        docs.append(NewDocument(name, f.file, {**meta, "source": name}, filename=name, access=access))
    names = [d.doc_id for d in docs]
    if len(set(names)) != len(names):
        raise refused(refusal(("body", "files"), "document_id",
                              "two uploaded files share a file name (the document id)"))
    return docs


@router.post("/ingest", status_code=202, response_model=IngestResponse, openapi_extra=_BODY_DOC,
             summary="Queue documents (JSON or multipart files) for ingestion")
async def ingest(request: Request, rt: RuntimeDep, settings: SettingsDep, tenant: TenantDep,
                 _: IngestLimit) -> IngestResponse:
    # Either body streams within SNAPDEX_MAX_REQUEST_BYTES (api/strict.py); a multipart one's files are spooled,
    # to disk past a megabyte each, and read one at a time when the job is staged.
    async with AsyncExitStack() as stack:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=settings.max_documents_per_request, max_part_size=1024 * 1024)
            stack.push_async_callback(form.close)
            docs = _file_documents(form, settings)
        else:
            docs = _json_documents(await request.json())
        if len(docs) > settings.max_documents_per_request:
            raise HTTPException(status_code=413, detail=f"{len(docs)} documents; at most "
                                                        f"{settings.max_documents_per_request} a request")
        job_id = await run_in_threadpool(rt.jobs.create, tenant, docs)
    try:
        await run_in_threadpool(enqueue, "ingest_job", job_id)
    except HTTPException:  # 503: not accepted, so nothing of it stays behind
        await run_in_threadpool(rt.jobs.discard, job_id)
        raise
    return IngestResponse(job_id=job_id, documents=len(docs))
