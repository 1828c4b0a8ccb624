"""Request filters: the fields a `/retrieve` caller may filter on, and how a filter reads a snapshot's payload.

    {"doc_id": "handbook"}                the document's id; a list of ids: any of them
    {"title": "Employee handbook"}        its title (a str, or a list of str)
    {"source": "handbook.pdf"}            where it came from: the file name or URL it was ingested as
    {"metadata.<field>": value}           one field of its metadata (the caller's own over those found at parsing):
                                          a str, int or bool; a list of str or of int (any of them); or numeric
                                          bounds {"gte": .., "gt": .., "lte": .., "lt": ..}

Keys are ANDed, and all of them hold on one and the same document of a hit's chunk: two documents sharing a chunk
(exact duplicates) do not combine their fields. On behalf of a principal, that document is one the principal may
read, so what a filter matches is decided by readable documents alone. Every other key, the payload's internal fields
among them (`access`, `sources[]...`, `doc_ids`, `tenant`, `chunk_hash`, `text`, ...), is refused: a ValueError (the
API's 422) naming the key and the allowed ones. This is the grammar of request filters only; the project's own reads
filter the store directly on payload paths (store/filters.py).

How it reads the payload the builder writes (index_snapshots/builder.py `_point`): a chunk is one point; its `sources`
hold one entry per document (doc_id, source, title, the document's access tokens, and its `metadata` when the chunk is
shared); top level, `doc_ids`, `metadata` merged from all its documents, and `access`, the union of their tokens. A
point with one document has that document's fields on top (and its `access` is that document's tokens); a point with
several needs one source that meets every condition and the reader's tokens, a nested condition over `sources`:

    access ∈ reader's tokens  AND  (  (doc_ids holds one value  AND  every condition on the top-level fields)
                                   OR nested(sources: access ∈ reader's tokens AND every condition on the source) )

Where the two branches agree one is enough: without a metadata condition the nested one alone (every source holds
doc_id, title and source); for a key that reads everything and one condition, the top level alone (one condition
holds on some document exactly when it holds on their union). This needs no payload written before to change, but
the engine reads a point's payload once per condition that needs it, and the first branch takes two or more such
reads where the nested one takes one: a metadata filter costs about twice the engine time of the flat conditions it
replaced (bench/filter_bench.py). A snapshot whose every source carries its document's metadata (SOURCE_METADATA in
its config) is filtered by the nested condition alone, at the flat conditions' cost.
"""

from __future__ import annotations

from ingest.access import FIELD as ACCESS, NO_ONE, Reader
from options.filters import METADATA, check_filters
from store.filters import Condition, Filter, Nested, condition

SOURCES = "sources"
DOC_IDS = "doc_ids"
# A document's own fields (options/filters.py), in each of a point's sources, and where a point with one document
# holds them on top.
DOCUMENT_FIELDS = {"doc_id": DOC_IDS, "title": f"{SOURCES}[].title", "source": f"{SOURCES}[].source"}
# In a snapshot's config when every source of its points carries its document's metadata, shared or not (the builder
# writes it so): a filter then reads each condition once, on the source, where the older layout needs the top level
# for a point of one document (twice the engine's time for a metadata filter: bench/filter_bench.py).
SOURCE_METADATA_KEY, SOURCE_METADATA = "source_metadata", "every-source-v1"


def parse_request_filters(filters: dict | None) -> list[Condition]:
    """The request's conditions, each keyed by its field as a source names it (doc_id, title, source,
    metadata.<field>), in key order. The request schema checked the grammar already; callers inside the service
    (MCP, evaluation) reach it here, and the store's own check of each value stays behind it."""
    return [condition(key, value) for key, value in sorted((check_filters(filters) or {}).items())]


def sources_carry_metadata(config: dict) -> bool:
    """Whether a snapshot (by its config) has each document's metadata in its source, shared chunk or not."""
    return config.get(SOURCE_METADATA_KEY) == SOURCE_METADATA


def request_filter(filters: dict | None, reader: Reader | None, every_source: bool = False) -> Filter | None:
    """The store filter of a request's `filters` read on behalf of `reader` (None: a key that reads everything).
    Raises ValueError for a key or value outside the grammar above. `every_source`: the snapshot's sources all carry
    their document's metadata (`sources_carry_metadata(config)`): one nested condition then says it all."""
    conditions = parse_request_filters(filters)
    # A reader with no token at all (no user, no group, a tenant denying by default) matches nothing: a token no
    # document carries keeps the condition a valid match-any.
    access = (Condition("any", ACCESS, reader.tokens() or [NO_ONE]),) if reader is not None else ()
    if not conditions:
        return Filter(must=access) if access else None
    on_top = tuple(c._replace(key=DOCUMENT_FIELDS.get(c.key, c.key)) for c in conditions)
    if not access and len(conditions) == 1:
        return Filter(must=on_top)
    # Necessary either way, and keyword-indexed: the engine narrows the candidates by them before the nested check.
    narrow = access + tuple(c for c in on_top if c.key == DOC_IDS)
    in_source = Nested(SOURCES, Filter(must=access + tuple(conditions)))
    if every_source or not any(c.key.startswith(METADATA) for c in conditions):
        return Filter(must=(*narrow, in_source))
    # Sources carry metadata only where a point has several: a point with one takes it from the top level.
    alone = Filter(must=(Condition("count", DOC_IDS, {"lte": 1}), *on_top))
    return Filter(must=(*narrow, Filter(should=(alone, in_source))))
