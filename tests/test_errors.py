"""Errors in one place (api/errors.py): a domain error is answered with its status wherever it is raised, and any
other exception escaping a route, a ValueError or a LookupError included, is a bug: a 500 naming the request id,
its message kept for the log."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from errors import InvalidInput
from eval.metrics import drilldown
from store.base import StoreUnavailable
from harness.helpers import ingest, make_runtime, text_doc


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    rt = make_runtime(tmp_path_factory.mktemp("errors"))
    ingest(rt, [text_doc("a", "Alpha doc\n\nSome words about alpha here.")])
    with TestClient(create_app(runtime=rt)) as client:
        yield rt, client


def _raising(error: Exception):
    def raise_it(*args, **kwargs):
        raise error
    return raise_it


@pytest.mark.parametrize("error", [ValueError("bad thing at 0x7f3a"), LookupError("no row 0x7f3a"),
                                   KeyError("slot 0x7f3a")])
def test_an_unexpected_error_inside_a_route_is_a_500_naming_the_request_id(served, monkeypatch, caplog, error):
    """/retrieve answered any ValueError with a 422 quoting it, /snapshots/rollback any LookupError with a 409: a
    bug looked like bad input. Now only InvalidInput is a 422; the rest is the middleware's 500 (api/metrics.py)."""
    rt, client = served
    monkeypatch.setattr(rt.searcher, "search", _raising(error))
    monkeypatch.setattr(rt.snapshots, "rollback", _raising(error))
    with caplog.at_level(logging.ERROR, logger="api.metrics"):
        for method, path, body in (("POST", "/retrieve", {"query": "alpha"}), ("POST", "/snapshots/rollback", None)):
            r = client.request(method, path, json=body, headers={"X-Request-ID": "req-errors-1"})
            assert r.status_code == 500, (path, r.text)
            assert r.headers["x-request-id"] == "req-errors-1"
            assert r.json() == {"detail": "internal error; report request id req-errors-1"}  # nothing of the error
    assert "0x7f3a" in caplog.text  # the trace is in the log, under the same id


def test_a_domain_error_is_answered_with_its_status_from_any_route(served, monkeypatch):
    """The vector store down is a 503 with Retry-After, its own message (addresses) kept back, wherever it is met:
    it was a 503 on /retrieve only (a 500 elsewhere)."""
    rt, client = served
    down = StoreUnavailable("qdrant at 10.0.0.3:6333 refused the connection", retry_after=2.5)
    monkeypatch.setattr(rt.searcher, "search", _raising(down))
    monkeypatch.setattr(rt.snapshots, "rollback", _raising(down))
    for method, path, body in (("POST", "/retrieve", {"query": "alpha"}), ("POST", "/snapshots/rollback", None)):
        r = client.request(method, path, json=body)
        assert (r.status_code, r.headers["retry-after"], r.json()) == (503, "2", {"detail": "vector store unavailable"})


def test_real_input_errors_keep_their_status_and_detail(served):
    """Raised deep (store/, ingest/, index_snapshots/, sources/), answered as before: a sentence, or a refusal naming
    the field when the raiser knows it."""
    rt, client = served
    r = client.post("/retrieve", json={"query": "alpha", "filters": {"team": "hr"}})
    assert r.status_code == 422 and r.json()["detail"].startswith("filter key 'team' is not a filterable field")
    r = client.post("/retrieve", json={"query": "alpha", "snapshot": "0" * 64})
    assert r.status_code == 404 and r.json()["detail"] == f"snapshot {'0' * 64} of tenant default is unknown; " \
                                                          "readable: candidate, live, retired"
    assert client.post("/snapshots/rollback").status_code == 409
    assert client.post(f"/snapshots/{'0' * 64}/promote").json() == {
        "detail": f"snapshot {'0' * 64} of tenant default does not exist"}  # a KeyError's quotes are not shown
    r = client.post("/sources", json={"name": "s", "kind": "folder", "config": {"path": "/nowhere"},
                                      "schedule": "every day"})
    assert r.status_code == 422 and r.json()["detail"] == [{
        "type": "schedule", "loc": ["body", "schedule"],
        "msg": "schedule 'every day' is not a cron expression of five fields (minute hour day-of-month month "
               "day-of-week), e.g. \"*/30 * * * *\""}]
    assert client.get("/snapshots", headers={"X-Tenant": "Bad Name"}).status_code == 422
    # A library's own ValueError on input (urllib, int()) is turned into InvalidInput where it is met, not a 500.
    r = client.post("/webhooks", json={"url": "http://[::1/hook", "events": ["snapshot.held"]})
    assert (r.status_code, r.json()) == (422, {"detail": "Invalid IPv6 URL"})
    with pytest.raises(InvalidInput, match="metric must be named 'name@k'"):
        drilldown([], [], "recall@²", {})
