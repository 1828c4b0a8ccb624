"""The pydocs query sets (bench/data/pydocs-*): the rst-to-text conversion they are built with, and the committed
files themselves (readable as BEIR, labels that point at real documents, no query copied verbatim, splits that
share no page or module)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.datasets import make_pydocs
from bench.datasets.rst_text import Heading, Inline, PageParser, Para
from eval.beir import BeirDataset

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"


def render(rst: str, labels: dict[str, str] | None = None) -> list:
    return PageParser("library/demo", rst, Inline(labels or {}, {}), lambda *_: None).parse_page()


def texts(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, Para) and e.text]


def test_roles_render_as_sphinx_shows_them():
    events = render(
        "Use :func:`json.dumps`, :meth:`~io.TextIOBase.write`, :class:`!Frozen`, :keyword:`!raise`,\n"
        ":pep:`8`, ``x = *y*``, *emphasis*, **strong**, `a link <https://example.org>`_ and\n"
        ":ref:`the guide <guide>` or :ref:`guide`.\n",
        labels={"guide": "The Guide"})
    assert texts(events) == ["Use json.dumps(), write(), Frozen, raise, PEP 8, x = *y*, emphasis, strong, "
                             "a link and the guide or The Guide."]


def test_code_is_dropped_and_its_marker_becomes_a_colon():
    events = render("An example::\n\n    x = 1\n\nMore text ::\n\n    y = 2\n\n"
                    ".. code-block:: python\n\n   z = 3\n\n>>> 1 + 1\n2\n\nThe end.\n")
    assert texts(events) == ["An example:", "More text", "The end."]


def test_headings_directives_and_qualified_names():
    rst = ("Title\n=====\n\n.. module:: demo\n\nIntro.\n\nPart\n----\n\n"
           ".. class:: Thing(a)\n\n   A thing.\n\n   .. method:: go(n)\n\n      Goes.\n\n"
           "      .. versionchanged:: 3.2\n         Faster.\n\n"
           ".. function:: run()\n\n   .. note::\n      Careful.\n")
    events = render(rst)
    assert [(e.level, e.title) for e in events if isinstance(e, Heading)] == [(1, "Title"), (2, "Part")]
    objects = [o for e in events if isinstance(e, Para) for o in e.objects]
    assert objects == [("module", "demo"), ("class", "demo.Thing"), ("method", "demo.Thing.go"),
                       ("function", "demo.run")]
    assert texts(events) == ["Intro.", "class demo.Thing(a)", "A thing.", "go(n)", "Goes.",
                             "Changed in version 3.2: Faster.", "demo.run()", "Note: Careful."]


def test_tables_and_lists_become_lines():
    rst = ("+-----+-----+\n| a   | b   |\n+=====+=====+\n| 1   | 2   |\n+-----+-----+\n\n"
           "====  ====\nx     y\n====  ====\n3     4\n====  ====\n\n* one\n* two\n  continued\n")
    assert texts(render(rst)) == ["a; b\n1; 2", "x; y\n3; 4", "one\ntwo continued"]


def test_copied_share_counts_shared_word_5_grams():
    assert make_pydocs.copied_share("one two three four five six", ["x one two three four five y"]) == 0.5
    assert make_pydocs.copied_share("short", ["anything"]) == 0.0


@pytest.mark.parametrize("name", ["pydocs-passages", "pydocs-docstrings"])
def test_committed_set_is_sound(name):
    ds = BeirDataset(DATA / name)
    assert ds.splits() == ["dev", "test"]
    docs = {d["id"]: d["text"] for d in ds.documents()}
    assert len(docs) > 2000
    corpus = "\n\x00\n".join(make_pydocs.collapse(t) for t in docs.values())
    metadata = {}
    with (ds.path / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            metadata[q["_id"]] = q["metadata"]
    group_key = "page" if name == "pydocs-passages" else "module"
    groups: dict[str, set[str]] = {}
    for split in ds.splits():
        qrels = ds.qrels(split)
        queries = ds.queries(set(qrels))
        assert len(queries) == len(qrels) > 250
        for qid, rel in qrels.items():
            assert set(rel) <= set(docs), qid
            assert metadata[qid]["split"] == split
            assert make_pydocs.collapse(queries[qid]) not in corpus, f"{qid} is copied verbatim"
            groups.setdefault(metadata[qid][group_key], set()).add(split)
    assert all(len(s) == 1 for s in groups.values()), "a page or module gives queries to both splits"
    if name == "pydocs-passages":
        left = make_pydocs.leftover_markup([{"_id": k, "title": "", "text": t} for k, t in docs.items()])
        assert not left, left
