"""Validation of our small filter language; each backend translates the parsed form.

    {"field": value}                  exact match (str, int or bool)
    {"field": [v1, v2]}               match any (all str or all int)
    {"field": {"gte": x, "lt": y}}    numeric range (gt, gte, lt, lte)

Keys are ANDed; a key may be a dotted path ("metadata.lang"). On array payload
fields Qdrant matches when any element matches, which is what we want.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

RANGE_OPS = frozenset({"gt", "gte", "lt", "lte"})


class Condition(NamedTuple):
    kind: Literal["match", "any", "range"]
    key: str
    value: Any  # scalar, list of scalars, or {op: number}


def _bad(key: object, value: object) -> ValueError:
    return ValueError(
        f"invalid filter {key!r}: {value!r}; expected a str/int/bool, a non-empty list of str "
        f"or of int, or a dict of numeric bounds with keys from {sorted(RANGE_OPS)}"
    )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def parse_filters(filters: dict | None) -> list[Condition]:
    if filters is None:
        return []
    if not isinstance(filters, dict):
        raise ValueError(f"filters must be a dict or None, got {filters!r}")
    conditions = []
    for key, value in filters.items():
        if not isinstance(key, str) or not key or "" in key.split("."):
            raise ValueError(f"invalid filter field name {key!r}")
        if isinstance(value, (str, bool)) or _is_int(value):
            conditions.append(Condition("match", key, value))
        elif isinstance(value, (list, tuple)):
            values = list(value)
            # The engines' match-any takes only all-str or all-int lists.
            if not values or not (all(isinstance(v, str) for v in values) or all(_is_int(v) for v in values)):
                raise _bad(key, value)
            conditions.append(Condition("any", key, values))
        elif isinstance(value, dict):
            if not value or not value.keys() <= RANGE_OPS or not all(_is_number(v) for v in value.values()):
                raise _bad(key, value)
            conditions.append(Condition("range", key, {op: float(v) for op, v in value.items()}))
        else:
            raise _bad(key, value)
    return conditions
