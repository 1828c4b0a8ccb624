"""Strict input at the edge: every JSON the API reads, and every path and query parameter, is checked here once,
before any route stores or looks up anything.

Python's JSON reader takes `NaN`, `Infinity` and `-Infinity`, turns `1e309` into infinity, reads integers of any
size (past 4,300 digits it raises ValueError), hands back lone surrogates from `\\ud800`-style escapes and raises
RecursionError on deep nesting. None of these can be stored: the vector engine's payloads and the catalog's JSON
carry finite numbers and 64-bit integers only, PostgreSQL's text holds no NUL, and no UTF-8 encoder takes a lone
surrogate (each of these used to be a 500, or a document that failed every later build of its tenant). So JSON is
read by `parse_json`, which answers 422 naming the place (FastAPI's `loc`, e.g. ["body", "documents", 0,
"metadata", "x"]) for:

- a number that is not finite (the literals, or a float literal past the 64-bit range),
- an integer outside signed 64 bits,
- a lone surrogate anywhere, in a string or an object key,
- a NUL character in any string (free text may hold other control characters: tabs, line breaks, form feeds),
- a control character (Unicode category Cc) in an object key (keys name things: metadata fields, filters),
- nesting deeper than MAX_DEPTH, and text that is not UTF-8.

`StrictRoute` is the route class of every router: the JSON body of a route (FastAPI's `request.json()`) is read
by `parse_json`, the body as a whole (JSON, multipart, form) is refused with 413 once it passes
SNAPDEX_MAX_REQUEST_BYTES, while it streams, and no path or query parameter may hold a control character. The
places that read JSON by hand (the multipart `metadata` and `access` fields, `GET /documents?filters=`, the
X-Snapdex-Principal header) call `parse_json` with their own `loc`. Which strings are names (ids, user and group
names: no control character at all) is the schemas' business (api/schemas.py).
"""

from __future__ import annotations

import json
import math
from typing import Any, AsyncGenerator, Callable, Coroutine

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from api.schemas.common import json_errors
from store.payload import INT64_MAX, INT64_MIN
from wire.ids import CONTROL, describe

MAX_DEPTH = 32  # arrays and objects inside one another; the deepest any schema here needs is 7
MAX_ERRORS = 20  # refusals listed in one answer
_INT64_DIGITS = len(str(INT64_MAX))


class _Refused:
    """A number JSON can write but nothing here can store; stands in the parsed value until the walk names where."""

    __slots__ = ("kind", "msg")

    def __init__(self, kind: str, msg: str) -> None:
        self.kind, self.msg = kind, msg


def _int(text: str) -> int | _Refused:
    digits = len(text) - text.startswith("-")
    # Counted before int(): past 4,300 digits int() raises, and a long one costs quadratic time to convert.
    if digits <= _INT64_DIGITS and INT64_MIN <= (value := int(text)) <= INT64_MAX:
        return value
    return _Refused("int64_range", f"integer of {digits} digits is outside signed 64 bits ({INT64_MIN} to "
                                   f"{INT64_MAX}): the index and the catalog cannot store it")


def _float(text: str) -> float | _Refused:
    value = float(text)
    if math.isfinite(value):
        return value
    return _Refused("finite_number", f"{text[:40]} is past the largest 64-bit float: only finite numbers are stored")


def _constant(name: str) -> _Refused:
    return _Refused("finite_number", f"{name} is not a number this service stores: only finite numbers are")


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def shown(text: str) -> str:
    """A string as an answer can carry it: lone surrogates written as escapes (no JSON encoder takes them)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if not text.isascii() else text


def _unicode_problem(text: str) -> str | None:
    if text.isascii():
        return "holds a NUL character (U+0000)" if "\x00" in text else None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"holds a {describe(text[e.start])} at position {e.start}: not Unicode text"
    return "holds a NUL character (U+0000)" if "\x00" in text else None


def _key_problem(key: str) -> str | None:
    if found := CONTROL.search(key):
        return f"key {shown(key)[:80]!r} holds {describe(found.group())}: keys hold no control characters"
    if problem := _unicode_problem(key):
        return f"key {shown(key)[:80]!r} {problem}"
    return None


def refusal(loc: tuple | list, kind: str, msg: str) -> dict:
    """One entry of a 422's `detail`, shaped as FastAPI's own validation errors are."""
    return {"type": kind, "loc": [shown(p) if isinstance(p, str) else p for p in loc], "msg": msg}


def refused(*errors: dict) -> HTTPException:
    return HTTPException(status_code=422, detail=list(errors))


def invalid(e: ValidationError, loc: tuple, what: str = "") -> HTTPException:
    """A model's validation errors under `loc`, without the input echoed back (the answer names the field)."""
    return refused(*(refusal((*loc, *err["loc"]), err["type"], what + err["msg"])
                     for err in e.errors(include_url=False, include_input=False, include_context=False)))


