"""The tools and the document resource, over a `Gateway` to the HTTP API (see the package's docstring).

Every tool is one call of the HTTP API and answers what that call answers: `search` and `get_context` are POST
/retrieve, `get_document` and the resource GET /documents/{id}, `list_documents` GET /documents, `report_usage`
POST /usage, the write tools POST /ingest and DELETE /documents/{id}. So a tool sees exactly what the key (and the
principal) would see over HTTP, and fails for the same reasons, which come back as tool errors: the HTTP status, its
reason and the API's own message (with the retry delay of a 429 or 503), never a stack trace.

Each answer is a text a model reads (hits and passages under their citation labels) and the same content as
structured output, whose schema the tool lists.
"""

from __future__ import annotations

import inspect
import json
from typing import Annotated, Any, Awaitable, Callable, Literal, Mapping

import httpx
from fastapi import HTTPException
from mcp.server.mcpserver import Context, MCPServer, ResourceSecurity
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from api.errors import detail_of, schema_domain_error, status_of
from api.strict import parse_json
from wire.common import DocId, Metadata, NonBlank, PrincipalIn, Scalar
from wire.documents import DeleteDocumentResponse, DocumentListResponse
from wire.ingest import IngestResponse
from wire.retrieve import ContextNeighbors, ContextRequest, ContextResponse, RetrieveRequest, RetrieveResponse
from wire.operations import Call, Operations
from wire.usage import UsageRequest, UsageResponse

NAME = "snapdex"
TOP_K = 8  # search's default, and the hits get_context builds its passages from
LIST_LIMIT = 50  # documents per list_documents page
READS = ToolAnnotations(read_only_hint=True, open_world_hint=False)
REASONS = {400: "bad request", 401: "no valid API key", 403: "no access", 404: "not found", 409: "conflict",
           413: "too large", 422: "invalid input", 429: "rate limited", 500: "internal error", 503: "unavailable"}

INSTRUCTIONS = """snapdex searches one tenant's documents, under the permissions of the key (and the principal) in use.
- get_context(query): passages for a prompt within a token budget, numbered [1], [2], ...: answer from them and cite
  the labels. search(query): the ranked hits instead, also numbered.
- get_document(doc_id, start, end) follows a citation into the stored text (start/end come with every hit and passage).
- After answering, call report_usage with the answer's request_id and the labels you cited."""


class Failure(Exception):
    """An error answer of the HTTP API, as a tool reports it: the status, its reason, the API's own detail."""

    def __init__(self, status: int, detail: Any, retry_after: float | None = None) -> None:
        self.status, self.detail, self.retry_after = status, detail, retry_after
        super().__init__(self.message())

    @classmethod
    def of(cls, response: httpx.Response) -> "Failure":
        try:
            detail = response.json().get("detail", response.text)
        except (ValueError, AttributeError):
            detail = response.text
        retry = response.headers.get("retry-after", "")
        return cls(response.status_code, detail, float(retry) if retry.isdigit() else None)

    @classmethod
    def invalid(cls, e: ValidationError, loc: tuple = ()) -> "Failure":
        """Validation errors as the API's 422 lists them (without the input echoed back); a domain error raised by
        a schema's check (the grammar of `filters`) as the API answers it (api/main.py, `_invalid_request`)."""
        if (raised := schema_domain_error(e.errors(include_url=False, include_input=False))) is not None:
            return cls(status_of(raised), detail_of(raised))
        return cls(422, [{"type": err["type"], "loc": [*loc, *err["loc"]], "msg": err["msg"]}
                         for err in e.errors(include_url=False, include_input=False, include_context=False)])

    def message(self) -> str:
        detail = "; ".join(map(_refusal, self.detail)) if isinstance(self.detail, list) else str(self.detail)
        retry = f" (retry after {self.retry_after:g} s)" if self.retry_after else ""
        return f"{self.status} {REASONS.get(self.status, 'error')}: {detail}{retry}"

    def result(self) -> CallToolResult:
        return CallToolResult(is_error=True, content=[TextContent(type="text", text=self.message())],
                              structured_content={"error": {"status": self.status,
                                                            "reason": REASONS.get(self.status, "error"),
                                                            "detail": self.detail, "retry_after": self.retry_after}})


