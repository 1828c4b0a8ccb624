"""Every document id is addressable: the document routes read the id from the raw path.

The routes are `/documents/{doc_id:path}`, `/documents/{doc_id:path}/chunks` and `/documents/{doc_id:path}/access`,
so an id may hold `/`. Matched against the decoded path, `GET /documents/a%2Fchunks` would be the chunks of "a",
and an id holding a line feed would match no route at all (a path parameter's pattern stops at one). So, under
/documents/, the path the router matches keeps `%2F`, `%25` and every escaped control character escaped: only a
literal `/chunks` or `/access` at the end is a route's suffix, and `%2F` inside the id is a slash of the id. The
`document_id` dependency then decodes what was kept. Ids with a plain `/` route as before.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote, unquote

from fastapi import Depends, HTTPException, Path, Request

from wire.ids import CONTROL

PREFIX = "/documents/"
_KEPT = "snapdex.document_path"  # scope key: the path under PREFIX was rewritten here
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+|%")


def _kept(decoded: str) -> str:
    return "".join(quote(ch, safe="") if ch in "/%" or CONTROL.match(ch) else ch for ch in decoded)


def routed_path(raw: str) -> str:
    """The raw path with every escape decoded (as the server decodes paths: UTF-8, errors replaced) except those of
    `/`, `%` and control characters; a stray `%` becomes `%25`, so `document_id`'s unquote inverts it exactly."""
    return _ESCAPES.sub(lambda m: "%25" if m.group() == "%" else _kept(unquote(m.group())), raw)


class DocumentPaths:
    """ASGI middleware: the path of a request under /documents/, as the router should match it."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        raw = scope.get("raw_path") if scope["type"] == "http" and not scope.get("root_path") else None
        if raw and raw.startswith(PREFIX.encode()):
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError:  # not a path a client percent-encoded: left as the server decoded it
                text = None
            if text is not None:  # in place: the middlewares outside read what the router sets in it (the route)
                scope["path"], scope[_KEPT] = routed_path(text), True
        await self.app(scope, receive, send)


def document_id(request: Request, doc_id: Annotated[str, Path(description=(
        "the document id, percent-encoded: `%2F` for a `/` of an id that ends in `/chunks` or `/access` (a literal "
        "one there is the route's suffix), `%25` for `%`, and so on"))]) -> str:
    value = unquote(doc_id) if request.scope.get(_KEPT) else doc_id
    if "\x00" in value:  # no id holds one (ingest/ids.py), and PostgreSQL's text could not look it up
        raise HTTPException(status_code=422, detail=[{"type": "document_id", "loc": ["path", "doc_id"],
                                                      "msg": "a document id holds no NUL character"}])
    return value


DocIdDep = Annotated[str, Depends(document_id)]
