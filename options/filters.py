"""The grammar of a `/retrieve` request's `filters`, as types: what the OpenAPI document shows and the edge checks.

    {"doc_id": "handbook"}                the document's id; a list of ids: any of them
    {"title": "Employee handbook"}        its title (a str, or a list of str)
    {"source": "handbook.pdf"}            where it came from: the file name or URL it was ingested as
    {"metadata.<field>": value}           one field of its metadata: a str, int or bool; a non-empty list of str or
                                          of int (any of them); or numeric bounds {"gte": .., "gt": .., "lte": ..,
                                          "lt": ..}

Every other key is refused, naming the key and the allowed ones. The request schema's `filters` is `RequestFilters`,
so a bad filter is a 422 before the request reaches a route, with the messages below (api/main.py answers an
InvalidInput raised while a body is parsed as a route's would be). How a filter reads a snapshot's payload is
ingest/filters.py's; the stores keep their own check of what they are given (store/filters.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Field, Strict, StrictBool, StrictInt, StrictStr, TypeAdapter, ValidationError, WithJsonSchema
from pydantic_core import core_schema

from errors import InvalidInput

DOCUMENT_FIELDS = ("doc_id", "title", "source")  # a document's own fields
METADATA = "metadata."
# One metadata field, named as the engines' payload paths name a key without quoting (metadata is flat: a field
# holds a value or a list of values, never an object).
FIELD = r"[\w-]{1,128}"
ALLOWED = ", ".join([*DOCUMENT_FIELDS, f"{METADATA}<field>"])
RangeOp = Literal["gt", "gte", "lt", "lte"]
RANGE_OPS = frozenset(RangeOp.__args__)
# The engines store integers as signed 64 bits: a larger one is refused here, not by the engine mid-request.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Shown as OpenAPI's int64: pydantic would write the bounds as floats, 2**63 rounded into range.
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX), WithJsonSchema({"type": "integer", "format": "int64"})]
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
NonEmpty = Field(min_length=1)
DocumentValue = Union[StrictStr, Annotated[list[StrictStr], NonEmpty]]
Bounds = Annotated[dict[RangeOp, Union[Int64, Finite]], NonEmpty]
MetadataValue = Union[StrictBool, Int64, StrictStr, Annotated[list[StrictStr], NonEmpty],
                      Annotated[list[Int64], NonEmpty], Bounds]
_DOCUMENT, _METADATA = TypeAdapter(DocumentValue), TypeAdapter(MetadataValue)
_FIELD = re.compile(FIELD)


def bad_value(key: object, value: object) -> InvalidInput:
    return InvalidInput(
        f"invalid filter {key!r}: {value!r}; expected a str/int/bool, a non-empty list of str "
        f"or of int, or a dict of numeric bounds with keys from {sorted(RANGE_OPS)}"
    )


def _holds(adapter: TypeAdapter, value: object) -> bool:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def check_filters(filters: dict | None) -> dict | None:
    """`filters` as they came, once every key and value is in the grammar; else InvalidInput naming the first bad
    key (in key order) and what it takes."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise InvalidInput(f"filters must be a JSON object of field: value, got {type(filters).__name__}")
    for key, value in sorted(filters.items(), key=lambda kv: str(kv[0])):
        if not isinstance(key, str):
            raise InvalidInput(f"filter key {key!r} is not a string")
        field = key.removeprefix(METADATA)
        if key in DOCUMENT_FIELDS:
            if not _holds(_DOCUMENT, value):
                raise InvalidInput(f"filter {key!r} takes a string or a non-empty list of strings, got {value!r}")
        elif field == key or not _FIELD.fullmatch(field):
            raise InvalidInput(f"filter key {key[:200]!r} is not a filterable field; filter on {ALLOWED} (a metadata "
                               "field named by 1-128 letters, digits, '_' or '-')")
        elif not _holds(_METADATA, value):
            raise bad_value(key, value)
    return filters


def _schema() -> dict[str, Any]:
    document, metadata = _DOCUMENT.json_schema(), _METADATA.json_schema()
    return {"type": "object", "title": "RequestFilters",
            "description": "keys ANDed, all holding on one document the caller may read",
            "properties": {f: document for f in DOCUMENT_FIELDS},
            "patternProperties": {f"^{re.escape(METADATA)}{FIELD}$": metadata},
            "additionalProperties": False}


class RequestFilters:
    """The request's `filters`, as a field's type: a JSON object checked by check_filters (its messages), shown in
    the OpenAPI document as the grammar, one component (RequestFilters) every request that filters refers to. The
    value stays the dict that was sent."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(check_filters, core_schema.dict_schema(),
                                                            ref="RequestFilters")

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return _schema()
