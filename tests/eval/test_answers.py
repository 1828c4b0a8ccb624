"""The store of answers and feedback (eval/answers.py, eval/feedback.py) on both catalogs: what a purge keeps, and
which signals make a labelled query."""

from __future__ import annotations

import time

from db.tables import answers, feedback
from eval.answers import AnswerStore, Shown, reporter
from eval.feedback import FeedbackLog

ALICE, BOB = reporter("k1", None), reporter("k2", None)
DAY = 86400.0


def answer(at: float, *docs: str) -> Shown:
    return Shown("snap", [[f"c-{d}", [d]] for d in docs], at=at)


def test_a_purge_keeps_what_got_a_signal_until_the_retention(catalog_db):
    store = AnswerStore(catalog_db, 3600, DAY, retention_days=30)
    now = time.time()
    for request_id, age in (("fresh", 0), ("late", 1.5 * DAY), ("gone", 2.5 * DAY), ("signalled", 10 * DAY),
                            ("ancient", 40 * DAY)):
        shown = answer(now - age, "a", "b")
        store.remember("acme", request_id, ALICE, shown, "q")
        if request_id in ("signalled", "ancient"):
            store.record("acme", request_id, ALICE, shown, [("chunk", "c-a", "cited")], None, via="feedback")
    with catalog_db.tx() as conn:  # signals as old as their answers
        conn.execute(feedback.update().where(feedback.c.request_id == "ancient").values(reported_at=now - 40 * DAY))
    store.purge(now)
    left = {r["request_id"] for r in catalog_db.all(answers.select())}
    # Unsignalled answers live twice the longer window (a late report is told it is late); signalled ones and their
    # signals, the retention.
    assert left == {"fresh", "late", "signalled"}
    assert {s["request_id"] for s in store.signals("acme")} == {"signalled"}


def test_labels_count_each_answers_signals_once_and_not_helpful_answers_credit_nothing(catalog_db):
    store = AnswerStore(catalog_db, 0, DAY)
    log = FeedbackLog(store)
    now = time.time()

    def give(request_id: str, who: list, query: str, signals: list, helpful=None, age: float = 0) -> None:
        shown = answer(now - age, "a", "b", "c")
        store.remember("acme", request_id, who, shown, query)
        store.record("acme", request_id, who, shown, signals, helpful, via="feedback")

    # "a" for "Leave policy": three answers cite it (one twice, in a chunk and as a document: once).
    give("r1", ALICE, "Leave policy", [("chunk", "c-a", "cited"), ("doc", "a", "cited")])
    give("r2", BOB, "leave  POLICY", [("chunk", "c-a", "cited")])
    give("r3", ALICE, "leave policy", [("doc", "a", "clicked"), ("chunk", "c-b", "not_helpful")])
    # "b": two positives and one negative: short of 3.
    give("r4", BOB, "leave policy", [("chunk", "c-b", "cited"), ("doc", "b", "clicked")])
    # "c": three positives, but in answers called not helpful.
    give("r5", ALICE, "leave policy", [("chunk", "c-c", "cited"), ("doc", "c", "clicked"), ("doc", "c", "helpful")],
         helpful=False)
    # An old answer, before `since`.
    give("r6", BOB, "parking", [("doc", "a", "cited"), ("doc", "a", "clicked"), ("doc", "a", "helpful")], age=DAY)
    labels = log.labels("acme", 3, now - 3600, 100)
    assert [(q.text, q.relevant) for q in labels.queries] == [("Leave policy", {"a": 1})]
    assert labels.answers == 5
    assert {q.text for q in log.labels("acme", 3, 0, 100).queries} == {"Leave policy", "parking"}
    assert log.labels("acme", 4, 0, 100).queries == [] and log.labels("globex", 1, 0, 100).queries == []
