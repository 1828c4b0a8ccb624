"""The HTTP answer of every domain error (errors/), in one place: create_app installs `install(app)`.

A route lets a domain error pass; its answer is {"detail": <the error's message>} with the status below (a list of
FastAPI-shaped refusals instead when the error names its field). Everything else that escapes a route, a
ValueError or a KeyError included, is a bug, answered by RequestMetricsMiddleware (api/metrics.py): a 500 whose body
is {"detail": "internal error; report request id <id>"} and whose X-Request-ID header carries the same id, with
the trace in the log under that id and the exception's own message never shown.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.strict import refusal
from errors import Conflict, DomainError, InvalidInput, NotFound, TooLarge, Unavailable

STATUS: dict[type[DomainError], int] = {TooLarge: 413, InvalidInput: 422, NotFound: 404, Conflict: 409,
                                        Unavailable: 503}


def status_of(error: DomainError) -> int:
    """The status of the most specific class `error` is an instance of (a TooLarge is an InvalidInput too)."""
    return next(STATUS[c] for c in type(error).__mro__ if c in STATUS)


def detail_of(error: DomainError):
    """The answer's detail: the error's message, or one FastAPI-shaped refusal when it names its field."""
    if isinstance(error, InvalidInput) and error.loc is not None:
        return [refusal(error.loc, error.kind, str(error))]
    return error.detail


def schema_domain_error(errors: list[dict]) -> DomainError | None:
    """The domain error a schema's check raised (the grammar of `filters`), when it is every validation error of the
    body: then the body is answered as a route raising it would be, over HTTP and MCP alike. None otherwise."""
    raised = [(e.get("ctx") or {}).get("error") for e in errors]
    return raised[0] if raised and all(isinstance(r, DomainError) for r in raised) else None


async def domain_error(request: Request, error: DomainError) -> JSONResponse:
    detail = detail_of(error)
    headers = {"Retry-After": str(max(int(error.retry_after), 1))} if isinstance(error, Unavailable) else None
    return JSONResponse(status_code=status_of(error), content={"detail": detail}, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error)