def _refusal(d: Any) -> str:
    """One entry of a 422's list as "where: what", the body (or arguments) it is in left unsaid."""
    if not isinstance(d, dict):
        return str(d)
    loc = list(d.get("loc") or [])
    where = ".".join(map(str, loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "arguments") else loc))
    return f"{where}: {d.get('msg')}" if where else str(d.get("msg"))


def failure(e: Exception) -> Failure:
    if isinstance(e, HTTPException):  # strict()'s refusals, and a session principal header the API refuses
        return Failure(e.status_code, e.detail)
    if isinstance(e, ValidationError):  # what the client checks before sending, with the schema the API checks with
        return Failure.invalid(e, ("arguments",))
    return e


class Gateway(Operations):
    """The HTTP API as the tools call it (the Python client's operations): each one request with `headers` (the
    caller's credentials), never retried (a rate limit is the model's to wait out, told the delay). `principal`: whom
    a service key reads for when a call names nobody (the session's)."""

    def __init__(self, http: httpx.AsyncClient, headers: Mapping[str, str] | None = None,
                 principal: PrincipalIn | None = None) -> None:
        self.http, self.headers, self.principal = http, dict(headers or {}), principal

    def reading_as(self, principal: PrincipalIn | None) -> PrincipalIn | None:
        return principal if principal is not None else self.principal

    async def _run(self, call: Call):
        kwargs = {**call.kwargs, "headers": {**self.headers, **call.kwargs.get("headers", {})}}
        try:
            response = await self.http.request(call.method, call.path, **kwargs)
        except httpx.TransportError as e:
            raise Failure(503, f"the snapdex service at {self.http.base_url} did not answer ({type(e).__name__}: "
                               f"{e})", retry_after=1) from e
        if response.status_code >= 400:
            raise Failure.of(response)
        return call.model.model_validate_json(response.content)


def strict(**arguments: Any) -> None:
    """The service's hostile-input rules (api/strict.py) on a call's arguments as the SDK parsed them: what no JSON body
    may carry may not reach the API through a tool either (a NaN, say, which the request's JSON would carry as null)."""
    plain = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in arguments.items() if v is not None}
    try:
        text = json.dumps(plain, allow_nan=True)
    except RecursionError as e:
        raise Failure(422, [{"type": "json_depth", "loc": ["arguments"], "msg": "nested too deep"}]) from e
    parse_json(text, ("arguments",))


async def guarded(run: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """A tool's answer, or its failure as a tool error."""
    try:
        return await run()
    except (Failure, HTTPException, ValidationError) as e:
        return failure(e).result()


def answer(text: str, out: BaseModel) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=out.model_dump(mode="json"))


# --- what the tools answer -----------------------------------------------------------------------------------------

class SearchHit(BaseModel):
    citation: str = Field(description="the label to cite the hit by, e.g. [1]; report_usage takes it")
    chunk_id: str
    doc_id: str
    title: str | None
    text: str
    start: int | None = Field(description="where `text` sits in the document's stored text (get_document's start)")
    end: int | None
    pages: list[int]
    headings: list[str] = Field(description="the heading path it sits under")
    score: float


class SearchResult(BaseModel):
    request_id: str = Field(description="report_usage takes it, with the labels the answer cited")
    snapshot: str = Field(description="hash of the index snapshot that answered")
    hits: list[SearchHit]
    warnings: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, a: RetrieveResponse) -> "SearchResult":
        return cls(request_id=a.request_id, snapshot=a.snapshot, warnings=a.warnings, hits=[SearchHit(
            citation=f"[{i}]", chunk_id=h.chunk_id, doc_id=h.doc_id, title=h.sources[0].title if h.sources else None,
            text=h.text, start=h.start, end=h.end, pages=h.pages, headings=h.headings, score=h.score)
            for i, h in enumerate(a.hits, 1)])


class ContextResult(ContextResponse):
    request_id: str = Field(description="report_usage takes it, with the labels the answer cited")
    snapshot: str = Field(description="hash of the index snapshot that answered")
    warnings: list[str] = Field(default_factory=list)


