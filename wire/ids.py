"""What a document id may be (ingest/ids.py makes names into ids: a mail attachment's `<mail id>/<name>`).

An id is 1 to MAX_ID_CHARS characters, not blank (white space only), with no control character (Unicode category
Cc: NUL, CR, LF, TAB, DEL, the C1 controls ...) and no lone surrogate (not Unicode text: no database, payload or URL
can carry one). Anything else is allowed, `/`, `%`, `?`, `#`, spaces and any script included: every route reaches
such an id once it is percent-encoded in the URL (README, "Document ids").
"""

from __future__ import annotations

import re
import unicodedata

MAX_ID_CHARS = 512
# Unicode category Cc (C0, DEL, C1), then the surrogate code points, which Python strings can hold unpaired.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
UNFIT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


_CONTROL_NAMES = {"\x00": "NUL", "\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\x1b": "ESCAPE",
                  "\x7f": "DELETE"}


def describe(ch: str) -> str:
    """A character as an error message names it: U+000A (LINE FEED), U+D800 (lone surrogate)."""
    if 0xD800 <= ord(ch) <= 0xDFFF:
        name = "lone surrogate"
    else:
        name = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "") or "control character"
    return f"U+{ord(ch):04X} ({name})"


def id_problem(doc_id: str) -> str | None:
    """Why `doc_id` is not a document id, or None when it is one."""
    if not doc_id.strip():
        return "is blank (white space only)" if doc_id else "is empty"
    if len(doc_id) > MAX_ID_CHARS:
        return f"is {len(doc_id)} characters; at most {MAX_ID_CHARS}"
    if found := UNFIT.search(doc_id):
        return f"holds {describe(found.group())} at position {found.start()}: ids hold no control characters"
    return None


def check_id(doc_id: str) -> str:
    if (problem := id_problem(doc_id)) is not None:
        raise ValueError(f"document id {problem}")
    return doc_id