def problems(value: Any, loc: tuple = ()) -> list[dict]:
    """Where a parsed JSON value holds what cannot be stored, in document order (at most MAX_ERRORS). Iterative:
    the nesting was bounded by the parser's recursion, not by this walk."""
    found: list[dict] = []
    stack: list[tuple[Any, tuple]] = [(value, loc)]
    while stack and len(found) < MAX_ERRORS:
        node, at = stack.pop()
        if isinstance(node, str):
            if problem := _unicode_problem(node):
                found.append(refusal(at, "string_unicode", f"string {problem}"))
        elif isinstance(node, _Refused):
            found.append(refusal(at, node.kind, node.msg))
        elif isinstance(node, (dict, list)):
            if len(at) - len(loc) >= MAX_DEPTH:
                found.append(refusal(at, "json_depth", f"nested deeper than {MAX_DEPTH} arrays or objects"))
                continue
            if isinstance(node, dict):
                children = []
                for key, child in node.items():
                    if problem := _key_problem(key):
                        found.append(refusal((*at, key), "key_unicode", problem))
                    children.append((child, (*at, key)))
            else:
                children = [(child, (*at, i)) for i, child in enumerate(node)]
            stack.extend(reversed(children))
    return found


def parse_json(data: bytes | str, loc: tuple, what: str = "") -> Any:
    """`data` as JSON, or a 422 naming where (under `loc`) it holds what the service cannot store; `what` starts
    each message."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise refused(refusal(loc, "json_invalid", f"{what}not UTF-8: byte 0x{data[e.start]:02x} at {e.start}")) \
                from e
    try:
        value = _DECODER.decode(data)
    except json.JSONDecodeError as e:
        raise refused(refusal(loc, "json_invalid", f"{what}not JSON: {e}")) from e
    except RecursionError as e:
        raise refused(refusal(loc, "json_depth", f"{what}nested deeper than {MAX_DEPTH} arrays or objects")) from e
    if found := problems(value, loc):
        raise refused(*({**f, "msg": what + f["msg"]} for f in found))
    return value


def param_problem(value: str) -> str | None:
    """Why a path or query parameter is refused: it names something, and no name holds a control character."""
    if found := CONTROL.search(value):
        return f"holds {describe(found.group())}: no path or query parameter holds a control character"
    return None


class StrictRequest(Request):
    """A request whose body streams within SNAPDEX_MAX_REQUEST_BYTES and whose JSON is read by `parse_json`."""

    def _limit(self) -> int | None:
        return getattr(self.app.state, "max_request_bytes", None)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        limit = self._limit()
        declared = self.headers.get("content-length", "")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(status_code=413, detail=(
                f"request body of {declared} bytes; at most {limit} (SNAPDEX_MAX_REQUEST_BYTES): send less in one "
                "request (fewer documents or files)"))
        size = 0
        async for chunk in super().stream():
            size += len(chunk)
            if limit is not None and size > limit:  # refused as it passes the limit, never read whole first
                raise HTTPException(status_code=413, detail=f"request body over {limit} bytes "
                                                            "(SNAPDEX_MAX_REQUEST_BYTES)")
            yield chunk

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body(), ("body",))
        return self._json


class StrictRoute(APIRoute):
    """The route class of every router: its handler sees a StrictRequest, after its parameters are checked."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:  # a body past SNAPDEX_MAX_REQUEST_BYTES: documented where one is read
            self.responses.setdefault(413, json_errors(413)[413])

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            found = [refusal((where, name), "string_control", f"{name} {problem}")
                     for where, items in (("path", request.path_params.items()),
                                          ("query", request.query_params.multi_items()))
                     for name, value in items if isinstance(value, str) and (problem := param_problem(value))]
            if found:
                raise refused(*found[:MAX_ERRORS])
            return await handler(StrictRequest(request.scope, request.receive))

        return strict_handler
