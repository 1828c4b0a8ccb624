"""reStructuredText (Sphinx flavour, as in CPython's Doc/) to plain text, split into headings and paragraphs.

Standard library only, so that it runs under Debian's own /usr/bin/python3.11 (no docutils there, and docutils
would refuse Sphinx's roles and directives anyway). It is not a general rst parser: it covers the constructs the
Python 3.11 documentation uses and renders them as Sphinx shows them in HTML, as plain text:

- roles: :func:`json.dumps` -> json.dumps(), :class:`~a.B` -> B, :ref:`x` -> the referenced section's title,
  :pep:`8` -> PEP 8; ``literals``, *emphasis*, links, substitutions, footnote references reduced to their text;
- directives: object descriptions (function, class, method, ...) -> their signature line, with the qualified
  names they document recorded for the docstring set; note/warning/seealso/versionchanged/availability/... ->
  their label and body ("Changed in version 3.2: ..."); index/toctree/authors/... dropped;
- code is DROPPED everywhere: literal blocks (after ``::``), doctest blocks (``>>>``), code-block, doctest,
  testcode, testoutput, productionlist, literalinclude; a paragraph's trailing ``::`` becomes ``:`` as in HTML;
- tables (grid, simple, list-table) -> one paragraph, a line per row, cells joined by "; ";
- lists -> one paragraph, a line per item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

RELEASE = "3.11.2"  # what |release| expands to; checked against the package's own conf in make_pydocs
VERSION = "3.11"


@dataclass
class Heading:
    level: int
    title: str


@dataclass
class Para:
    text: str
    objects: list[tuple[str, str]] = field(default_factory=list)  # (directive, qualified name) described here


# --- inline markup -----------------------------------------------------------------------------------------

_ADORN = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")
_LITERAL = re.compile(r"``(?=\S)(.+?)(?<=\S)``(?!`)")
_ROLE = re.compile(r":(?P<role>[A-Za-z0-9][\w:+.-]*):`(?P<content>(?:[^`\\]|\\.)+?)`(?!`)")
_SUFFIX_ROLE = re.compile(r"`(?P<content>[^`]+)`:(?P<role>[A-Za-z][\w:+.-]*):")
_INLINE_TARGET = re.compile(r"_`([^`]+)`")
_LINK = re.compile(r"`(?P<content>[^`]*?)`__?(?!\w)")
_DEFAULT_ROLE = re.compile(r"`(?P<content>[^`]+)`")
_FOOTREF = re.compile(r"\s?\[(?:#[\w-]*|\d+|\*|[A-Za-z][\w.-]*)\]_(?!\w)")
_SUBST = re.compile(r"\|(?P<name>[^|\s](?:[^|]*[^|\s])?)\|(?:__?)?")
_STRONG = re.compile(r"(?<![\w*\\])\*\*(?=\S)(.+?)(?<=[^\s\\])\*\*(?![\w*])")
_EMPH = re.compile(r"(?<![\w*\\])\*(?=[^\s*])(.+?)(?<=[^\s*\\])\*(?![\w*])")
_EXPLICIT_TITLE = re.compile(r"^(?P<title>.*?)\s*(?<!\\)<(?P<target>[^<>]*)>$", re.S)
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")

_XREF_PY = {"func", "meth", "class", "mod", "exc", "attr", "data", "const", "obj"}
_PARENS = {"func", "meth", "c:func", "c:macro"}
_XREF_OTHER = {"keyword", "term", "ref", "doc", "option", "envvar", "token", "pdbcmd", "opcode"}


def unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: "" if m.group(1).isspace() else m.group(1), s)


class Inline:
    """Renders one paragraph's inline markup. `labels` maps :ref: labels to section titles, `doc_titles` maps
    page paths (library/json) to page titles; `subs` are the page's substitution definitions."""

    def __init__(self, labels: dict[str, str], doc_titles: dict[str, str]):
        self.labels = labels
        self.doc_titles = doc_titles

    def role(self, role: str, content: str, page: str) -> str:
        role = role.lower()
        if role.startswith("py:"):
            role = role[3:]
        m = _EXPLICIT_TITLE.match(content)
        explicit = m is not None and m.group("title") != "" and role not in ("abbr",)
        if explicit:
            return unescape(m.group("title"))
        if content.startswith("!") and (role in _XREF_OTHER or role in _XREF_PY or role.startswith("c:")):
            content = content[1:]  # "!" only turns the link off
        if m and role not in ("abbr",):
            content = m.group("target")
        if role == "ref":
            label = content.strip().lower()
            return self.labels.get(label, label.replace("-", " ").replace("_", " "))
        if role == "doc":
            target = content.strip()
            path = target.lstrip("/") if target.startswith("/") else str(Path(page).parent / target)
            path = re.sub(r"[^/]+/\.\./", "", path)
            return self.doc_titles.get(path, target.rsplit("/", 1)[-1].replace("-", " "))
        if role in _XREF_PY or role.startswith("c:"):
            title = content.strip()
            if title.startswith("!"):
                title = title[1:]
            title = title.lstrip(".")
            if title.startswith("~"):
                title = title[1:].rsplit(".", 1)[-1]
            title = unescape(title)
            if role in _PARENS and not title.endswith(")"):
                title += "()"
            return title
        if role == "pep":
            return "PEP " + content.strip()
        if role == "rfc":
            return "RFC " + content.strip()
        if role == "issue":
            return "bpo-" + content.strip()
        if role == "gh":
            return "gh-" + content.strip()
        if role == "samp":
            return unescape(re.sub(r"(?<!\\)[{}]", "", content))
        if role == "menuselection":
            return unescape(content).replace("-->", ">")
        if role == "guilabel":
            return unescape(content).replace("&", "")
        return unescape(content)

    def render(self, text: str, page: str, subs: dict[str, str], targets: set[str], depth: int = 0) -> str:
        kept: list[str] = []

        def keep(s: str) -> str:
            kept.append(s)
            return f"\x00{len(kept) - 1}\x00"

        text = _LITERAL.sub(lambda m: keep(m.group(1)), text)
        text = _ROLE.sub(lambda m: keep(self.role(m.group("role"), m.group("content"), page)), text)
        text = _SUFFIX_ROLE.sub(lambda m: keep(self.role(m.group("role"), m.group("content"), page)), text)
        text = _INLINE_TARGET.sub(lambda m: keep(unescape(m.group(1))), text)

        def link(m: re.Match) -> str:
            content = m.group("content")
            e = _EXPLICIT_TITLE.match(content)
            if e:
                content = e.group("title") or e.group("target")
            return keep(unescape(content))

        text = _LINK.sub(link, text)
        text = _DEFAULT_ROLE.sub(lambda m: keep(unescape(m.group("content"))), text)
        text = _FOOTREF.sub("", text)

        def subst(m: re.Match) -> str:
            name = m.group("name")
            if name == "version":
                return keep(VERSION)
            if name == "release":
                return keep(RELEASE)
            if name == "today":
                return ""
            if name in subs and depth < 3:
                return keep(self.render(subs[name], page, subs, targets, depth + 1))
            return m.group(0)

        text = _SUBST.sub(subst, text)
        if targets:
            text = re.sub(r"\b([A-Za-z][\w-]*)__?(?=[\s.,;:!?)\]]|$)",
                          lambda m: m.group(1) if m.group(1).lower() in targets else m.group(0), text)
        text = _STRONG.sub(r"\1", text)
        text = _EMPH.sub(r"\1", text)
        text = unescape(text)
        # Sphinx's smartquotes: --- is an em dash, -- between numbers an en dash (20--30 lines)
        text = text.replace(" --- ", " \u2014 ").replace("---", "\u2014")
        text = re.sub(r"(?<=\d)--(?=\d)", "\u2013", text)
        for _ in range(3):  # placeholders can nest (a substitution whose text had a literal)
            text = _PLACEHOLDER.sub(lambda m: kept[int(m.group(1))], text)
        return text


