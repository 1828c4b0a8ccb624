"""Mail (eml through the email package, msg through python-oxmsg): its body is the text, subject/from/to/date are
extracted metadata, and each attachment is handed back to be ingested as a document of its own."""

from __future__ import annotations

import io
import re
from typing import Any

from ingest.formats.document import ParseError, Reading, Source
from ingest.formats.render import plain_text, render

MAX_ATTACHMENTS = 50  # per mail: past that the rest are listed in the mail's metadata, not ingested
# RFC 5322 headers a mail starts with; two of them on the first lines (before a blank one) make a text a mail.
_MAIL_HEADERS = ("from", "to", "subject", "date", "message-id", "mime-version", "received", "return-path",
                 "content-type", "cc", "reply-to", "delivered-to")
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]")


def is_mail(text: str) -> bool:
    names = set()
    for line in text.lstrip("\ufeff").splitlines()[:60]:
        if not line.strip():
            break
        if line[:1] in " \t":  # a folded header continues
            continue
        m = _HEADER_LINE.match(line)
        if not m:
            return False
        names.add(m.group(1).lower())
    return len(names & set(_MAIL_HEADERS)) >= 2 and bool(names & {"from", "subject", "message-id"})


def read_eml(src: Source, u: Any) -> Reading:
    import email
    import email.policy
    import email.utils

    msg = email.message_from_bytes(src.data, policy=email.policy.default)
    if msg.defects and not msg.get_payload():
        raise ParseError(f"could not parse e-mail: {msg.defects[0]}")
    body = msg.get_body(preferencelist=("plain", "html"))
    content = body.get_content() if body is not None else ""
    elements: list[Any] = []
    if body is not None and body.get_content_type() == "text/html":
        elements = u.partition_html(text=content, languages=[""])
        text, _ = render(elements)
    else:  # a plain body keeps its paragraphs: no heading guessed from a one-line signature
        text = plain_text(content)
    addresses = lambda h: [a for _, a in email.utils.getaddresses(msg.get_all(h, []))] or None  # noqa: E731
    date = None
    if msg["date"]:
        try:
            date = email.utils.parsedate_to_datetime(str(msg["date"])).isoformat()
        except (TypeError, ValueError):
            date = str(msg["date"])
    headers = (" ".join(str(msg["subject"] or "").split()) or None, (addresses("from") or [None])[0],
               addresses("to"), date)
    attachments: list[tuple[str, bytes]] = []
    for part in msg.iter_attachments():
        if part.get_content_type() == "message/rfc822":  # a forwarded mail: ingested as a mail of its own
            inner = part.get_payload()
            payload = bytes(inner[0]) if isinstance(inner, list) and inner else None
            name = part.get_filename() or f"forwarded-{len(attachments) + 1}.eml"
            if payload:
                attachments.append((name, payload))
            continue
        payload = part.get_payload(decode=True)
        if payload:
            attachments.append((part.get_filename() or f"attachment-{len(attachments) + 1}", payload))
    return _mail(elements, text, *headers, attachments)


def read_msg(src: Source, u: Any) -> Reading:
    import email.utils

    from oxmsg import Message

    msg = Message.load(io.BytesIO(src.data))
    elements: list[Any] = []
    if (msg.body or "").strip():  # a plain body keeps its paragraphs, as in an eml
        text = plain_text(msg.body)
    else:  # HTML only (or nothing): unstructured's partitioner renders it
        elements = u.partition_msg(file=io.BytesIO(src.data), process_attachments=False, languages=[""])
        text, _ = render(elements)
    date = msg.sent_date.isoformat() if msg.sent_date else None
    sender = email.utils.parseaddr(msg.sender)[1] or msg.sender if msg.sender else None
    headers = (" ".join((msg.subject or "").split()) or None, sender,
               [r.email_address for r in msg.recipients if r.email_address] or None, date)
    attachments = [(att.file_name or f"attachment-{n}", att.file_bytes)
                   for n, att in enumerate((a for a in msg.attachments if a.file_bytes), start=1)]
    return _mail(elements, text, *headers, attachments)


def _mail(elements: list[Any], text: str, subject, sender, to, date, attachments: list[tuple[str, bytes]]
          ) -> Reading:
    """The Reading of a mail: its headers as metadata, at most MAX_ATTACHMENTS attachments (all of them listed)."""
    meta = {key: value for key, value in (("subject", subject), ("from", sender), ("to", to), ("date", date))
            if value}
    if attachments:
        meta["attachments"] = [name for name, _ in attachments]
    if not text.strip() and attachments:  # a mail that is only its attachments: its headers are its text
        text = subject or "(no text)"
    return Reading(elements, text, title=subject, metadata=meta, attachments=attachments[:MAX_ATTACHMENTS])
