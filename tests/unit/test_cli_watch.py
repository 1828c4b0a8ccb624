"""`snapdex ingest` watching its jobs: a status read that fails for a moment is asked again, not a traceback."""

from __future__ import annotations

import httpx
import pytest

from snapdex import cli


def _view(status: str, done: int) -> dict:
    return {"job_id": "a", "status": status, "progress": {"documents_total": 2, "documents_done": done,
                                                          "chunks_done": done}, "counts": {}, "snapshot": None}


def _client(answers: list) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        code, body = answer
        return httpx.Response(code, json=body)

    return httpx.Client(base_url="http://snapdex", transport=httpx.MockTransport(handle))


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(cli, "POLL_S", 0.0)


def test_a_5xx_or_a_dropped_connection_is_polled_again():
    answers = [(500, {"detail": "internal error"}), httpx.ConnectError("reset"), (200, _view("running", 1)),
               (503, {"detail": "busy"}), (200, _view("succeeded", 2))]
    views = cli._watch_jobs(_client(answers), ["a"], quiet=True)
    assert views["a"]["status"] == "succeeded" and views["a"]["progress"]["documents_done"] == 2


def test_a_4xx_ends_the_watch_with_the_answer():
    with pytest.raises(SystemExit, match=r"reading job a failed \(404\).*no such job"):
        cli._watch_jobs(_client([(404, {"detail": "no such job"})]), ["a"], quiet=True)


def test_a_status_that_never_comes_back_gives_up_naming_the_jobs(monkeypatch):
    monkeypatch.setattr(cli, "POLL_MISSES", 3)
    with pytest.raises(SystemExit, match=r"3 times in a row; last: 500.*GET /jobs/\{id\} for a"):
        cli._watch_jobs(_client([(500, {"detail": "down"})]), ["a"], quiet=True)


def test_a_settled_job_is_not_asked_again_while_the_others_run():
    asked: list[str] = []
    runs = {"a": ["succeeded"], "b": ["running", "running", "running", "succeeded"]}

    def handle(request: httpx.Request) -> httpx.Response:
        job = request.url.path.rsplit("/", 1)[1]
        asked.append(job)
        status = runs[job].pop(0) if len(runs[job]) > 1 else runs[job][0]
        return httpx.Response(200, json={**_view(status, 2 if status == "succeeded" else 1), "job_id": job})

    client = httpx.Client(base_url="http://snapdex", transport=httpx.MockTransport(handle))
    views = cli._watch_jobs(client, ["a", "b"], quiet=True)
    assert {j: v["status"] for j, v in views.items()} == {"a": "succeeded", "b": "succeeded"}
    assert asked.count("a") == 1 and asked.count("b") == 4
