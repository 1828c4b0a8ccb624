"""unstructured's elements -> Markdown-ish text: headings, lists, tables as rows; and the plain-text paragraphs."""

from __future__ import annotations

import re
from typing import Any

from ingest.formats.document import Reading


def render(elements: list[Any]) -> tuple[str, list[tuple[int, int]]]:
    """The text, and where each page starts in it (elements with a page number: PDFs)."""
    blocks: list[str] = []
    starts: list[tuple[int, int]] = []  # (block index, page), a new entry where the page changes
    prev = None
    for el in elements:
        cat = el.category
        text = (el.text or "").strip()
        if cat == "Table":
            block = render_table(el.metadata.text_as_html) or text
        elif not text:
            continue
        elif cat == "Title":
            depth = el.metadata.category_depth or 0  # 0-based: h1/"#" -> 0
            block = "#" * min(depth + 1, 6) + " " + " ".join(text.split())
        elif cat == "ListItem":
            block = "- " + " ".join(text.split())
            if prev == "ListItem":  # keep a list together as one block
                blocks[-1] += "\n" + block
                continue
        elif cat == "CodeSnippet":
            block = "```\n" + el.text.strip("\n") + "\n```"
        else:
            block = text
        if block:
            blocks.append(block)
            prev = cat
            page = getattr(el.metadata, "page_number", None)
            if page and (not starts or starts[-1][1] != page):
                starts.append((len(blocks) - 1, page))
    offsets, at = [], 0
    for b in blocks:
        offsets.append(at)
        at += len(b) + 2
    return "\n\n".join(blocks), [(offsets[i], page) for i, page in starts]


def flowing(elements: list[Any]) -> Reading:
    """A flowing document's elements, rendered; page numbers its writer's layout gave them are not its pages."""
    return Reading(elements, render(elements)[0])


def render_table(html: str | None, header: bool = False) -> str:
    """text_as_html -> Markdown table. Merged cells are spread over the grid (text in the first
    position) so columns line up; spacer rows and columns are dropped; a table left with a single
    row or column (a layout table, e.g. a web page in one cell) becomes plain lines."""
    if not html:
        return ""
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except Exception:
        return ""
    table = next(root.iter("table"), None)
    if table is None:
        return ""
    for br in root.iter("br"):  # text_content() would glue the words around a <br>
        br.tail = " " + (br.tail or "")
    # Rows of the outer table only; a nested table's text stays inside its outer cell.
    trs = [tr for tr in table.iter("tr") if next(tr.iterancestors("table")) is table]
    taken: set[tuple[int, int]] = set()
    grid: list[dict[int, str]] = []
    for r, tr in enumerate(trs):
        row: dict[int, str] = {}
        c = 0
        for cell in tr.xpath("td|th"):
            while (r, c) in taken:
                c += 1
            rowspan = min(_span(cell.get("rowspan")), len(trs) - r)
            colspan = _span(cell.get("colspan"))
            taken.update((r + i, c + j) for i in range(rowspan) for j in range(colspan))
            row[c] = " ".join(cell.text_content().split()).replace("|", "\\|")
            c += colspan
        grid.append(row)
    width = max((c + 1 for _, c in taken), default=0)
    rows = [[row.get(c, "") for c in range(width)] for row in grid]
    rows = [r for r in rows if any(r)]
    keep = [c for c in range(width) if any(r[c] for r in rows)]
    rows = [[r[c] for c in keep] for r in rows]
    if not rows:
        return ""
    if not header and (len(rows) == 1 or len(keep) == 1):  # header: a sheet is a table, however narrow
        return "\n".join(" | ".join(c for c in r if c) for r in rows)
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "---|" * len(keep))
    return "\n".join(lines)


def _span(value: str | None) -> int:
    try:
        return min(max(int(value or 1), 1), 100)  # bounded: colspan="5000" must not blow up
    except ValueError:
        return 1


def join_blocks(blocks: list[tuple[str, int | None]]) -> tuple[str, list[tuple[int, int]]]:
    """Blocks (text, page or None) joined by blank lines; where each page starts."""
    out, starts, at = [], [], 0
    for block, page in blocks:
        if not block.strip():
            continue
        if page is not None and (not starts or starts[-1][1] != page):
            starts.append((at, page))
        out.append(block)
        at += len(block) + 2
    return "\n\n".join(out), starts


def box_paragraphs(text: str, u: Any) -> list[str]:
    """A text box (pdfminer's, or a paragraph OCR read) as paragraphs: a bulleted line starts a new one."""
    paras: list[list[str]] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        if not paras or u.UNICODE_BULLETS_RE.match(line.strip()):
            paras.append([])
        paras[-1].append(line.strip())
    return [" ".join(" ".join(p).split()) for p in paras]


_BLANK_LINES = re.compile(r"\n[ \t\f\v\r]*\n\s*")
_LIST_LINE = re.compile(r"^(?:[-*+\u2022\u2023\u25e6\u2043\u2219]|\d{1,3}[.)])\s+\S")


def plain_text(text: str) -> str:
    """Paragraphs (split at blank lines) with runs of spaces folded and hard-wrapped lines joined; a paragraph
    whose lines are list items keeps one item per line. Nothing is turned into a heading."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    blocks = []
    for para in _BLANK_LINES.split(text):
        lines = [" ".join(line.split()) for line in para.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            continue
        if len(lines) > 1 and sum(bool(_LIST_LINE.match(line)) for line in lines) * 2 >= len(lines):
            blocks.append("\n".join(lines))
        else:
            blocks.append(" ".join(lines))
    return "\n\n".join(blocks)