class DocumentText(BaseModel):
    doc_id: str
    title: str | None
    source: str | None
    metadata: dict[str, Any]
    length: int = Field(description="characters of the whole stored text")
    start: int
    end: int
    text: str = Field(description="the stored text from start to end")


def _place(doc_id: str, start: int | None, end: int | None, pages: list[int], headings: list[str]) -> str:
    parts = [f"doc {doc_id}"]
    if start is not None:
        parts.append(f"chars {start}-{end}")
    if pages:
        parts.append("p. " + ",".join(map(str, pages)))
    if headings:
        parts.append(" > ".join(headings))
    return " · ".join(parts)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def search_text(r: SearchResult) -> str:
    lines = [f"{_count(len(r.hits), 'hit')} from snapshot {r.snapshot[:12]}; request_id {r.request_id} "
             "(report_usage takes it)"]
    lines += [f"warning: {w}" for w in r.warnings]
    for h in r.hits:
        lines += ["", f"{h.citation} {h.title or h.doc_id} ({_place(h.doc_id, h.start, h.end, h.pages, h.headings)}; "
                      f"score {h.score:.3f})", h.text]
    return "\n".join(lines)


def context_text(r: ContextResult) -> str:
    lines = [f"{_count(len(r.passages), 'passage')}, {_count(r.tokens, 'token')} ({r.tokenizer}), from snapshot "
             f"{r.snapshot[:12]}; request_id {r.request_id} (report_usage takes it). Cite the passages by their "
             "labels."]
    lines += [f"warning: {w}" for w in r.warnings]
    for p in r.passages:
        lines += ["", f"{p.citation} {p.title or p.doc_id} ({_place(p.doc_id, p.start, p.end, p.pages, p.headings)})",
                  p.text]
    return "\n".join(lines)


# --- the arguments ---------------------------------------------------------------------------------------------------
# Bounded as the HTTP API bounds the same fields (one source for both), so the schema a model is shown is the one
# the API enforces.

def _bounds(model: type[BaseModel], name: str) -> list:
    return list(model.model_fields[name].metadata)


Query = Annotated[NonBlank, *_bounds(RetrieveRequest, "query"), Field(description=(
    "the question, or a whole message (up to the service's SNAPDEX_MAX_QUERY_CHARS, 16,000 by default)"))]
Filters = Annotated[dict[str, Any] | None, Field(description=(
    'conditions every hit meets, as /retrieve takes them: {"metadata.team": "hr", "metadata.year": {"gte": 2023}}; '
    "keys are doc_id, title, source or metadata.<field>"))]
Principal = Annotated[PrincipalIn | None, Field(description=(
    "service keys: the end user to read for, {\"user\": ..., \"groups\": [...]} (default: the session's, if set); "
    "a user key reads as itself and may not send one"))]
DocumentId = Annotated[DocId, Field(description="a document id, as hits and passages give it")]
Cited = Annotated[UsageRequest.model_fields["cited"].annotation, *_bounds(UsageRequest, "cited")]
Offset = Annotated[int | None, Field(ge=0, description="a character offset in the stored text")]


