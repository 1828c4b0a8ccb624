"""Three more BEIR sets from the Python 3.11 documentation (PSF licence), each a query shape the first two lack:

- pydocs-headings: a section's heading (unique in the docs, at least two words) as the query, the section's text
  as its one relevant document: short, title-like queries.
- pydocs-faq: a FAQ question (a heading of the FAQ pages that ends in "?") against its answer: question to answer.
- pydocs-topics: a page's title ("json — JSON encoder and decoder") against every section of that page (pages of
  at least MIN_TOPIC_SECTIONS sections): many relevant documents per query.

The three share ONE corpus (pydocs-faq/corpus.jsonl and pydocs-topics/corpus.jsonl link to
pydocs-headings/corpus.jsonl): the sections make_pydocs.py cuts (same rules, same ids), with NO title, so a
heading is never in the text it names. Splits dev/test by page, about 40/60 (topics: by page, one query each).

    apt-get install -y python3.11-doc
    /usr/bin/python3.11 bench/datasets/make_shapes.py        # ~30 s; writes bench/data/pydocs-{headings,faq,topics}/

Standard library only, deterministic (sorted inputs; random.Random seeded with a fixed string).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_pydocs import (check_splits, leftover_markup, load_sections, require_docs, split_by,  # noqa: E402
                         write_set)
from rst_text import RELEASE  # noqa: E402

SEED = "snapdex-shapes-1"
MAX_HEADING_QUERIES = 1000
MIN_TOPIC_SECTIONS = 5
# Headings that name a part of any page, not a topic ("Examples", "Notes"): too vague to be a query even when a
# page gives them a unique wording.
MIN_HEADING_WORDS = 2


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    args = ap.parse_args()
    require_docs()
    sections, report = load_sections()
    corpus = [{"_id": s.id, "title": "", "text": s.text} for s in sections]
    left = leftover_markup(corpus)
    if left:
        raise AssertionError("rst markup left in the text: " + "; ".join(v[0] for v in left.values()))

    heading_count = collections.Counter(norm(s.path[-1]) for s in sections)
    faq: dict[str, tuple[str, str]] = {}       # qid -> (question, section id)
    headings: dict[str, tuple[str, str]] = {}
    for s in sections:
        head = s.path[-1].strip()
        if s.page.startswith("faq/") and head.endswith("?"):
            faq[f"fq{len(faq) + 1:05d}"] = (head, s.id)
        elif heading_count[norm(head)] == 1 and len(head.split()) >= MIN_HEADING_WORDS:
            headings[f"hd{len(headings) + 1:05d}"] = (head, s.id)
    if len(headings) > MAX_HEADING_QUERIES:
        keep = sorted(random.Random(f"{SEED}/headings").sample(sorted(headings), MAX_HEADING_QUERIES))
        headings = {q: headings[q] for q in keep}

    page_sections: dict[str, list[str]] = collections.defaultdict(list)
    page_title: dict[str, str] = {}
    for s in sections:
        page_sections[s.page].append(s.id)
        page_title.setdefault(s.page, s.path[0])
    topics = {f"tp{i + 1:05d}": (page_title[p], p) for i, p in enumerate(
        p for p in sorted(page_sections) if len(page_sections[p]) >= MIN_TOPIC_SECTIONS)}

    page_of = {s.id: s.page for s in sections}
    sets = {
        "pydocs-headings": ({q: t for q, (t, _) in headings.items()}, {q: {sid: 1} for q, (_, sid) in headings.items()},
                            {q: {"page": page_of[sid]} for q, (_, sid) in headings.items()}),
        "pydocs-faq": ({q: t for q, (t, _) in faq.items()}, {q: {sid: 1} for q, (_, sid) in faq.items()},
                       {q: {"page": page_of[sid]} for q, (_, sid) in faq.items()}),
        "pydocs-topics": ({q: t for q, (t, _) in topics.items()},
                          {q: {sid: 1 for sid in page_sections[p]} for q, (_, p) in topics.items()},
                          {q: {"page": p} for q, (_, p) in topics.items()}),
    }
    stats = {"python": sys.version.split()[0], "release": RELEASE, "sections": len(corpus), "sets": {}}
    for name, (queries, qrels, meta) in sets.items():
        groups = {q: m["page"] for q, m in meta.items()}
        split = split_by(groups, name)
        check_splits(name, groups, split)
        target = corpus if name == "pydocs-headings" else args.out / "pydocs-headings" / "corpus.jsonl"
        write_set(args.out / name, target, queries, meta, qrels, split)
        stats["sets"][name] = {
            sp: {"queries": sum(v == sp for v in split.values()),
                 "relevant_per_query": round(sum(len(qrels[q]) for q in split if split[q] == sp)
                                             / max(1, sum(v == sp for v in split.values())), 2)}
            for sp in ("dev", "test")}
    print(json.dumps(stats, indent=2), file=sys.stderr)
    (args.out / "shapes-build.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
