"""Build two BEIR retrieval sets of other shapes than SciFact from the Python 3.11 documentation (PSF licence).

Source: Debian's `python3.11-doc` package (the reStructuredText sources it ships under
/usr/share/doc/python3.11/html/_sources/) and the docstrings of the interpreter that runs this script. Run it
with Debian's own interpreter, so that docs and docstrings are the same release (3.11.2 on Debian 12):

    apt-get install -y python3.11-doc
    /usr/bin/python3.11 bench/datasets/make_pydocs.py            # writes bench/data/pydocs-*/

Standard library only (no venv needed). Deterministic: inputs are read in sorted order and every random choice
comes from random.Random seeded with a fixed string and the item's own id, so a rebuild from the same package
and interpreter writes the same bytes.

The corpus unit is a *section*: a heading and the text under it up to the next heading of any level, so no
text belongs to two documents (a parent heading's text does not include its subsections). A section under
MIN_WORDS words is merged into the section that follows when that one is its subsection, otherwise dropped.
Text is rst rendered to plain text by bench/datasets/rst_text.py; code (literal blocks, doctests,
code-block, ...) is dropped everywhere.

Both sets share ONE corpus (pydocs-docstrings/corpus.jsonl links to pydocs-passages/corpus.jsonl): the
sections of the library reference, language reference, tutorial, HOWTOs and FAQ.

pydocs-docstrings (medium queries written apart from the text they match), built first: query = the docstring
of a documented stdlib module, class, function or method (at least 25 words, its own, not inherited, not
auto-generated), relevant = the library-reference section(s) whose `.. function::`/`.. class::`/... directive
documents that object (qualified name from the `.. module::`/`.. currentmodule::` context and class nesting).
Dropped: docstrings found verbatim in the corpus, and those sharing more than COPY_MAX of their word 5-grams
with their own section (copies of the docs, which made the set a lexical lookup). Splits dev/test by top-level
module (os and os.path together; builtins for the built-in types), about 40/60.

pydocs-passages (long, paragraph-shaped queries; the shape of ArguAna): from sections long enough that no
docstring query points at (those stay whole), one passage of whole consecutive paragraphs (150-450 words,
every paragraph of it found nowhere else in the corpus) is cut out and becomes the query; the rest of its
section (at least MIN_REST words) is the one relevant document and stays in the corpus. Splits dev/test by page
(no page gives queries to both), about 40/60.

The build asserts that no query occurs verbatim in the corpus, that no rst markup is left, and that no page or
module gives queries to both splits. bench/datasets/check_pydocs.py prints lengths and BM25/MiniLM figures.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import random
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rst_text import RELEASE, Heading, Inline, PageParser, Para, _ADORN, _TARGET, collapse  # noqa: E402

SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
PAGE_DIRS = ("library", "reference", "tutorial", "howto", "faq")
SEED = "snapdex-pydocs-1"
MIN_WORDS = 60            # a section shorter than this is merged into its first subsection or dropped
PASSAGE_WORDS = (150, 450)
MIN_REST = 60             # words left in a section after its passage is cut out
UNIQUE_MIN_WORDS = 12     # a passage's paragraphs this long must occur nowhere else in the corpus
MAX_PASSAGE_QUERIES = 1500
DEV_SHARE = 0.4
DOCSTRING_MIN_WORDS = 25
# A docstring that shares more than this share of its word 5-grams with its own section(s) was copied from the
# docs or into them: 982 of 1,852 names do. Kept, they made the set a lexical lookup (BM25 nDCG@10 0.91 dev / 0.87
# test; with the cap at 0.5, 0.83 / 0.87; at 0.2, 0.79 / 0.84).
COPY_MAX = 0.2
# never imported to read docstrings: side effects (a browser, printing), not a library module, or needing a
# Debian package besides the interpreter (python3-tk), which would make the set depend on what is installed
NO_IMPORT = {"__main__", "antigravity", "this", "idlelib", "turtledemo", "tkinter", "turtle"}
DOCSTRING_KINDS = {"module", "class", "exception", "function", "method", "classmethod", "staticmethod",
                   "decorator", "decoratormethod", "coroutinefunction", "coroutinemethod", "abstractmethod",
                   "awaitablefunction", "awaitablemethod"}


def words(text: str) -> int:
    return len(text.split())


# --- pages -> sections -------------------------------------------------------------------------------------

def page_of(path: Path) -> str:
    return str(path.relative_to(SOURCES)).removesuffix(".rst.txt")


def prepass(files: list[Path]) -> tuple[dict[str, str], dict[str, str]]:
    """Section labels -> titles (for :ref:) and pages -> titles (for :doc:), over every page of the docs."""
    plain = Inline({}, {})
    labels: dict[str, str] = {}
    doc_titles: dict[str, str] = {}
    for path in files:
        page = page_of(path)
        parser = PageParser(page, path.read_text(encoding="utf-8"), plain, lambda *_: None)
        lines = parser.lines
        pending: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            title = None
            if _ADORN.match(line) and i + 2 < len(lines) and lines[i + 1].strip() and _ADORN.match(lines[i + 2]):
                title, step = lines[i + 1], 3
            elif line.strip() and not line.startswith((" ", "..")) and i + 1 < len(lines) \
                    and _ADORN.match(lines[i + 1]) and not _ADORN.match(line):
                title, step = line, 2
            if title is not None:
                rendered = parser.text(title)
                doc_titles.setdefault(page, rendered)
                for label in pending:
                    labels[label] = rendered
                pending = []
                i += step
                continue
            t = _TARGET.match(line)
            if t and not t.group("uri"):
                pending.append(t.group("name").strip("`").lower())
            elif line.strip() and not line.startswith((" ", "..")):
                pending = []  # a label before a paragraph or a directive names no section
            i += 1
    return labels, doc_titles


@dataclass
class Section:
    id: str
    page: str
    path: list[str]
    level: int
    paras: list[Para] = field(default_factory=list)

    @property
    def title(self) -> str:
        return " > ".join(self.path)

    def texts(self) -> list[str]:
        return [p.text for p in self.paras if p.text]

    @property
    def text(self) -> str:
        return "\n\n".join(self.texts())

    @property
    def words(self) -> int:
        return sum(words(t) for t in self.texts())

    def objects(self) -> list[tuple[str, str]]:
        return [o for p in self.paras for o in p.objects]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "section"


def sections_of(page: str, events: list) -> list[Section]:
    secs: list[Section] = []
    stack: list[tuple[int, str]] = []
    cur = Section("", page, [], 0)
    for ev in events:
        if isinstance(ev, Heading):
            secs.append(cur)
            stack = [(lvl, t) for lvl, t in stack if lvl < ev.level] + [(ev.level, ev.title)]
            cur = Section("", page, [t for _, t in stack], ev.level)
        else:
            cur.paras.append(ev)
    secs.append(cur)
    kept: list[Section] = []
    carry: list[Para] = []
    for k, sec in enumerate(secs):
        sec.paras = carry + sec.paras
        carry = []
        if sec.words >= MIN_WORDS and sec.path:
            kept.append(sec)
        elif k + 1 < len(secs) and secs[k + 1].level > sec.level:
            carry = sec.paras  # a short parent intro leads its first subsection
    seen: collections.Counter = collections.Counter()
    for sec in kept:
        base = f"{page}#{slug(sec.path[-1])}"
        seen[base] += 1
        sec.id = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return kept


def load_sections() -> tuple[list[Section], dict]:
    all_files = sorted(SOURCES.rglob("*.rst.txt"))
    labels, doc_titles = prepass(all_files)
    inline = Inline(labels, doc_titles)

    def include(page: str, target: str) -> list[str] | None:
        base = SOURCES if target.startswith("/") else (SOURCES / page).parent
        path = (base / target.lstrip("/")).resolve()
        candidate = path.with_name(path.name + ".txt")
        if candidate.is_file():
            return [l.expandtabs(8).rstrip() for l in candidate.read_text(encoding="utf-8").splitlines()]
        return None

    sections: list[Section] = []
    report = {"unknown_directives": collections.Counter(), "missing_includes": collections.Counter(),
              "pages": 0}
    for path in all_files:
        page = page_of(path)
        if page.split("/", 1)[0] not in PAGE_DIRS:
            continue
        parser = PageParser(page, path.read_text(encoding="utf-8"), inline, include)
        events = parser.parse_page()
        report["pages"] += 1
        report["unknown_directives"].update(parser.unknown)
        report["missing_includes"].update(parser.missing_includes)
        sections.extend(sections_of(page, events))
    return sections, report


# --- checks --------------------------------------------------------------------------------------------------

_LEFTOVER = [
    ("role", re.compile(r":[a-z][\w:-]*:`")),
    ("double backquote", re.compile(r"``")),
    ("explicit markup", re.compile(r"(?m)^\.\. ")),
    ("link or reference", re.compile(r"`_|`__")),
    ("substitution", re.compile(r"(?<![\w(])\|[A-Za-z][\w-]*\|(?![\w)])")),
    ("title adornment", re.compile(r"(?m)^([=\-~^\"*#+])\1{3,}$")),
    ("grid table", re.compile(r"(?m)^\+[-=+]+\+$")),
    ("literal-block marker", re.compile(r"(?m)::$")),
]


def leftover_markup(docs: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for d in docs:
        for name, rx in _LEFTOVER:
            m = rx.search(d["text"]) or rx.search(d.get("title", ""))
            if m:
                found.setdefault(name, []).append(f"{d['_id']}: ...{d['text'][max(0, m.start() - 40):m.end() + 40]!r}")
    return found


def assert_not_verbatim(queries: dict[str, str], docs: list[dict]) -> None:
    blob = "\n\x00\n".join(collapse(f"{d['title']} {d['text']}") for d in docs)
    bad = [qid for qid, q in queries.items() if collapse(q) in blob]
    if bad:
        raise AssertionError(f"{len(bad)} queries appear verbatim in the corpus, e.g. {bad[:5]}")


# --- pydocs-passages -----------------------------------------------------------------------------------------

def passage_set(sections: list[Section], keep_whole: set[str]
                ) -> tuple[list[dict], dict[str, str], dict[str, dict], dict[str, dict]]:
    """The shared corpus (sections, a passage cut out of each query's section) and the passage queries. Sections
    in `keep_whole` (relevant to a docstring query) give no passage."""
    counts = collections.Counter(collapse(t) for s in sections for t in s.texts())
    chosen: dict[str, tuple[int, int]] = {}
    for sec in sections:
        if sec.id in keep_whole:
            continue
        texts = sec.texts()
        lens = [words(t) for t in texts]
        total = sum(lens)
        if total < PASSAGE_WORDS[0] + MIN_REST:
            continue
        candidates = []
        for a in range(len(texts)):
            w = 0
            for b in range(a + 1, len(texts) + 1):
                t = texts[b - 1]
                if lens[b - 1] >= UNIQUE_MIN_WORDS and counts[collapse(t)] > 1:
                    break
                w += lens[b - 1]
                if w > PASSAGE_WORDS[1]:
                    break
                # the passage is mostly prose: not a table or a run of signature lines
                prose = sum(l for t2, l in zip(texts[a:b], lens[a:b]) if "\n" not in t2)
                if w >= PASSAGE_WORDS[0] and total - w >= MIN_REST and prose * 2 >= w:
                    candidates.append((a, b))
        if candidates:
            chosen[sec.id] = random.Random(f"{SEED}/passage/{sec.id}").choice(candidates)
    ids = sorted(chosen)
    if len(ids) > MAX_PASSAGE_QUERIES:
        ids = sorted(random.Random(f"{SEED}/sample").sample(ids, MAX_PASSAGE_QUERIES))
    chosen = {i: chosen[i] for i in ids}

    corpus, queries, meta = [], {}, {}
    qrels: dict[str, dict] = {}
    n = 0
    for sec in sections:
        texts = sec.texts()
        if sec.id in chosen:
            a, b = chosen[sec.id]
            n += 1
            qid = f"pp{n:05d}"
            queries[qid] = "\n\n".join(texts[a:b])
            meta[qid] = {"page": sec.page}
            qrels[qid] = {sec.id: 1}
            texts = texts[:a] + texts[b:]
        corpus.append({"_id": sec.id, "title": sec.title, "text": "\n\n".join(texts)})
    return corpus, queries, meta, qrels


def split_by(groups: dict[str, str], tag: str) -> dict[str, str]:
    """query id -> 'dev' or 'test', whole groups at a time: groups in a seeded order go to dev until it holds
    DEV_SHARE of the queries."""
    by_group: dict[str, list[str]] = collections.defaultdict(list)
    for qid, g in groups.items():
        by_group[g].append(qid)
    order = sorted(by_group)
    random.Random(f"{SEED}/split/{tag}").shuffle(order)
    out: dict[str, str] = {}
    dev = 0
    target = DEV_SHARE * len(groups)
    for g in order:
        split = "dev" if dev < target and dev + len(by_group[g]) <= target * 1.05 else "test"
        if split == "dev":
            dev += len(by_group[g])
        for qid in by_group[g]:
            out[qid] = split
    return out


# --- pydocs-docstrings ---------------------------------------------------------------------------------------

_AUTO = [
    re.compile(r"See help\(type\(self\)\) for accurate signature"),
    re.compile(r"^(Initialize|Create and return a new object|Return repr\(self\)|Implement|Return self)"),
    re.compile(r"^Alias for field number \d+$"),
    re.compile(r"^An enumeration\.$"),
]


def dump_docstrings(names: list[list[str]]) -> dict[str, dict]:
    """In this interpreter: the own docstring of each (kind, qualified name), or why there is none."""
    import builtins
    import importlib
    import io
    import contextlib
    import warnings

    warnings.simplefilter("ignore")
    out: dict[str, dict] = {}
    for kind, qual in names:
        parts = qual.split(".")
        obj, err = None, "not found"
        if parts[0] in NO_IMPORT or qual in NO_IMPORT:
            out[qual] = {"error": "not imported (side effects or not a library module)"}
            continue
        for k in range(len(parts), 0, -1):
            modname = ".".join(parts[:k])
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    mod = importlib.import_module(modname)
            except BaseException as e:  # noqa: BLE001 - any import failure means: not importable here
                err = f"import {modname}: {type(e).__name__}"
                continue
            try:
                obj = mod
                for attr in parts[k:]:
                    obj = getattr(obj, attr)
                err = None
            except AttributeError:
                obj, err = None, f"no attribute {qual!r}"
            break
        else:
            try:
                obj = builtins
                for attr in parts:
                    obj = getattr(obj, attr)
                err = None
            except AttributeError:
                obj = None
        if obj is None or err:
            out[qual] = {"error": err or "not found"}
            continue
        if inspect.isclass(obj):
            doc = obj.__dict__.get("__doc__")
        elif inspect.ismodule(obj) or inspect.isroutine(obj):
            doc = getattr(obj, "__doc__", None)
        else:
            doc = getattr(obj, "__doc__", None)
            if doc == getattr(type(obj), "__doc__", None):
                doc = None  # an instance carrying its type's docstring
        module = getattr(obj, "__module__", None) if not inspect.ismodule(obj) else obj.__name__
        out[qual] = {"doc": inspect.cleandoc(doc) if isinstance(doc, str) else None,
                     "module": module if isinstance(module, str) else None}
    return out


_WORD = re.compile(r"\w+")


def copied_share(query: str, documents: list[str], n: int = 5) -> float:
    """Share of the query's word n-grams (lowercased) that occur in the documents: 1.0 for a copy."""
    def grams(text: str) -> set[tuple[str, ...]]:
        w = _WORD.findall(text.lower())
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}

    q = grams(query)
    return len(q & set().union(*map(grams, documents))) / len(q) if q else 0.0