class SnapdexServer(MCPServer):
    """MCPServer whose argument errors read as the API's 422s, unknown arguments included (the API's bodies forbid
    extra fields; a misspelt argument silently ignored would answer another question)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NAME, instructions=INSTRUCTIONS, version="0.1.0", **kwargs)
        self.arguments: dict[str, set[str]] = {}

    def tool(self, **kwargs: Any):
        register = super().tool(**kwargs)

        def decorator(fn):
            self.arguments[fn.__name__] = {p for p in inspect.signature(fn).parameters if p != "ctx"}
            return register(fn)

        return decorator

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None):
        if extra := sorted(set(arguments) - self.arguments.get(name, set(arguments))):
            return Failure(422, [{"type": "extra_forbidden", "loc": ["arguments", k], "msg": (
                f"not an argument of {name} (it takes {', '.join(sorted(self.arguments[name]))})")}
                for k in extra]).result()
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as e:
            if isinstance(e.__cause__, ValidationError):  # the arguments against the tool's schema
                return Failure.invalid(e.__cause__, ("arguments",)).result()
            raise


def build_server(connect: Callable[[Context], Gateway], allow_writes: bool) -> MCPServer:
    """The MCP server: its tools call the API through the Gateway `connect` gives for each call's context."""
    server = SnapdexServer()

    @server.tool(annotations=READS)
    async def search(query: Query, ctx: Context,
                     top_k: Annotated[int, *_bounds(RetrieveRequest, "top_k"), Field(description="how many hits")]
                     = TOP_K, filters: Filters = None, principal: Principal = None
                     ) -> Annotated[CallToolResult, SearchResult]:
        """Search the documents: the best-matching chunks, ranked, each with its citation label ([1], [2], ...),
        document id, title, text, place (start/end offsets in the stored text, pages, headings) and score, and the
        snapshot that answered. For text to put in a prompt within a token budget, use get_context."""
        async def run() -> CallToolResult:
            strict(query=query, filters=filters, principal=principal)
            gw = connect(ctx)
            out = SearchResult.of(await gw.retrieve(query, top_k, filters, principal=gw.reading_as(principal)))
            return answer(search_text(out), out)

        return await guarded(run)

    @server.tool(annotations=READS)
    async def get_context(query: Query, ctx: Context,
                          max_tokens: Annotated[int, *_bounds(ContextRequest, "max_tokens"), Field(
                              description="budget: the passages' tokens never exceed it")] = 2000,
                          expand: Annotated[Literal["section"] | ContextNeighbors | None, Field(description=(
                              '"section": each hit grows into its heading section; {"neighbors": n}: by n chunks on '
                              "each side; null: the hits alone"))] = "section",
                          filters: Filters = None, principal: Principal = None
                          ) -> Annotated[CallToolResult, ContextResult]:
        """Context for answering a question: the best hits, expanded and merged into passages numbered for citing
        ([1], [2], ...), within a token budget (counted with the named tokenizer), in the order a prompt should use
        them. Answer from the passages, cite their labels, then call report_usage with request_id and the labels."""
        async def run() -> CallToolResult:
            strict(query=query, expand=expand, filters=filters, principal=principal)
            gw = connect(ctx)
            a = await gw.retrieve(query, TOP_K, filters, context={"max_tokens": max_tokens, "expand": expand},
                                  principal=gw.reading_as(principal))
            out = ContextResult(**a.context.model_dump(), request_id=a.request_id, snapshot=a.snapshot,
                                warnings=a.warnings)
            return answer(context_text(out), out)

        return await guarded(run)

    @server.tool(annotations=READS)
    async def get_document(doc_id: DocumentId, ctx: Context, start: Offset = None, end: Offset = None,
                           principal: Principal = None) -> Annotated[CallToolResult, DocumentText]:
        """A document's stored text, or the span [start, end) of it: follow a citation with the start and end its hit
        or passage gave (the text there is exactly the cited text), or read around it with a wider span."""
        async def run() -> CallToolResult:
            strict(doc_id=doc_id, principal=principal)
            gw = connect(ctx)
            doc = await gw.document(doc_id, principal=gw.reading_as(principal))
            text = doc.text or ""
            s, e = 0 if start is None else start, len(text) if end is None else end
            if not s <= e <= len(text):
                raise Failure(422, [{"type": "span", "loc": ["arguments", "end" if e > len(text) else "start"],
                                     "msg": f"start {s} and end {e} must satisfy 0 <= start <= end <= {len(text)}, the "
                                            "stored text's length"}])
            out = DocumentText(doc_id=doc.doc_id, title=doc.title, source=doc.source, metadata=doc.metadata,
                               length=len(text), start=s, end=e, text=text[s:e])
            head = f"{doc.title or doc.doc_id} (doc {doc.doc_id}, chars {s}-{e} of {len(text)})"
            return answer(f"{head}\n\n{out.text}", out)

        return await guarded(run)

    @server.tool(annotations=READS)
    async def list_documents(ctx: Context, filters: Annotated[dict[str, Scalar] | None, Field(description=(
                                 'metadata values every document has, e.g. {"team": "hr"}'))] = None,
                             cursor: Annotated[str | None, Field(max_length=1000, description=(
                                 "next_cursor of the page before"))] = None,
                             principal: Principal = None) -> Annotated[CallToolResult, DocumentListResponse]:
        """The documents this key (and principal) may read, a page at a time (id, title, source, metadata, chunks),
        with next_cursor for the next page (null on the last)."""
        async def run() -> CallToolResult:
            strict(filters=filters, cursor=cursor, principal=principal)
            gw = connect(ctx)
            out = await gw.documents(LIST_LIMIT, cursor, filters, principal=gw.reading_as(principal))
            lines = [f"{d.doc_id} · {d.title or '-'} · {d.source or '-'} · {d.chunks} chunks" for d in out.documents]
            lines.append(f"next_cursor: {out.next_cursor}" if out.next_cursor else "(last page)")
            return answer("\n".join(lines), out)

        return await guarded(run)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                             open_world_hint=False))
    async def report_usage(request_id: Annotated[str, *_bounds(UsageRequest, "request_id"), Field(description=(
                               "the request_id of the search or get_context answer you used"))], ctx: Context,
                           cited: Annotated[Cited, Field(description=(
                               'what your answer used: the labels you cited ("[1]", "[3]"), or chunk or document '
                               "ids of that answer"))] = [],  # noqa: B006 (pydantic copies defaults)
                           helpful: Annotated[bool | None, Field(description=(
                               "what the user thought of the answer, if they said"))] = None,
                           principal: Principal = None) -> Annotated[CallToolResult, UsageResponse]:
        """Report which passages or hits of an answer your answer used (and, if known, whether it helped): what the
        service's quality tracking learns from. Only the key and principal the answer was for may report on it; a
        new report on the same answer replaces the last."""
        async def run() -> CallToolResult:
            strict(request_id=request_id, cited=cited, principal=principal)
            gw = connect(ctx)
            out = await gw.report_usage(request_id, cited, helpful, principal=gw.reading_as(principal))
            verb = "replaced the report on" if out.replaced else "reported on"
            return answer(f"{verb} answer {out.request_id}: {len(out.cited)} cited "
                          f"({', '.join(c.ref for c in out.cited) or 'nothing'}), helpful: {out.helpful}", out)

        return await guarded(run)

    @server.resource("snapdex://documents/{id}", name="document", mime_type="text/plain",
                     description="A document's stored text, readable under the same permissions as get_document",
                     security=ResourceSecurity(exempt_params={"id"}))  # ids are no paths: any id is valid
    async def document(id: str, ctx: Context) -> str:  # noqa: A002 (the URI's name)
        try:
            gw = connect(ctx)
            return (await gw.document(id, principal=gw.principal)).text or ""
        except (Failure, HTTPException, ValidationError) as e:
            f = failure(e)
            raise MCPError(INVALID_PARAMS, f.message(), {"status": f.status, "retry_after": f.retry_after}) from e

    if allow_writes:
        _write_tools(server, connect)
    return server


