"""What a point's payload can hold: the values both engines store as they are.

Qdrant payloads are JSON with 64-bit integers and finite doubles, and its keys and strings are UTF-8. Python holds
more: NaN and infinities (qdrant-edge refuses them: "failed to convert NaN into payload number type"), integers past
64 bits (qdrant-edge takes 2**70 but a server's JSON reader would not, and neither backend can compare it exactly),
strings with lone surrogates (refused by both, as a TypeError or a UnicodeEncodeError that names no field). A build
checks each document's payload fields with `payload_problem` before it writes a point, so one document's bad value
fails that document alone, named, instead of every build of its tenant.
"""

from __future__ import annotations

import math

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 64  # nesting a payload value may have: far beyond any metadata, far below the recursion limit


def payload_problem(value: object, path: str = "payload", depth: int = 0) -> str | None:
    """Why `value` cannot be stored in a payload, naming where (`path.key[0]`), or None when it can."""
    if depth > MAX_DEPTH:
        return f"{path} is nested deeper than {MAX_DEPTH} levels"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else f"{path} is an integer outside 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}, not a finite number"
    if isinstance(value, str):
        return _text_problem(value, path)
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if problem := payload_problem(v, f"{path}[{i}]", depth + 1):
                return problem
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path} has a key that is not a string: {k!r}"
            if problem := _text_problem(k, f"{path} key {k[:40]!r}") or payload_problem(v, f"{path}.{k}", depth + 1):
                return problem
        return None
    return f"{path} is a {type(value).__name__}, not a JSON value"


def is_utf8(text: str) -> bool:
    """Whether the engines can take `text`: their strings are UTF-8, which no lone surrogate encodes to."""
    return _text_problem(text, "") is None


def _text_problem(text: str, path: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"{path} holds a lone surrogate (\\u{ord(text[e.start]):04x}) at {e.start}: not UTF-8 text"
    return None
