"""Validation of our small filter language; each backend translates the parsed form.

A condition's value:

    {"field": value}                  exact match (str, int or bool)
    {"field": [v1, v2]}               match any (all str or all int)
    {"field": {"gte": x, "lt": y}}    numeric range (gt, gte, lt, lte)

A dict of these (keys are payload paths, ANDed) is the stores' own filter form, which the project's internal reads use
(`{"doc_ids": d}`, `{"tenant": t}`); a dotted path reaches into objects ("metadata.lang"), and on array payload fields
Qdrant matches when any element matches, which is what we want. What a dict cannot say is built as a `Filter`: every
condition of `must` holds, and at least one of `should` when it has any; a `Nested` holds when one element of an array
of objects meets its filter (keys relative to the element); a "count" condition bounds how many values a field holds.
Both backends translate the same tree. Request filters, a service's public grammar, are not this: they are checked
against an allow-list and translated into a `Filter` in ingest/filters.py.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, Union

from errors import InvalidInput
from options.filters import RANGE_OPS, bad_value as _bad

from .payload import INT64_MAX, INT64_MIN, is_utf8


class Condition(NamedTuple):
    kind: Literal["match", "any", "range", "count"]
    key: str
    value: Any  # scalar, list of scalars, {op: number} (range) or {op: int} (count of values)


class Nested(NamedTuple):
    key: str           # an array of objects
    filter: "Filter"   # holds on one element of it; its keys are relative to the element


class Filter(NamedTuple):
    must: tuple["Clause", ...] = ()
    should: tuple["Clause", ...] = ()  # at least one holds, when not empty


Clause = Union[Condition, Nested, Filter]
Filters = Union[dict, Filter, None]  # what every store method's `filters` takes


def _is_int(v: object) -> bool:
    # The engines store integers as signed 64 bits: a larger one is refused here, not by the engine mid-request.
    return isinstance(v, int) and not isinstance(v, bool) and INT64_MIN <= v <= INT64_MAX


def _is_str(v: object) -> bool:
    return isinstance(v, str) and is_utf8(v)


def _is_number(v: object) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def condition(key: str, value: object) -> Condition:
    """One `key: value` of the grammar above, checked."""
    if isinstance(value, bool) or _is_int(value) or _is_str(value):
        return Condition("match", key, value)
    if isinstance(value, (list, tuple)):
        values = list(value)
        # The engines' match-any takes only all-str or all-int lists.
        if not values or not (all(_is_str(v) for v in values) or all(_is_int(v) for v in values)):
            raise _bad(key, value)
        return Condition("any", key, values)
    if isinstance(value, dict):
        if not value or not value.keys() <= RANGE_OPS or not all(_is_number(v) for v in value.values()):
            raise _bad(key, value)
        return Condition("range", key, {op: float(v) for op, v in value.items()})
    raise _bad(key, value)


def parse_filters(filters: dict | None) -> list[Condition]:
    if filters is None:
        return []
    if not isinstance(filters, dict):
        raise InvalidInput(f"filters must be a dict or None, got {filters!r}")
    conditions = []
    for key, value in filters.items():
        if not isinstance(key, str) or not key or "" in key.split(".") or not is_utf8(key):
            raise InvalidInput(f"invalid filter field name {key!r}")
        conditions.append(condition(key, value))
    return conditions


def as_filter(filters: Filters) -> Filter | None:
    """What a store method was given, as one tree (None: no condition)."""
    if isinstance(filters, Filter):
        return filters if filters.must or filters.should else None
    conditions = parse_filters(filters)
    return Filter(must=tuple(conditions)) if conditions else None
