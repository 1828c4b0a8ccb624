"""A BEIR set not in English: German manual pages (Debian's manpages-de, GPL-3+), a page's one-line description as
the query against the page.

Source: every page under /usr/share/man/de/ (manpages-de 4.18.1-1 on Debian 12), rendered by groff
(`groff -k -mandoc -Tutf8`, no formatting codes). A page gives:

- the query: the description of its NAME/BEZEICHNUNG line ("ls - Verzeichnisinhalte auflisten" ->
  "Verzeichnisinhalte auflisten"); pages sharing one description are all relevant to it;
- the document (`_id` "man1/ls", `title` "ls(1)"): the rest of the page (synopsis, description, options, ...), its
  section headings left out, white space collapsed within paragraphs, cut after MAX_WORDS words (a page's head:
  the set stays a few thousand chunks). The NAME line is not in it, so the query is never the document's own line.

Some pages are partly untranslated upstream (English paragraphs in a German page): they stay, as a real corpus of
translated documentation has them. Splits dev/test by page, about 40/60, seeded.

    apt-get install -y manpages-de groff-base
    .venv/bin/python bench/datasets/make_manpages_de.py      # ~1 min; writes bench/data/manpages-de/

Deterministic: pages in sorted order, seeded splits; needs only the standard library and groff.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
import sys
from pathlib import Path

MAN = Path("/usr/share/man/de")
SEED = "snapdex-manpages-de-1"
MAX_WORDS = 400
MIN_WORDS = 30
MIN_QUERY_WORDS = 2
DEV_SHARE = 0.4
NAME_HEADINGS = ("BEZEICHNUNG", "NAME")
_HEADING = re.compile(r"^[^\s].*$")


def render(path: Path) -> str:
    source = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    out = subprocess.run(["groff", "-k", "-mandoc", "-Tutf8", "-P-cbou", "-rLL=2000n"], input=source,
                         capture_output=True, check=False)
    return out.stdout.decode("utf-8", errors="replace")


def sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading, paragraphs) in order; the page's header and footer lines dropped."""
    lines = text.splitlines()
    body = [l for l in lines[1:] if l.strip()]
    if body:
        body = body[:-1]  # footer: source, date, page title
    out: list[tuple[str, list[str]]] = []
    para: list[str] = []

    def flush() -> None:
        if para and out:
            out[-1][1].append(" ".join(para))
        para.clear()

    for line in lines[1:]:
        if not line.strip():
            flush()
            continue
        if line not in body:
            continue
        if _HEADING.match(line):
            flush()
            out.append((line.strip(), []))
        else:
            para.append(line.strip())
    flush()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "manpages-de")
    args = ap.parse_args()
    if not MAN.is_dir():
        sys.exit(f"{MAN} is missing: apt-get install -y manpages-de")
    pages = sorted(p for p in MAN.glob("man*/*") if p.is_file())
    corpus, by_query, page_of = [], {}, {}
    dropped = {"no name line": 0, "short description": 0, "short page": 0}
    for path in pages:
        name = path.name.removesuffix(".gz")
        stem, _, section = name.rpartition(".")
        doc_id = f"{path.parent.name}/{stem}"
        parts = sections(render(path))
        named = next((paras for head, paras in parts if head in NAME_HEADINGS and paras), None)
        if not named or " - " not in named[0]:
            dropped["no name line"] += 1
            continue
        query = re.sub(r"\s+", " ", named[0].split(" - ", 1)[1]).strip()
        words = [w for head, paras in parts if head not in NAME_HEADINGS for p in paras for w in p.split()]
        if len(query.split()) < MIN_QUERY_WORDS:
            dropped["short description"] += 1
            continue
        if len(words) < MIN_WORDS:
            dropped["short page"] += 1
            continue
        text, left = [], MAX_WORDS
        for head, paras in parts:
            if head in NAME_HEADINGS:
                continue
            for p in paras:
                w = p.split()
                if left <= 0:
                    break
                text.append(" ".join(w[:left]))
                left -= len(w)
        corpus.append({"_id": doc_id, "title": f"{stem}({section})", "text": "\n\n".join(text)})
        by_query.setdefault(query, []).append(doc_id)
        page_of[doc_id] = doc_id
    queries, qrels, meta = {}, {}, {}
    for i, (query, docs) in enumerate(sorted(by_query.items(), key=lambda kv: kv[1][0])):
        qid = f"de{i + 1:05d}"
        queries[qid], qrels[qid], meta[qid] = query, {d: 1 for d in docs}, {"pages": docs}
    order = sorted(queries)
    random.Random(f"{SEED}/split").shuffle(order)
    dev = set(order[: round(DEV_SHARE * len(order))])
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    with (args.out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for d in corpus:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    with (args.out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid in sorted(queries):
            split = "dev" if qid in dev else "test"
            fh.write(json.dumps({"_id": qid, "text": queries[qid], "metadata": {**meta[qid], "split": split}},
                                ensure_ascii=False) + "\n")
    for split in ("dev", "test"):
        with (args.out / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for qid in sorted(qrels):
                if (qid in dev) == (split == "dev"):
                    for did in sorted(qrels[qid]):
                        fh.write(f"{qid}\t{did}\t1\n")
    stats = {"pages": len(pages), "documents": len(corpus), "queries": len(queries), "dev": len(dev),
             "test": len(queries) - len(dev), "dropped": dropped}
    print(json.dumps(stats), file=sys.stderr)
    (args.out / "build.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