# --- block structure ---------------------------------------------------------------------------------------

def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def dedent(lines: list[str]) -> list[str]:
    ind = min((indent_of(l) for l in lines if l.strip()), default=0)
    return [l[ind:] if l.strip() else "" for l in lines]


def block_end(lines: list[str], i: int, min_indent: int) -> int:
    """First line at or after i that is not blank and is indented less than min_indent (or len(lines))."""
    n = len(lines)
    while i < n and (not lines[i].strip() or indent_of(lines[i]) >= min_indent):
        i += 1
    return i


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_BULLET = re.compile(r"^([*+\-\u2022])( +)\S")
_ENUM = re.compile(r"^(\d+[.)]|#\.|\(\d+\)|[a-z]\)|\([a-z]\))( +)\S")
_FIELD = re.compile(r"^:(?P<name>[^:`][^:]*?):(?:\s+(?P<body>.*))?$")
_DIRECTIVE = re.compile(r"^\.\. +(?P<name>[\w:.-]+)::(?:\s+(?P<args>.*))?$")
_SUBST_DEF = re.compile(r"^\.\. +\|(?P<name>[^|]+)\| +(?P<kind>[\w-]+)::\s*(?P<text>.*)$")
_TARGET = re.compile(r"^\.\. +_(?P<name>`[^`]+`|[^:]+):\s*(?P<uri>.*)$")
_FOOTNOTE = re.compile(r"^\.\. +\[(?P<name>[^\]]+)\]\s*(?P<text>.*)$")
_GRID_BORDER = re.compile(r"^\+([-=]+\+)+\s*$")
_SIMPLE_BORDER = re.compile(r"^=+( +=+)+\s*$|^=+\s*$")