def docstring_set(sections: list[Section]) -> tuple[dict[str, str], dict[str, dict], dict, dict]:
    """Docstring queries and their relevant library sections; docstrings found verbatim in any (uncut) section
    are dropped."""
    lib = [s for s in sections if s.page.startswith("library/")]
    where: dict[str, list[str]] = collections.defaultdict(list)
    kinds: dict[str, str] = {}
    for sec in lib:
        for kind, qual in sec.objects():
            if kind in DOCSTRING_KINDS and sec.id not in where[qual]:
                where[qual].append(sec.id)
                kinds.setdefault(qual, kind)
    names = [[kinds[q], q] for q in sorted(where)]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "names.json", Path(tmp) / "docs.json"
        src.write_text(json.dumps(names))
        # a separate process: imports of ~200 modules and their side effects stay out of this one
        subprocess.run([sys.executable, __file__, "--dump-docstrings", str(src), str(dst)], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=900)
        docs = json.loads(dst.read_text())
    blob = "\n\x00\n".join(collapse(f"{s.title} {s.text}") for s in sections)
    stats = collections.Counter()
    by_text: dict[str, list[str]] = {}
    for qual in sorted(where):
        info = docs.get(qual, {})
        doc = info.get("doc")
        if info.get("error"):
            stats["not importable or not found"] += 1
            continue
        if not doc:
            stats["no own docstring"] += 1
            continue
        if words(doc) < DOCSTRING_MIN_WORDS:
            stats[f"under {DOCSTRING_MIN_WORDS} words"] += 1
            continue
        if any(rx.search(doc) for rx in _AUTO):
            stats["auto-generated"] += 1
            continue
        if collapse(doc) in blob:
            stats["verbatim in the corpus"] += 1
            continue
        by_text.setdefault(doc, []).append(qual)
    def group(qual: str) -> str:  # the top-level module, for the split
        top = qual.split(".")[0]
        return top if top in sys.stdlib_module_names else "builtins"

    # a docstring reached under names of several top-level modules (aliases such as typing.Text = str) keeps
    # the names of the first of them, so that no query's sections straddle the dev/test split
    for doc, quals in by_text.items():
        by_text[doc] = [q for q in quals if group(q) == group(quals[0])]
        stats["alias in another module"] += len(quals) - len(by_text[doc])
    text_of = {s.id: f"{s.title} {s.text}" for s in lib}
    copied: dict[str, float] = {}
    for doc in sorted(by_text):
        rel = {sid for q in by_text[doc] for sid in where[q]}
        copied[doc] = copied_share(doc, [text_of[sid] for sid in rel])
        if copied[doc] > COPY_MAX:
            stats[f"copies its section (over {COPY_MAX:.0%} of its word 5-grams there)"] += len(by_text.pop(doc))
        else:
            stats["kept"] += len(by_text[doc])
    queries, meta, qrels, groups = {}, {}, {}, {}
    for n, (doc, quals) in enumerate(sorted(by_text.items(), key=lambda kv: kv[1][0]), start=1):
        qid = f"pd{n:05d}"
        rel = sorted({sid for q in quals for sid in where[q]})
        queries[qid] = doc
        meta[qid] = {"objects": quals, "kind": kinds[quals[0]], "copied_5gram_share": round(copied[doc], 3)}
        qrels[qid] = {sid: 1 for sid in rel}
        groups[qid] = group(quals[0])
    stats["queries (distinct docstrings)"] = len(queries)
    return queries, meta, qrels, {"groups": groups, "stats": dict(stats)}


