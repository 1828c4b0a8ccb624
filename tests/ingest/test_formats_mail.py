"""ingest.formats.mail: a mail's text is stored whole, so a NUL its body decodes to becomes a space. (Headers,
attachments, forwarded and HTML mail: tests/unit/test_languages_tables_twins.py and tests/test_formats_http.py.)"""

from __future__ import annotations

import base64

from ingest.formats import parse_bytes


def test_a_nul_a_file_decodes_to_is_a_space_in_its_text():
    """PostgreSQL's text columns take no NUL: a mail body in base64 may decode to one (so may a PDF's glyphs)."""
    body = base64.b64encode(b"Hello team,\n\nthe offsite is on\x00 Friday in Lisbon.\n").decode()
    mail = ("From: a@example.com\nTo: b@example.com\nSubject: Offsite\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" + body + "\n")
    doc = parse_bytes(mail.encode(), "offsite.eml")
    assert doc.text == "Hello team,\n\nthe offsite is on  Friday in Lisbon."
