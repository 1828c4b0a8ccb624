"""Document access lists and who reads: the one place that turns both into the keyword tokens Qdrant filters on.

A document's `access` is {"users": [...], "groups": [...]} or absent. Each indexed chunk carries one keyword
payload field, `access`, holding the tokens of every document it is served for:

    u:<user>   a user named in a document's list
    g:<group>  a group named in a document's list
    *          a document without a list: the whole tenant may read it

A reader (the principal a request runs as) matches a chunk when the chunk holds any of the reader's tokens:
its `u:`, its `g:`s and, unless the tenant denies by default, `*`. That match is one condition of the same Qdrant
request as the search, so a hidden chunk never takes a place in the top k. The tenant's "deny by default" is
applied when reading (the `*` token is left out), not when indexing, so changing the setting needs no rebuild.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from errors import InvalidInput
from wire.common import MAX_NAME_CHARS, MAX_NAMES

TENANT_WIDE = "*"
NO_ONE = "-"  # a token no document carries (theirs are "*", "u:..." and "g:...")
FIELD = "access"  # the payload field; a request's own filters may not name it
# The near-duplicate twins each source names (keyword-indexed): an access change finds the points that name a
# document as a twin through it.
TWINS = "sources[].twins"


def _names(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise InvalidInput(f"access.{what} must be a list of strings, got {type(value).__name__}")
    if len(value) > MAX_NAMES:
        raise InvalidInput(f"access.{what} has {len(value)} names; at most {MAX_NAMES}")
    out = set()
    for v in value:
        if not isinstance(v, str) or not v.strip() or len(v) > MAX_NAME_CHARS:
            raise InvalidInput(f"access.{what}: {str(v)[:40]!r} is not a name (1-{MAX_NAME_CHARS} characters, "
                               "not blank)")
        out.add(v)
    return sorted(out)


def normalize_access(access: object) -> dict | None:
    """An access list in its stored form (sorted, each name once), or None for "no list" (the whole tenant).
    `{"users": [], "groups": []}` is a list naming nobody: only admin keys read such a document."""
    if access is None:
        return None
    if not isinstance(access, dict) or not set(access) <= {"users", "groups"}:
        raise InvalidInput('access must be an object {"users": [...], "groups": [...]} (either may be left out)')
    return {"users": _names(access.get("users"), "users"), "groups": _names(access.get("groups"), "groups")}


def document_tokens(access: dict | None) -> list[str]:
    """What a document's access list puts in the `access` payload field of its chunks."""
    if access is None:
        return [TENANT_WIDE]
    return [f"u:{u}" for u in access["users"]] + [f"g:{g}" for g in access["groups"]]


def point_tokens(sources: list[dict]) -> list[str]:
    """A point's `access` field from its `sources` (each carrying its document's tokens): a chunk shared by documents
    is readable through any of them. The builder writes it so, and so does an access change to a built snapshot."""
    return sorted({t for s in sources for t in s.get("access", [TENANT_WIDE])})


def reassigned(payload: dict, lists: dict[str, dict | None]) -> dict | None:
    """The `access` and `sources` fields of a built point once each document of `lists` (doc id -> its access list)
    has that list: its own source's tokens, the tokens its near-duplicate twins are named with, and the point's
    union. None when the point holds them already, or holds no `access` field at all (built before access lists: no
    principal's filter matches it, and writing one would make it readable)."""
    if FIELD not in payload:
        return None
    sources = []
    for s in payload.get("sources") or []:
        s = dict(s)
        if s.get("doc_id") in lists:
            s["access"] = document_tokens(lists[s["doc_id"]])
        twins, twin_access = s.get("twins") or [], s.get("twin_access")
        if twin_access is not None and len(twin_access) == len(twins) and any(t in lists for t in twins):
            s["twin_access"] = [document_tokens(lists[t]) if t in lists else a for t, a in zip(twins, twin_access)]
        sources.append(s)
    fields = {"sources": sources, FIELD: point_tokens(sources)}
    return None if all(payload.get(k) == v for k, v in fields.items()) else fields


def user_digest(user: str) -> str:
    """What a log says about a user: enough to correlate requests, not the name."""
    return hashlib.sha256(user.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@dataclass(frozen=True)
class Reader:
    """The principal a read runs as. `tenant_wide`: documents without a list are readable (the tenant does not deny
    by default)."""

    user: str | None
    groups: tuple[str, ...] = ()
    tenant_wide: bool = True

    @classmethod
    def of(cls, user: str | None, groups, tenant_wide: bool) -> "Reader":
        if user is not None and (not isinstance(user, str) or not user.strip() or len(user) > MAX_NAME_CHARS):
            raise InvalidInput(f"principal.user must be a name of 1-{MAX_NAME_CHARS} characters")
        return cls(user, tuple(_names(list(groups or []), "groups")), tenant_wide)

    def tokens(self) -> list[str]:
        """The `access` values this reader matches, sorted: the filter, and part of every cache key."""
        out = [f"g:{g}" for g in self.groups]
        if self.user is not None:
            out.append(f"u:{self.user}")
        if self.tenant_wide:
            out.append(TENANT_WIDE)
        return sorted(out)

    def sees(self, tokens) -> bool:
        return not set(tokens).isdisjoint(self.tokens())

    def sees_document(self, access: dict | None) -> bool:
        return self.sees(document_tokens(access))


def visible_payload(payload: dict, reader: Reader | None) -> dict:
    """A hit's payload as `reader` may see it: the chunk matched the filter, so its text is readable through some
    document; the sources (doc ids, titles, offsets) and metadata of the other documents it is shared with are not."""
    sources = payload.get("sources") or []
    if reader is None or all(reader.sees(s.get("access", [TENANT_WIDE]))
                             and all(reader.sees(t) for t in s.get("twin_access") or ()) for s in sources):
        return payload
    kept = [_with_visible_twins(s, reader) for s in sources if reader.sees(s.get("access", [TENANT_WIDE]))]
    if len(kept) == len(sources):  # only twins were hidden: the chunk's documents, and their metadata, stand
        return {**payload, "sources": kept}
    # A shared chunk's sources carry their own metadata (index_snapshots/builder.py): merged again from those kept.
    return {**payload, "sources": kept, "doc_ids": [s["doc_id"] for s in kept],
            "metadata": merge_metadata([s.get("metadata") or {} for s in kept])}


def _with_visible_twins(source: dict, reader: Reader) -> dict:
    """A source naming only the near-duplicate twins `reader` may read (a twin's id is not for every reader)."""
    if not source.get("twins"):
        return source
    pairs = [(t, a) for t, a in zip(source["twins"], source.get("twin_access") or ()) if reader.sees(a)]
    return {**source, "twins": [t for t, _ in pairs], "twin_access": [a for _, a in pairs]}


def merge_metadata(metadatas: list[dict]) -> dict[str, list]:
    """The metadata of the documents a chunk is served for, as arrays (Qdrant matches an array if any element
    does)."""
    merged: dict[str, list] = {}
    for m in metadatas:
        for k, v in m.items():
            bucket = merged.setdefault(k, [])
            bucket.extend(x for x in (v if isinstance(v, list) else [v])
                          if isinstance(x, (str, int, float, bool)) and x not in bucket)
    return merged
