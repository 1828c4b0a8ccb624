"""What makes a name into a document id: a mail attachment's `<mail id>/<file name>`. What an id may be is
wire/ids.py (the client checks ids with it too)."""

from __future__ import annotations

from typing import Iterable

from wire.ids import CONTROL, MAX_ID_CHARS, UNFIT

ATTACHMENT_NAME_MIN = 32  # characters an attachment keeps of its name when its mail's id is long


def clean_name(name: str, fallback: str) -> str:
    """A name with what an id may not hold taken out (control characters become a space, lone surrogates go) and
    its white space trimmed; `fallback` when nothing is left."""
    cleaned = UNFIT.sub(lambda m: " " if CONTROL.match(m.group()) else "", name).strip()
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