def _write_tools(server: SnapdexServer, connect: Callable[[Context], Gateway]) -> None:
    """Listed only with SNAPDEX_MCP_ALLOW_WRITES=true; an admin key is needed as over HTTP."""

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                             open_world_hint=False))
    async def ingest_text(id: DocumentId, text: Annotated[NonBlank, Field(min_length=1, description=(  # noqa: A002
                              "plain text or Markdown"))], ctx: Context,
                          metadata: Annotated[Metadata | None, Field(description=(
                              "filterable fields; title and source are shown with hits"))] = None
                          ) -> Annotated[CallToolResult, IngestResponse]:
        """Add a document, or replace the one with this id. It is searchable once its job has run and the next
        snapshot is built (seconds for a short text)."""
        async def run() -> CallToolResult:
            strict(id=id, text=text, metadata=metadata)
            out = await connect(ctx).ingest_json([{"id": id, "text": text, "metadata": metadata or {}}])
            return answer(f"queued job {out.job_id} for document {id}; a new snapshot follows", out)

        return await guarded(run)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                             open_world_hint=False))
    async def delete_document(doc_id: DocumentId, ctx: Context) -> Annotated[CallToolResult, DeleteDocumentResponse]:
        """Delete a document: the next snapshot (built at once) leaves it out."""
        async def run() -> CallToolResult:
            strict(doc_id=doc_id)
            out = await connect(ctx).delete_document(doc_id)
            return answer(f"document {out.doc_id} deleted; the next snapshot leaves it out", out)

        return await guarded(run)
