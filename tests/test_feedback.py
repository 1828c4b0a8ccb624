"""Feedback (issue 35) over a real `snapdex serve`: POST /feedback refuses, with its reason and storing nothing, an
answer of another tenant, a stale one, another principal's, and a chunk or document the answer did not hold; the
same signal twice counts once; the Python client and the LlamaIndex retriever report; queries with positive feedback
become a query set that evaluation runs and the gate judge; deleting a document deletes its feedback; a restart
keeps the answers and the feedback. One service for the module (restarted once, last)."""

from __future__ import annotations

import sqlite3
from contextlib import ExitStack

import pytest
from llama_index.core.schema import MetadataMode

from db import Database
from eval.answers import AnswerStore
from snapdex.client import Client, SnapdexError
from snapdex.llama import SnapdexRetriever
from harness.procs import auth, key_for, snapdex_serve, wait_until
from tests.test_access import bearer, keys_cli

TENANT, OTHER = "acme", "globex"
DELETER = "initech"  # the deletion test's own tenant: what it deletes stays out of the other tests' index
DOCS = [{"id": "leave", "text": "Parental leave lasts sixteen weeks with full pay for every employee."},
        {"id": "vpn", "text": "Staff reach the VPN through the north gateway with a hardware token."},
        {"id": "ledger", "text": "The finance ledger closes every quarter on the last Friday."},
        {"id": "lunch", "text": "The canteen serves lunch from noon until two in the afternoon."},
        {"id": "parking", "text": "Parking permits are renewed each January at the front desk."},
        {"id": "laptop", "text": "Laptops are replaced every three years by the IT service desk."}]
ADMIN = auth(TENANT)


