"""What a document id may be, and what makes a name into one (a mail attachment's `<mail id>/<file name>`).

An id is 1 to MAX_ID_CHARS characters, not blank (white space only), with no control character (Unicode category
Cc: NUL, CR, LF, TAB, DEL, the C1 controls ...) and no lone surrogate (not Unicode text: no database, payload or URL
can carry one). Anything else is allowed, `/`, `%`, `?`, `#`, spaces and any script included: every route reaches
such an id once it is percent-encoded in the URL (README, "Document ids").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

MAX_ID_CHARS = 512
# Unicode category Cc (C0, DEL, C1), then the surrogate code points, which Python strings can hold unpaired.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNFIT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
ATTACHMENT_NAME_MIN = 32  # characters an attachment keeps of its name when its mail's id is long


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
    if found := _UNFIT.search(doc_id):
        return f"holds {describe(found.group())} at position {found.start()}: ids hold no control characters"
    return None


def check_id(doc_id: str) -> str:
    if (problem := id_problem(doc_id)) is not None:
        raise ValueError(f"document id {problem}")
    return doc_id


def clean_name(name: str, fallback: str) -> str:
    """A name with what an id may not hold taken out (control characters become a space, lone surrogates go) and
    its white space trimmed; `fallback` when nothing is left."""
    cleaned = _UNFIT.sub(lambda m: " " if CONTROL.match(m.group()) else "", name).strip()
    return cleaned or fallback


def _fit(name: str, room: int) -> str:
    """`name` in at most `room` characters, its extension kept when it has a short one."""
    if len(name) <= room:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) < 16 and room > len(ext) + 1:
        return stem[:room - len(ext) - 1].rstrip() + "." + ext
    return name[:room].rstrip()


def attachment_ids(mail_id: str, names: Iterable[str]) -> list[str]:
    """The ids of a mail's attachments, in order: `<mail id>/<name>`, each name cleaned (`clean_name`), cut so the
    id fits MAX_ID_CHARS, and a repeated one numbered (`<mail id>/2-<name>`). Every one is a valid id when
    `mail_id` is; a mail id too long to leave ATTACHMENT_NAME_MIN characters is cut short too."""
    out: list[str] = []
    taken: set[str] = set()
    for i, raw in enumerate(names, 1):
        name = clean_name(raw, f"attachment-{i}")
        n = 1
        while True:
            label = name if n == 1 else f"{n}-{name}"
            room = MAX_ID_CHARS - len(mail_id) - 1
            prefix = mail_id if room >= ATTACHMENT_NAME_MIN else mail_id[:MAX_ID_CHARS - ATTACHMENT_NAME_MIN - 1]
            doc_id = f"{prefix}/{_fit(label, MAX_ID_CHARS - len(prefix) - 1)}"
            if doc_id not in taken:
                break
            n += 1
        taken.add(doc_id)
        out.append(doc_id)
    return out
