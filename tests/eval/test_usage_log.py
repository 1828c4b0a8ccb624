"""Usage reports (eval/usage.py) on both catalogs, with recent answers remembered in the process and in a real
redis-server (shared by two "replicas"): what a report may cite, who may report, and the row it leaves."""

from __future__ import annotations

import time

import pytest

from eval.usage import AnswerMemory, Shown, UsageLog, UsageRefused, reporter
from ingest.access import Reader
from tests.procs import redis_server

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


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_reports_only_from_whom_the_answer_was_for(catalog_db, tmp_path, shared):
    def run(memory: AnswerMemory, other: AnswerMemory) -> None:
        log = UsageLog(catalog_db, memory)
        log.remember("acme", "req1", ALICE, answer(True))
        # Another replica finds it through Redis; in process, only the process that answered.
        assert (other.recall("acme", "req1", ALICE) is not None) is shared
        for tenant, who, request_id in (("acme", BOB, "req1"), ("globex", ALICE, "req1"), ("acme", ALICE, "req2"),
                                        ("acme", reporter("k_other", Reader.of("alice@acme", ["eng", "hr"], True)),
                                         "req1")):
            with pytest.raises(UsageRefused, match="not an answer this key and principal were given"):
                log.report(tenant, request_id, who, ["[1]"], None)
        first = log.report("acme", "req1", ALICE, ["[1]"], True)
        assert (first["snapshot"], first["replaced"], first["cited"][0]["chunk_ids"]) == ("snap", False, ["c1", "c3"])
        again = UsageLog(catalog_db, other if shared else memory).report("acme", "req1", ALICE, ["[2]"], None)
        assert again["replaced"]
        [row] = log.reports("acme")
        assert row["reporter"] == ALICE and row["helpful"] is None and [c["ref"] for c in row["cited"]] == ["[2]"]
        assert row["answered_at"] <= row["reported_at"] <= time.time() and log.reports("globex") == []

    if not shared:
        run(AnswerMemory(3600, 100), AnswerMemory(3600, 100))
        return
    with redis_server(tmp_path / "redis") as url:
        run(AnswerMemory(3600, 0, url), AnswerMemory(3600, 0, url))


def test_the_window_and_the_bound():
    short = AnswerMemory(1.0, 100)
    short.remember("acme", "req1", ALICE, answer(False))
    assert short.recall("acme", "req1", ALICE) is not None
    time.sleep(1.1)
    assert short.recall("acme", "req1", ALICE) is None  # past SNAPDEX_USAGE_WINDOW_S
    small = AnswerMemory(3600, 2)
    for i in range(3):
        small.remember("acme", f"req{i}", ALICE, answer(False))
    assert [small.recall("acme", f"req{i}", ALICE) is not None for i in range(3)] == [False, True, True]
    off = AnswerMemory(0, 100)
    off.remember("acme", "req1", ALICE, answer(False))
    with pytest.raises(UsageRefused, match="usage reports are off"):
        UsageLog(None, off).report("acme", "req1", ALICE, [], None)