class Served:
    def __init__(self, data) -> None:
        self.data, self.stack, self.svc = data, ExitStack(), None

    def start(self) -> None:
        self.svc = self.stack.enter_context(snapdex_serve(self.data, tenants=(TENANT, OTHER, DELETER), log_level="info",
                                                          SNAPDEX_GATE_FLOORS="{}"))

    def restart(self) -> None:
        self.stack.close()
        self.stack = ExitStack()
        self.start()

    def retrieve(self, query: str, headers=ADMIN, **body) -> dict:
        r = self.svc.client.post("/retrieve", json={"query": query, "top_k": 4, **body}, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    def feedback(self, body: dict, headers=ADMIN):
        return self.svc.client.post("/feedback", json=body, headers=headers)

    def signals(self, tenant: str = TENANT, request_id: str | None = None) -> list[dict]:
        db = Database(self.data / "catalog.sqlite3")
        try:
            return AnswerStore(db, 0, 0).signals(tenant, request_id)
        finally:
            db.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    box = Served(tmp_path_factory.mktemp("feedback") / "data")
    box.start()
    try:
        job = box.svc.client.post("/ingest", json={"documents": DOCS}, headers=ADMIN).json()["job_id"]
        box.snapshot = box.svc.wait_job(job, headers=ADMIN)["snapshot"]
        box.service = bearer(keys_cli(box.data, "create", "--tenant", TENANT, "--scope", "service"))
        box.alice = bearer(keys_cli(box.data, "create", "--tenant", TENANT, "--scope", "user", "--user", "alice@acme"))
        yield box
    finally:
        box.stack.close()


def refused(served: Served, body: dict, why: str, headers=ADMIN) -> None:
    """A 422 whose reason says `why`, and not one signal more in the catalog."""
    before = served.signals()
    r = served.feedback(body, headers)
    assert r.status_code == 422 and why in r.text, (body, r.status_code, r.text)
    assert served.signals() == before


def test_feedback_is_checked_and_counted_once(served):
    a = served.retrieve("how long is parental leave")
    first, second = a["hits"][0], a["hits"][1]
    body = {"request_id": a["request_id"], "helpful": True,
            "signals": [{"chunk_id": first["chunk_id"], "signal": "cited"},
                        {"doc_id": second["doc_id"], "signal": "clicked"}]}
    r = served.feedback(body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["snapshot"], out["recorded"], out["duplicates"], out["helpful"]) == (served.snapshot, 3, 0, True)
    assert [(s["chunk_id"], s["doc_id"], s["signal"], s["position"], s["new"]) for s in out["signals"]] == [
        (first["chunk_id"], first["doc_id"], "cited", 1, True), (None, second["doc_id"], "clicked", 2, True)]
    # Idempotent: the same signals again are stored once.
    again = served.feedback(body).json()
    assert (again["recorded"], again["duplicates"]) == (0, 3) and not any(s["new"] for s in again["signals"])
    stored = served.signals(request_id=a["request_id"])
    assert sorted((s["target"], s["signal"], s["position"], s["arm"], s["via"]) for s in stored) == [
        ("answer", "helpful", None, None, "feedback"), (f"chunk:{first['chunk_id']}", "cited", 1, None, "feedback"),
        (f"doc:{second['doc_id']}", "clicked", 2, None, "feedback")]
    # The answer's latest verdict stands.
    assert served.feedback({"request_id": a["request_id"], "helpful": False}).json()["recorded"] == 1
    assert [s["signal"] for s in served.signals(request_id=a["request_id"]) if s["target"] == "answer"] == [
        "not_helpful"]

    # A chunk or a document the answer did not hold: refused, naming it, and nothing of the report stored.
    other = next(d["id"] for d in DOCS if d["id"] not in {h["doc_id"] for h in a["hits"]})
    refused(served, {"request_id": a["request_id"], "signals": [
        {"chunk_id": first["chunk_id"], "signal": "helpful"}, {"chunk_id": "ab" * 32, "signal": "cited"},
        {"doc_id": other, "signal": "clicked"}]},
        f"'chunk_id {'ab' * 32}', 'doc_id {other}' not in answer {a['request_id']}")
    # Another tenant's answer: not one of this tenant's.
    refused(served, body, "no answer of this tenant has that id", headers=auth(OTHER))
    assert served.signals(OTHER) == []
    # A stale answer: given longer ago than SNAPDEX_FEEDBACK_WINDOW_S (a day; made 1.5 days old in the catalog).
    old = served.retrieve("when does the ledger close")
    with sqlite3.connect(served.data / "catalog.sqlite3") as conn:
        conn.execute("UPDATE answers SET answered_at = answered_at - 129600 WHERE request_id = ?", (old["request_id"],))
    refused(served, {"request_id": old["request_id"], "signals": [{"chunk_id": old["hits"][0]["chunk_id"],
                                                                   "signal": "cited"}]},
            "in the last 86400 s (SNAPDEX_FEEDBACK_WINDOW_S): it was answered 1296")
    # Bad bodies are refused at the edge, naming the field.
    for bad, field in (({"request_id": a["request_id"]}, "signals, helpful, or both"),
                       ({"request_id": a["request_id"], "signals": [{"chunk_id": first["chunk_id"],
                                                                     "doc_id": "leave", "signal": "cited"}]},
                        "exactly one of chunk_id and doc_id"),
                       ({"request_id": a["request_id"], "signals": [{"doc_id": "leave", "signal": "liked"}]},
                        "'cited', 'clicked', 'helpful' or 'not_helpful'"),
                       ({"request_id": "../x", "helpful": True}, "request_id")):
        refused(served, bad, field)


def test_a_principal_reports_only_on_what_it_was_shown(served):
    alice, bob = {"user": "alice@acme"}, {"user": "bob@acme"}
    shown = served.retrieve("reach the VPN gateway", headers=served.service, principal=alice)
    cite = {"request_id": shown["request_id"], "signals": [{"chunk_id": shown["hits"][0]["chunk_id"],
                                                            "signal": "cited"}]}
    why = "answered for another key or principal"
    refused(served, {**cite, "principal": bob}, why, headers=served.service)  # the service key, for someone else
    refused(served, cite, why, headers=served.alice)  # alice's own key: not the key the answer was given to
    refused(served, cite, why)  # the tenant's admin key
    r = served.feedback({**cite, "principal": alice}, headers=served.service)
    assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
    # A user key reports on its own answers; it may not name a principal.
    own = served.retrieve("reach the VPN gateway", headers=served.alice)
    r = served.feedback({"request_id": own["request_id"], "helpful": True}, headers=served.alice)
    assert r.status_code == 200, r.text
    r = served.feedback({"request_id": own["request_id"], "helpful": True, "principal": alice}, headers=served.alice)
    assert r.status_code == 403 and "user key" in r.text
    # Making a query set of feedback is the tenant admin's.
    r = served.svc.client.post("/eval/query-sets/prod/from-feedback", json={}, headers=served.alice)
    assert r.status_code == 403, r.text


QUESTIONS = {"how many weeks of parental leave": "leave", "when does the finance ledger close": "ledger",
             "which gateway reaches the VPN": "vpn", "when is lunch served": "lunch"}


def cite(sx: Client, question: str, doc: str, times: int) -> None:
    """`times` answers to `question`, each called helpful with a citation of `doc`."""
    for _ in range(times):
        answer = sx.retrieve(question, top_k=4)
        hit = next(h for h in answer.hits if h.doc_id == doc)
        out = sx.feedback(answer.request_id, [{"chunk_id": hit.chunk_id, "signal": "cited"}], helpful=True)
        assert out.recorded == 2


def test_positive_feedback_becomes_a_query_set_the_gate_runs(served):
    with Client(served.svc.url, api_key=key_for(TENANT)) as sx:
        for question, doc in QUESTIONS.items():
            cite(sx, question, doc, 2 if doc == "lunch" else 3)  # lunch: one short of min_signals
        # The parking question's citations come from answers their users called not helpful: they credit nothing.
        for _ in range(3):
            answer = sx.retrieve("where do I renew a parking permit", top_k=4)
            sx.feedback(answer.request_id, [{"doc_id": "parking", "signal": "cited"}], helpful=False)
        # The LlamaIndex retriever reports on the nodes it gave (a hit's by its chunk).
        retriever = SnapdexRetriever(sx, top_k=4)
        nodes = retriever.retrieve("laptops replaced by the IT desk")
        cited = [n for n in nodes if n.node.metadata["doc_id"] == "laptop"]
        assert retriever.feedback(cited, helpful=True).signals[0].chunk_id == cited[0].node.id_
        assert nodes[0].node.metadata["request_id"] not in nodes[0].node.get_content(MetadataMode.LLM)
        with pytest.raises(SnapdexError) as e:  # the future: nothing since
            sx.query_set_from_feedback("prod", since="2999-01-01T00:00:00Z")
        assert e.value.status == 422 and "no query has a document credited" in str(e.value.detail)
        made = sx.query_set_from_feedback("prod", min_signals=3)
    assert made.created and made.evaluation == "queued" and made.queries == 3, made
    assert made.answers >= 15 and made.signals >= made.answers - 5
    c = served.svc.client
    items = c.get("/eval/query-sets/prod", headers=ADMIN).json()["items"]
    assert {i["text"]: i["relevant"] for i in items} == {q: {d: 1} for q, d in QUESTIONS.items() if d != "lunch"}
    # The same feedback again (at the path without /eval, which serves the same route): the same content, not a
    # new version.
    r = c.post("/query-sets/prod/from-feedback", json={"min_signals": 3}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["version"] == made.version, r.text
    # Evaluation runs it on the live snapshot: every labelled document is found.
    run = wait_until(lambda: next((r for r in c.get("/eval/runs", headers=ADMIN).json()["runs"]
                                   if r["query_set"] == "prod" and r["status"] == "done"), None), 120, "prod's run")
    assert run["snapshot"] == served.snapshot and run["metrics"]["recall@10"] == 1.0
    # The query text stays out of the logs.
    log = served.svc.log.read_text()
    assert '"feedback"' in log and not [q for q in QUESTIONS if q in log]


def test_deleting_a_document_deletes_its_feedback_and_the_gate_judges_on_it(served):
    c, h = served.svc.client, auth(DELETER)
    snapshot = served.svc.wait_job(c.post("/ingest", json={"documents": DOCS}, headers=h).json()["job_id"],
                                   headers=h)["snapshot"]
    with Client(served.svc.url, api_key=key_for(DELETER)) as sx:
        for question, doc in QUESTIONS.items():
            if doc != "lunch":
                cite(sx, question, doc, 3)
    assert {"leave", "ledger", "vpn"} <= {s["doc_id"] for s in served.signals(DELETER)}
    assert c.delete("/documents/ledger", headers=h).status_code == 202
    assert "ledger" not in {s["doc_id"] for s in served.signals(DELETER)}
    assert {"leave", "vpn"} <= {s["doc_id"] for s in served.signals(DELETER)}
    r = c.post("/eval/query-sets/prod/from-feedback", json={"min_signals": 3}, headers=h)
    assert r.status_code == 201 and r.json()["queries"] == 2, r.text
    # The build the deletion queued is judged by the gate on the set made of feedback.
    verdict = wait_until(lambda: next((s["gate"] for s in c.get("/snapshots", headers=h).json()["snapshots"]
                                       if s["hash"] != snapshot and s.get("gate")), None), 180, "the verdict")
    assert {(ch["query_set"], ch["version"]) for ch in verdict["checks"]} >= {("prod", r.json()["version"])}


def test_a_restart_keeps_answers_and_feedback(served):
    a = served.retrieve("how long is parental leave")
    body = {"request_id": a["request_id"], "signals": [{"chunk_id": a["hits"][0]["chunk_id"], "signal": "clicked"}]}
    assert served.feedback(body).json()["recorded"] == 1
    later = served.retrieve("reach the VPN gateway")
    before = served.signals()
    served.restart()
    assert served.signals() == before
    assert served.feedback(body).json()["duplicates"] == 1  # stored before the restart: counted once
    r = served.feedback({"request_id": later["request_id"], "helpful": True})  # answered before it
    assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