SIGNATURE_DIRECTIVES = {
    "function": "", "method": "", "class": "class ", "exception": "exception ", "attribute": "", "data": "",
    "decorator": "@", "decoratormethod": "@", "classmethod": "classmethod ", "staticmethod": "static ",
    "abstractmethod": "abstractmethod ", "coroutinefunction": "coroutine ", "coroutinemethod": "coroutine ",
    "awaitablefunction": "awaitable ", "awaitablemethod": "awaitable ", "opcode": "", "cmdoption": "",
    "option": "", "describe": "", "object": "", "pdbcommand": "", "envvar": "", "2to3fixer": "",
}
CLASS_LIKE = {"class", "exception"}
MODULE_LEVEL_PREFIXED = {"function", "class", "exception", "data", "decorator", "coroutinefunction",
                         "awaitablefunction"}
ADMONITIONS = {"note": "Note", "warning": "Warning", "important": "Important", "caution": "Caution",
               "seealso": "See also", "impl-detail": "CPython implementation detail", "tip": "Tip",
               "hint": "Hint", "attention": "Attention", "danger": "Danger", "error": "Error"}
DROPPED = {"index", "toctree", "sectionauthor", "moduleauthor", "tabularcolumns", "highlight", "contents",
           "testsetup", "testcleanup", "literalinclude", "image", "figure", "audit-event-table", "program",
           "code-block", "sourcecode", "code", "doctest", "testcode", "testoutput", "productionlist", "raw",
           "default-role", "role", "cssclass", "csv-table"}  # code, index entries, navigation, authors