def check_splits(name: str, groups: dict[str, str], split: dict[str, str]) -> None:
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for qid, g in groups.items():
        seen[g].add(split[qid])
    both = sorted(g for g, s in seen.items() if len(s) > 1)
    if both:
        raise AssertionError(f"{name}: {both[:5]} give queries to both splits")


# --- output --------------------------------------------------------------------------------------------------

def write_set(out: Path, corpus: list[dict] | Path, queries: dict[str, str], meta: dict[str, dict],
              qrels: dict[str, dict], split: dict[str, str]) -> None:
    """A BEIR folder; `corpus` is the documents, or another set's corpus.jsonl to link to (one shared file)."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    target = out / "corpus.jsonl"
    if target.is_symlink() or target.exists():
        target.unlink()
    if isinstance(corpus, Path):
        target.symlink_to(Path("..") / corpus.parent.name / corpus.name)
    else:
        with target.open("w", encoding="utf-8") as fh:
            for d in corpus:
                fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid in sorted(queries):
            fh.write(json.dumps({"_id": qid, "text": queries[qid], "metadata": {**meta[qid], "split": split[qid]}},
                                ensure_ascii=False) + "\n")
    for name in ("dev", "test"):
        with (out / "qrels" / f"{name}.tsv").open("w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for qid in sorted(qrels):
                if split[qid] == name:
                    for did, score in sorted(qrels[qid].items()):
                        fh.write(f"{qid}\t{did}\t{score}\n")


def require_docs() -> None:
    """Stop unless python3.11-doc's sources of this release are installed."""
    if not SOURCES.is_dir():
        sys.exit(f"{SOURCES} is missing: apt-get install -y python3.11-doc")
    opts = (SOURCES.parent / "_static" / "documentation_options.js").read_text()
    if f"VERSION: '{RELEASE}'" not in opts:
        sys.exit(f"these docs are not release {RELEASE} (see {SOURCES.parent}/_static/documentation_options.js)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    ap.add_argument("--dump-docstrings", nargs=2, metavar=("NAMES", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dump_docstrings:
        names = json.loads(Path(args.dump_docstrings[0]).read_text())
        Path(args.dump_docstrings[1]).write_text(json.dumps(dump_docstrings(names)))
        return
    require_docs()
    sections, report = load_sections()
    print(f"{report['pages']} pages, {len(sections)} sections; unknown directives: "
          f"{dict(report['unknown_directives'])}; missing includes: {dict(report['missing_includes'])}",
          file=sys.stderr)

    # docstrings first: the sections they point at stay whole, so one corpus serves both sets
    queries2, meta2, qrels2, extra = docstring_set(sections)
    keep_whole = {sid for rel in qrels2.values() for sid in rel}
    corpus, queries, meta, qrels = passage_set(sections, keep_whole)
    assert_not_verbatim(queries, corpus)
    assert_not_verbatim(queries2, corpus)
    if any(d for q in qrels.values() for d in q if d in keep_whole):
        raise AssertionError("a passage was cut from a section that a docstring query needs whole")

    split = split_by({q: m["page"] for q, m in meta.items()}, "passages")
    split2 = split_by(extra["groups"], "docstrings")
    for qid in meta2:
        meta2[qid]["module"] = extra["groups"][qid]
    check_splits("pydocs-passages", {q: m["page"] for q, m in meta.items()}, split)
    check_splits("pydocs-docstrings", extra["groups"], split2)
    left = leftover_markup(corpus + [{"_id": q, "title": "", "text": t} for q, t in queries.items()])
    if left:
        raise AssertionError("rst markup left in the text: " + "; ".join(v[0] for v in left.values()))

    write_set(args.out / "pydocs-passages", corpus, queries, meta, qrels, split)
    write_set(args.out / "pydocs-docstrings", args.out / "pydocs-passages" / "corpus.jsonl", queries2, meta2,
              qrels2, split2)
    shared = {d for q, rel in qrels2.items() if split2[q] == "dev" for d in rel} & \
             {d for q, rel in qrels2.items() if split2[q] == "test" for d in rel}
    counts = {name: {sp: sum(v == sp for v in spl.values()) for sp in ("dev", "test")}
              for name, spl in (("pydocs-passages", split), ("pydocs-docstrings", split2))}
    print(f"corpus: {len(corpus)} sections; queries: {counts}; docstring stats: {extra['stats']}; "
          f"sections relevant in both docstring splits: {len(shared)}", file=sys.stderr)
    stats = {"python": sys.version.split()[0], "release": RELEASE, "queries": counts,
             "docstring_sections_relevant_in_both_splits": len(shared),
             "docstrings": extra["stats"], "sections": len(sections), "pages": report["pages"],
             "unknown_directives": dict(report["unknown_directives"]),
             "missing_includes": dict(report["missing_includes"])}
    (args.out / "pydocs-build.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
