"""Usage reports (eval/usage.py) on both catalogs, with recent answers remembered in the catalog (eval/answers.py,
shared by two "replicas"): what a report may cite, who may report, the row it leaves and the signals it records."""

from __future__ import annotations

import time

import pytest

from eval.usage import AnswerStore, Shown, UsageLog, UsageRefused, reporter
from ingest.access import Reader

ALICE = reporter("k_service", Reader.of("alice@acme", ["hr", "eng"], True))
BOB = reporter("k_service", Reader.of("bob@acme", [], True))


def answer(context: bool) -> Shown:
    """Three hits: c1 in doc a (chars 0-10), c2 shared by docs b and b-twin, c3 in doc a (10-20); with a context block,
    passage [1] is doc a 0-20 (holding c1 and c3) and passage [2] doc b."""
    hits = [("c1", [("a", 0, 10)]), ("c2", [("b", 0, 8), ("b-twin", 0, 8)]), ("c3", [("a", 10, 20)])]
    return Shown.of("snap", hits, [("a", 0, 20), ("b", 0, 8)] if context else None)


def test_what_an_answer_lets_a_report_cite():
    hits_only, with_context = answer(False), answer(True)
    assert hits_only.resolve("r", ["[2]", "c3", "b-twin", "[2]"]) == [
        {"ref": "[2]", "citation": "[2]", "doc_id": "b", "chunk_ids": ["c2"]},
        {"ref": "c3", "citation": None, "doc_id": "a", "chunk_ids": ["c3"]},
        {"ref": "b-twin", "citation": None, "doc_id": "b-twin", "chunk_ids": ["c2"]}]  # the same reference once
    assert with_context.resolve("r", ["[1]", "a"]) == [
        {"ref": "[1]", "citation": "[1]", "doc_id": "a", "chunk_ids": ["c1", "c3"]},
        {"ref": "a", "citation": None, "doc_id": "a", "chunk_ids": ["c1", "c3"]}]
    with pytest.raises(UsageRefused, match=r"cited '\[3\]', 'zzz' not in answer r: .*labels \(\[1\] to \[2\]\)"):
        with_context.resolve("r", ["[1]", "[3]", "zzz"])
    batch = Shown.merged([hits_only, with_context])  # a batch's answers share one request id: no labels
    with pytest.raises(UsageRefused, match="labels \\(none\\)"):
        batch.resolve("r", ["[1]"])
    assert [c["doc_id"] for c in batch.resolve("r", ["c1", "b"])] == ["a", "b"]
    assert Shown.from_json(with_context.to_json()) == with_context


def test_reports_only_from_whom_the_answer_was_for(catalog_db):
    # Two "replicas" (two stores on one catalog): an answer one gave, the other finds.
    memory, other = AnswerStore(catalog_db, 3600, 0), AnswerStore(catalog_db, 3600, 0)
    log = UsageLog(catalog_db, memory)
    memory.remember("acme", "req1", ALICE, answer(True), "the query")
    assert other.recall("acme", "req1", ALICE, "usage").shown == answer_row(catalog_db)
    for tenant, who, request_id, why in (
            ("acme", BOB, "req1", "answered for another key or principal"),
            ("globex", ALICE, "req1", "no answer of this tenant has that id"),
            ("acme", ALICE, "req2", "no answer of this tenant has that id"),
            ("acme", reporter("k_other", Reader.of("alice@acme", ["eng", "hr"], True)), "req1", "another key")):
        with pytest.raises(UsageRefused, match=f"not an answer this key and principal were given.*{why}"):
            log.report(tenant, request_id, who, ["[1]"], None)
    first = log.report("acme", "req1", ALICE, ["[1]"], True)
    assert (first["snapshot"], first["replaced"], first["cited"][0]["chunk_ids"]) == ("snap", False, ["c1", "c3"])
    again = UsageLog(catalog_db, other).report("acme", "req1", ALICE, ["[2]"], None)
    assert again["replaced"]
    [row] = log.reports("acme")
    assert row["reporter"] == ALICE and row["helpful"] is None and [c["ref"] for c in row["cited"]] == ["[2]"]
    assert row["answered_at"] <= row["reported_at"] <= time.time() and log.reports("globex") == []
    # The same citations are feedback signals: the second report's replace the first's; the answer's helpful stays.
    assert sorted((s["target"], s["signal"], s["via"], s["position"]) for s in memory.signals("acme")) == [
        ("answer", "helpful", "usage", None), ("chunk:c2", "cited", "usage", 2)]


def answer_row(db) -> Shown:
    from db.tables import answers

    return Shown.from_json(db.first(answers.select())["shown"])


def test_the_window(tmp_path):
    from db import open_catalog

    db = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    short = AnswerStore(db, 1.0, 0)
    short.remember("acme", "req1", ALICE, answer(False))
    assert short.recall("acme", "req1", ALICE, "usage") is not None
    time.sleep(1.1)
    with pytest.raises(UsageRefused, match="in the last 1 s \\(SNAPDEX_USAGE_WINDOW_S\\): it was answered 1 s ago"):
        short.recall("acme", "req1", ALICE, "usage")  # past SNAPDEX_USAGE_WINDOW_S
    off = AnswerStore(db, 0, 0)
    off.remember("acme", "req2", ALICE, answer(False))
    with pytest.raises(UsageRefused, match="usage reports are off"):
        UsageLog(db, off).report("acme", "req2", ALICE, [], None)
