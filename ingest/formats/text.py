"""Text formats: plain text, Markdown, HTML and CSV. Uploads reach their readers decoded (`detection.decode`), so
encoding handling is the same for all; text submitted as JSON is sniffed by the same rules."""

from __future__ import annotations

import re
from typing import Any

from ingest.formats.document import ParseError, Reading, Source
from ingest.formats.render import flowing

_HTML_TAG = re.compile(r"<(?:!doctype\s+html|html|head|body)\b")
# ATX heading, code fence, pipe-table delimiter row, [link](target). Bulleted lists alone are
# not enough: plain text uses them too, and partition_text turns them into ListItems anyway.
# A link counts only if its target looks like one (a scheme, a path, an anchor, a file name): chemistry and
# maths put brackets before parentheses too ("[Ca(2+)](i)", "[GHS-R](-/-)"), and 5 of SciFact's abstracts went
# through the Markdown parser for that.
_MARKDOWN = re.compile(
    r"^(?:#{1,6}[ \t]+\S|```|~~~|\|?[ \t]*:?-{3,}:?[ \t]*\|)"
    r"|\[[^\]\n]+\]\((?:[a-zA-Z][\w+.-]*:|[#/]|\.{1,2}/|\w[\w-]*(?:/|\.[a-zA-Z]))[^)\s]*\)", re.M
)
HEADER_CELL_CHARS, HEADER_CELL_WORDS = 64, 8  # a column name, not a sentence


def is_html(text: str, filename: str | None) -> bool:
    head = text[:1024].lstrip("\ufeff \t\r\n").lower()
    return head.startswith("<") and bool(
        _HTML_TAG.search(head) or (filename or "").lower().endswith((".html", ".htm", ".xhtml"))
    )


def is_markdown(text: str, filename: str | None) -> bool:
    return (filename or "").lower().endswith((".md", ".markdown")) or bool(_MARKDOWN.search(text))


def is_csv(text: str, filename: str | None) -> bool:
    """Rows of one delimiter (comma, semicolon, tab) with the same number of cells: a CSV/TSV. A file named .csv/.tsv
    needs two rows of two cells. Unnamed text needs a header and two rows of three cells, and a header of names (no
    cell longer than HEADER_CELL_CHARS or HEADER_CELL_WORDS words): prose rarely has the same count of commas on
    every line, but a title and an abstract with two commas each do (6 of SciFact's 5,183 documents were tables)."""
    import csv

    lines = [line for line in text.splitlines()[:50] if line.strip()]
    named = (filename or "").lower().endswith((".csv", ".tsv"))
    if len(lines) < (2 if named else 3):
        return False
    for delimiter in (",", ";", "\t"):
        try:
            rows = list(csv.reader(lines, delimiter=delimiter))
        except csv.Error:
            continue
        widths = {len(row) for row in rows}
        if len(widths) != 1 or widths.pop() < (2 if named else 3):
            continue
        if named or all(len(c.strip()) <= HEADER_CELL_CHARS and len(c.split()) <= HEADER_CELL_WORDS for c in rows[0]):
            return True
    return False


def any_text(text: str, filename: str | None) -> bool:
    return True


# languages=[""] skips langdetect (0.5 s to load, then per document): its metadata is unused.
def read_txt(src: Source, u: Any) -> Reading:
    return flowing(u.partition_text(text=src.text, languages=[""]))


def read_md(src: Source, u: Any) -> Reading:
    return flowing(u.partition_md(text=src.text, languages=[""]))


def read_html(src: Source, u: Any) -> Reading:
    return flowing(u.partition_html(text=src.text, languages=[""]))


def read_csv(src: Source, u: Any) -> Reading:
    import csv

    text = src.text
    rows = list(csv.reader(text.splitlines(), dialect=csv.Sniffer().sniff(text[:4096], delimiters=",;\t")))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ParseError("no rows found in CSV")
    width = max(map(len, rows))
    cells = [[" ".join(c.split()).replace("|", "\\|") for c in r] + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "---|" * width)
    return Reading([], "\n".join(lines), metadata={"rows": len(rows) - 1})
