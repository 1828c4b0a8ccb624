"""The error body every route answers with, and the OpenAPI responses that declare it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ingest.access import normalize_access
from wire.common import AccessIn


class ErrorResponse(BaseModel):
    """Every error answer: a sentence naming what was wrong, or the list of validation errors."""

    detail: str | list[dict[str, Any]]


_ERRORS = {
    400: "the body could not be parsed (not valid JSON, or not UTF-8)",
    401: "no API key, or not a valid one (Authorization: Bearer <key> or X-API-Key)",
    403: "the API key does not reach this: another tenant named, an operator key on tenant data, or a tenant's key "
         "on an operator's route",
    404: "not found (for this tenant)",
    409: "conflicts with the current state; the message says why",
    413: "too large; the message names the limit and its setting",
    422: "invalid input; the message names the field and the allowed values",
    429: "the API key's rate limit is reached; retry after Retry-After seconds",
    503: "a dependency (vector store, queue) is unavailable; retry after Retry-After seconds",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the error statuses a route answers, all with the ErrorResponse body."""
    return {code: {"model": ErrorResponse, "description": _ERRORS[code]} for code in codes}


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The same, for a route whose success is HTML: FastAPI would document a model under the route's media type,
    but errors are JSON. (ErrorResponse is in the components: the JSON routes declare it as a model.)"""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {code: {"description": _ERRORS[code], "content": {"application/json": {"schema": ref}}} for code in codes}



def stored_access(access: AccessIn | None) -> dict | None:
    """An access list as the catalog keeps it (sorted, each name once); None: the whole tenant."""
    return normalize_access(None if access is None else access.model_dump())