class PageParser:
    """One page's text as a list of Heading and Para. `include` returns the lines of an included file or None."""

    def __init__(self, page: str, text: str, inline: Inline, include: Callable[[str, str], list[str] | None]):
        self.page = page
        self.inline = inline
        self.include = include
        self.lines = [l.expandtabs(8).rstrip() for l in text.splitlines()]
        self.styles: list[tuple[str, bool]] = []
        self.module: str | None = None
        self.subs: dict[str, str] = {}
        self.targets: set[str] = set()
        self.unknown: set[str] = set()
        self.missing_includes: list[str] = []
        for line in self.lines:
            m = _SUBST_DEF.match(line.strip())
            if m and m.group("kind") == "replace":
                self.subs[m.group("name")] = m.group("text")
            elif m and m.group("kind") == "unicode":  # e.g. |nbsp|: character codes
                self.subs[m.group("name")] = "".join(
                    chr(int(c[2:] if c.lower().startswith("0x") else c, 16)) for c in m.group("text").split())
            t = _TARGET.match(line.strip())
            if t and t.group("uri"):
                self.targets.add(t.group("name").strip("`").lower())

    def parse_page(self) -> list:
        out: list = []
        self.parse(self.lines, out, cls=None, top=True)
        return out

    # paragraph text through inline markup
    def text(self, raw: str) -> str:
        return collapse(self.inline.render(collapse(raw), self.page, self.subs, self.targets))

    def heading_level(self, ch: str, over: bool) -> int:
        style = (ch, over)
        if style not in self.styles:
            self.styles.append(style)
        return self.styles.index(style) + 1

    def flatten(self, lines: list[str], cls: str | None) -> str:
        """A block's content as one line of text (list items, table cells)."""
        sub: list = []
        self.parse(lines, sub, cls)
        return collapse(" ".join(p.text for p in sub if isinstance(p, Para) and p.text))

    def parse(self, lines: list[str], out: list, cls: str | None, top: bool = False) -> None:
        n = len(lines)
        i = 0
        skip_literal = False
        while i < n:
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            ind = indent_of(line)
            if ind > 0:
                j = block_end(lines, i, 1)
                if not skip_literal:  # a block quote: its content as text
                    self.parse(dedent(lines[i:j]), out, cls)
                skip_literal = False
                i = j
                continue
            skip_literal = False
            nxt = lines[i + 1] if i + 1 < n else ""
            # section title with overline
            if _ADORN.match(line) and i + 2 < n and lines[i + 1].strip() and _ADORN.match(lines[i + 2]) \
                    and lines[i + 2][0] == line[0]:
                if top:
                    out.append(Heading(self.heading_level(line[0], True), self.text(lines[i + 1])))
                i += 3
                continue
            if _ADORN.match(nxt) and not line.startswith(".. ") and not _ADORN.match(line) \
                    and len(nxt.strip()) >= min(len(line.strip()), 4):
                if top:
                    out.append(Heading(self.heading_level(nxt[0], False), self.text(line)))
                i += 2
                continue
            if _ADORN.match(line):  # transition
                i += 1
                continue
            if line.startswith("..") and (line == ".." or line.startswith(".. ")):
                j = block_end(lines, i + 1, 1)
                self.explicit(lines[i:j], out, cls)
                i = j
                continue
            if _GRID_BORDER.match(line):
                j = i
                while j < n and lines[j].strip() and lines[j].lstrip()[0] in "+|":
                    j += 1
                out.append(Para(self.grid_table(lines[i:j], cls)))
                i = j
                continue
            if _SIMPLE_BORDER.match(line) and " " in line.strip():
                j = self.simple_table_end(lines, i)
                out.append(Para(self.simple_table(lines[i:j])))
                i = j
                continue
            if _BULLET.match(line) or _ENUM.match(line):
                items, i = self.list_items(lines, i)
                texts = [self.flatten(item, cls) for item in items]
                out.append(Para("\n".join(t for t in texts if t)))
                continue
            m = _FIELD.match(line)
            if m:
                j = block_end(lines, i + 1, 1)
                body = self.flatten([m.group("body") or ""] + dedent(lines[i + 1:j]), cls)
                out.append(Para(f"{self.text(m.group('name'))}: {body}".strip()))
                i = j
                continue
            if line.startswith(">>>"):  # doctest block: code, dropped
                while i < n and lines[i].strip():
                    i += 1
                continue
            if line == "|" or line.startswith("| "):  # line block
                rows = []
                while i < n and (lines[i] == "|" or lines[i].startswith("| ") or
                                 (lines[i].strip() and indent_of(lines[i]) > 0 and rows)):
                    if lines[i].startswith("|"):
                        rows.append(lines[i][2:])
                    else:
                        rows[-1] += " " + lines[i].strip()
                    i += 1
                rendered = [self.text(r) for r in rows]
                out.append(Para("\n".join(r for r in rendered if r)))
                continue
            # paragraph: lines at this indent up to a blank line
            j = i
            while j < n and lines[j].strip() and indent_of(lines[j]) == 0 and not (
                    j > i and (lines[j].startswith(".. ") or _ADORN.match(lines[j]))):
                j += 1
            if j < n and lines[j].strip() and indent_of(lines[j]) > 0 and j == i + 1:
                # definition list item: a term, then its indented definition
                k = block_end(lines, j, 1)
                out.append(Para(self.text(line)))
                self.parse(dedent(lines[j:k]), out, cls)
                i = k
                continue
            raw = " ".join(lines[i:j])
            if raw.rstrip().endswith("::"):
                skip_literal = True
                raw = raw.rstrip()
                raw = raw[:-2].rstrip() if (raw == "::" or raw[-3].isspace()) else raw[:-1]
            if raw.strip():
                t = self.text(raw)
                if t:
                    out.append(Para(t))
            i = j

    def list_items(self, lines: list[str], i: int) -> tuple[list[list[str]], int]:
        n = len(lines)
        items = []
        first = _BULLET.match(lines[i]) or _ENUM.match(lines[i])
        bullet_kind = _BULLET if _BULLET.match(lines[i]) else _ENUM
        while i < n:
            m = bullet_kind.match(lines[i])
            if not m:
                break
            col = len(m.group(1)) + len(m.group(2))
            j = block_end(lines, i + 1, col if col > 0 else 1)
            # a continuation line indented less than the content column still belongs to the item
            while j < n and lines[j].strip() and indent_of(lines[j]) > 0:
                j = block_end(lines, j + 1, 1)
            item = [lines[i][col:]] + [l[col:] if indent_of(l) >= col else l.lstrip() for l in lines[i + 1:j]]
            items.append(item)
            i = j
            while i < n and not lines[i].strip():
                i += 1
            if i < n and bullet_kind is _BULLET and lines[i][:1] != first.group(1)[:1]:
                break
        return items, i

    def grid_table(self, lines: list[str], cls: str | None) -> str:
        # column boundaries: every '+' of every border line (the top border may span all columns)
        bounds = sorted({k for line in lines if line.startswith("+") for k, c in enumerate(line) if c == "+"})
        rows: list[str] = []
        cells: dict[int, list[str]] = {}

        def flush() -> None:
            texts = [self.flatten(dedent(cells[k]), cls) for k in sorted(cells)]
            row = "; ".join(t for t in texts if t)
            if row:
                rows.append(row)
            cells.clear()

        for line in lines[1:]:
            if line.startswith("+"):
                flush()
                continue
            cuts = [k for k in bounds if k < len(line) and line[k] == "|"]
            for a, b in zip(cuts, cuts[1:]):
                cells.setdefault(a, []).append(line[a + 1:b])
        flush()
        return "\n".join(rows)

    @staticmethod
    def simple_table_end(lines: list[str], i: int) -> int:
        borders = 0
        j = i
        while j < len(lines):
            if _SIMPLE_BORDER.match(lines[j]):
                borders += 1
                if borders >= 2 and (j + 1 >= len(lines) or not lines[j + 1].strip()):
                    return j + 1
            j += 1
        return j

    def simple_table(self, lines: list[str]) -> str:
        starts = [m.start() for m in re.finditer(r"=+", lines[0])]
        rows: list[list[str]] = []
        for line in lines[1:]:
            if not line.strip() or _SIMPLE_BORDER.match(line) or re.match(r"^-+( +-+)*\s*$", line):
                continue
            cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line)])]
            if rows and not cells[0]:
                rows[-1] = [f"{p} {c}".strip() for p, c in zip(rows[-1], cells)]
            else:
                rows.append(cells)
        return "\n".join("; ".join(t for t in (self.text(c) for c in r) if t) for r in rows)

    # explicit markup: directives, comments, targets, footnotes, substitution definitions
    def explicit(self, block: list[str], out: list, cls: str | None) -> None:
        first = block[0]
        if _SUBST_DEF.match(first) or _TARGET.match(first):
            return
        f = _FOOTNOTE.match(first)
        if f:
            body = [f.group("text")] + dedent(block[1:])
            self.parse(body, out, cls)
            return
        d = _DIRECTIVE.match(first)
        if not d:
            return  # a comment
        name = d.group("name").lower()
        if name.startswith("py:"):
            name = name[3:]
        rest = block[1:]
        # argument lines (up to a blank line or an option), options, then content after a blank line
        args = [d.group("args") or ""]
        k = 0
        while k < len(rest) and rest[k].strip() and not _FIELD.match(rest[k].strip()):
            args.append(rest[k].strip())
            k += 1
        options: dict[str, str] = {}
        while k < len(rest) and rest[k].strip() and _FIELD.match(rest[k].strip()):
            fm = _FIELD.match(rest[k].strip())
            options[fm.group("name")] = fm.group("body") or ""
            k += 1
        content = dedent(rest[k:])
        self.directive(name, args, options, content, out, cls)

    def directive(self, name: str, args: list[str], options: dict[str, str], content: list[str],
                  out: list, cls: str | None) -> None:
        arg_text = " ".join(a for a in args if a)
        if name in ("module", "currentmodule"):
            mod = arg_text.strip()
            self.module = None if mod in ("None", "") else mod
            if name == "module" and self.module:
                out.append(Para("", [("module", self.module)]))
            return
        if name in SIGNATURE_DIRECTIVES:
            self.signature(name, args, content, out, cls)
            return
        if name in DROPPED:
            return
        if name in ADMONITIONS:
            self.prefixed(ADMONITIONS[name], [arg_text] + [""] + content if arg_text else content, out, cls)
            return
        if name in ("versionadded", "versionchanged", "deprecated", "deprecated-removed"):
            parts = arg_text.split(None, 2 if name == "deprecated-removed" else 1)
            nver = 2 if name == "deprecated-removed" else 1
            vers, text = parts[:nver], " ".join(parts[nver:])
            label = {"versionadded": "New in version {}", "versionchanged": "Changed in version {}",
                     "deprecated": "Deprecated since version {}",
                     "deprecated-removed": "Deprecated since version {}, will be removed in version {}"}[name]
            label = label.format(*(vers + [""] * (nver - len(vers))))
            body = ([text, ""] if text else []) + content
            if any(l.strip() for l in body):
                self.prefixed(label, body, out, cls)
            else:
                out.append(Para(label + "."))
            return
        if name == "availability":
            head = f"Availability: {self.text(arg_text)}".rstrip()
            if not head.endswith("."):
                head += "."
            out.append(Para(head))
            self.parse(content, out, cls)
            return
        if name == "audit-event":
            ev = arg_text.split()
            ev_name = ev[0] if ev else ""
            ev_args = ev[1] if len(ev) > 1 else ""
            if any(l.strip() for l in content):
                self.parse(content, out, cls)
            elif ev_args:
                out.append(Para(f"Raises an auditing event {ev_name} with arguments "
                                f"{', '.join(a.strip() for a in ev_args.split(','))}."))
            else:
                out.append(Para(f"Raises an auditing event {ev_name} with no arguments."))
            return
        if name in ("rubric", "topic", "sidebar", "table", "admonition"):
            if arg_text:
                out.append(Para(self.text(arg_text)))
            self.parse(content, out, cls)
            return
        if name == "only":
            if "html" in arg_text:
                self.parse(content, out, cls)
            return
        if name == "include":
            inc = self.include(self.page, arg_text.strip())
            if inc is None:
                self.missing_includes.append(arg_text.strip())
            else:
                self.parse(inc, out, cls)
            return
        if name == "list-table":
            items, _ = self.list_items(content, next((i for i, l in enumerate(content) if l.strip()), 0)) \
                if any(l.strip() for l in content) else ([], 0)
            rows = []
            for item in items:
                cells, _ = self.list_items(item, next((i for i, l in enumerate(item) if l.strip()), 0)) \
                    if _BULLET.match(item[0] if item else "") else ([item], 0)
                row = "; ".join(t for t in (self.flatten(c, cls) for c in cells) if t)
                if row:
                    rows.append(row)
            if arg_text:
                out.append(Para(self.text(arg_text)))
            out.append(Para("\n".join(rows)))
            return
        self.unknown.add(name)
        self.parse(content, out, cls)

    def prefixed(self, label: str, body: list[str], out: list, cls: str | None) -> None:
        sub: list = []
        self.parse(body, sub, cls)
        if sub and isinstance(sub[0], Para) and sub[0].text and not sub[0].objects:
            sub[0] = Para(f"{label}: {sub[0].text}")
        else:
            sub.insert(0, Para(f"{label}:"))
        out.extend(sub)

    def signature(self, name: str, args: list[str], content: list[str], out: list, cls: str | None) -> None:
        # one signature per argument line; a trailing backslash continues a signature on the next line
        sigs: list[str] = []
        carry = ""
        for a in args:
            a = carry + " " + a if carry else a
            if a.endswith("\\") and not a.endswith("\\\\"):
                carry = a[:-1].rstrip()
                continue
            carry = ""
            if a.strip():
                sigs.append(collapse(a))
        if carry:
            sigs.append(collapse(carry))
        shown: list[str] = []
        objects: list[tuple[str, str]] = []
        class_qual = None
        for sig in sigs:
            sig = sig.replace("\\\\", "\\")
            m = re.match(r"^([\w.]+)", sig)
            obj = m.group(1) if m else ""
            if obj and name not in ("opcode", "cmdoption", "option", "describe", "object", "pdbcommand",
                                    "envvar", "2to3fixer"):
                if cls:  # nested in a class description: qualified by that class
                    short = cls.rsplit(".", 1)[-1]
                    qual = cls[: -len(short)] + obj if obj.startswith(short + ".") else f"{cls}.{obj}"
                elif self.module and not obj.startswith(self.module + "."):
                    qual = f"{self.module}.{obj}"
                else:
                    qual = obj
                objects.append((name, qual))
                if name in CLASS_LIKE and class_qual is None:
                    class_qual = qual
            display = sig
            if name in MODULE_LEVEL_PREFIXED and not cls and self.module and obj \
                    and not obj.startswith(self.module + "."):
                display = f"{self.module}.{sig}"
            shown.append(SIGNATURE_DIRECTIVES[name] + display)
        out.append(Para("\n".join(shown), objects))
        self.parse(content, out, class_qual if name in CLASS_LIKE and class_qual else cls)
