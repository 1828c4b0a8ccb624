"""Rewriters against a real OpenAI-compatible HTTP server on localhost, so headers, bodies, timeouts and status codes
go through httpx exactly as they would in production."""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from retrieval.rewrite import CACHE_SIZE, LLMRewriter, NormalizeRewriter
from retrieval.types import RewrittenQuery

FAST = 0.3  # client timeout; every slow reply sleeps well past it


class FakeLLM:
    """Replies chosen by the user message: `script[query]` is a str (the content), or a tuple
    ("status", code) / ("sleep", seconds) / ("raw", bytes) / ("json", obj). Unscripted queries get DEFAULT_REPLY."""

    DEFAULT_REPLY = "alpha phrasing\nbeta phrasing\ngamma phrasing"

    def __init__(self) -> None:
        self.script: dict[str, object] = {}
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                body = json.loads(raw)
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path != "/v1/chat/completions":
                    return self._send(404, b"{}")
                query = body["messages"][-1]["content"]
                action = fake.script.get(query, fake.DEFAULT_REPLY)
                if isinstance(action, str):
                    payload = {"choices": [{"index": 0, "message": {"role": "assistant", "content": action}}]}
                    return self._send(200, json.dumps(payload).encode())
                kind, arg = action
                if kind == "status":
                    return self._send(arg, b'{"error": "boom"}')
                if kind == "sleep":
                    fake._stop.wait(arg)  # an Event, so shutting the server down does not wait out the sleep
                    return self._send(200, b"{}")
                if kind == "raw":
                    return self._send(200, arg)
                if kind == "json":
                    return self._send(200, json.dumps(arg).encode())
                raise AssertionError(f"unknown action {action!r}")

            def _send(self, code: int, data: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up, which is what the timeout tests want

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
        self.script.clear()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def _llm_server():
    fake = FakeLLM()
    yield fake
    fake.close()


@pytest.fixture
def llm(_llm_server: FakeLLM) -> FakeLLM:
    _llm_server.reset()
    return _llm_server


def make(llm: FakeLLM, **kw) -> LLMRewriter:
    kw.setdefault("timeout_s", FAST)
    return LLMRewriter(llm.base_url, "fake-model", **kw)


# --- NormalizeRewriter ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ＣＯＶＩＤ－１９ vaccine", "COVID-19 vaccine"),         # full-width letters, digits and hyphen
        ("ﬁbre optics", "fibre optics"),                        # ligature
        ("zero\u200bwidth\u200d join\ufeff", "zerowidth join"),
        ("\ttabs\tand\nnew\r\nlines  ", "tabs and new lines"),
        ("bell\x07 and\x00 nul\x1b", "bell and nul"),
        ("non\u00a0breaking\u3000space", "non breaking space"),
        ("Q: keep \"quotes\" and prefix?", "Q: keep \"quotes\" and prefix?"),
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    r = NormalizeRewriter().rewrite(raw)
    assert r == RewrittenQuery(lexical=expected, dense=(expected,))
    assert r.notes == {}


def test_normalize_is_idempotent_and_has_a_recipe() -> None:
    n = NormalizeRewriter()
    once = n.rewrite(" ｆｏｏ\u200b\tbar ").lexical
    assert n.rewrite(once).lexical == once == "foo bar"
    assert n.name == "normalize"
    assert n.recipe()["name"] == "normalize"


# --- LLMRewriter: requests ----------------------------------------------------------------------------------------


def test_request_shape_and_auth_header(llm: FakeLLM) -> None:
    make(llm, api_key="sk-secret", n_queries=2).rewrite("what is bm25")
    (req,) = llm.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-secret"
    body = req["body"]
    assert body["model"] == "fake-model"
    assert body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and "2 alternative phrasings" in system["content"]
    assert user == {"role": "user", "content": "what is bm25"}


def test_no_auth_header_without_key(llm: FakeLLM) -> None:
    make(llm).rewrite("q1")
    make(llm, api_key="").rewrite("q2")
    assert [r["headers"].get("Authorization") for r in llm.requests] == [None, None]


def test_trailing_slash_in_base_url(llm: FakeLLM) -> None:
    r = LLMRewriter(llm.base_url + "/", "fake-model", timeout_s=FAST).rewrite("q")
    assert "error" not in r.notes
    assert llm.requests[0]["path"] == "/v1/chat/completions"


# --- LLMRewriter: multi_query parsing -----------------------------------------------------------------------------


def test_multi_query_plain_lines(llm: FakeLLM) -> None:
    r = make(llm).rewrite("original query")
    assert r.dense == ("original query", "alpha phrasing", "beta phrasing", "gamma phrasing")
    assert r.lexical == "original query alpha phrasing beta phrasing gamma phrasing"
    assert r.notes == {"mode": "multi_query", "n": 3}


def test_multi_query_strips_numbering_and_bullets(llm: FakeLLM) -> None:
    llm.script["q"] = "Here are three phrasings:\n\n1. first one\n2) second one\n(3) third one"
    assert make(llm).rewrite("q").dense == ("q", "first one", "second one", "third one")

    llm.script["q2"] = "- dash item\n* star item\n• dot item\n"
    assert make(llm).rewrite("q2").dense == ("q2", "dash item", "star item", "dot item")


def test_multi_query_keeps_numbers_that_are_not_markers(llm: FakeLLM) -> None:
    llm.script["cpu"] = '1.5 GHz processor\n"quoted phrasing"\n-based approach'
    assert make(llm).rewrite("cpu").dense == ("cpu", "1.5 GHz processor", "quoted phrasing", "-based approach")


def test_multi_query_drops_duplicates_and_echo(llm: FakeLLM) -> None:
    llm.script["Heart Attack"] = "1. heart attack\n2. myocardial infarction\n3. Myocardial  Infarction\n4. cardiac arrest"
    r = make(llm).rewrite("Heart Attack")
    assert r.dense == ("Heart Attack", "myocardial infarction", "cardiac arrest")
    assert r.notes["n"] == 2


def test_multi_query_keeps_at_most_n(llm: FakeLLM) -> None:
    llm.script["q"] = "\n".join(f"{i}. phrasing {i}" for i in range(1, 9))
    r = make(llm, n_queries=2).rewrite("q")
    assert r.dense == ("q", "phrasing 1", "phrasing 2")
    assert r.lexical == "q phrasing 1 phrasing 2"


def test_notes_carry_no_query_text(llm: FakeLLM) -> None:
    r = make(llm).rewrite("a private question")
    assert "private" not in json.dumps(r.notes)


# --- LLMRewriter: hyde --------------------------------------------------------------------------------------------


def test_hyde(llm: FakeLLM) -> None:
    passage = "BM25 is a ranking function.\nIt scores documents by term frequency."
    llm.script["what is bm25"] = f"  {passage}\n"
    r = make(llm, mode="hyde").rewrite("what is bm25")
    assert r.lexical == "what is bm25"
    assert r.dense == ("what is bm25", passage)
    assert r.notes == {"mode": "hyde", "n": 1}
    system = llm.requests[0]["body"]["messages"][0]["content"]
    assert "passage" in system


# --- LLMRewriter: failures fall back to the query -----------------------------------------------------------------


def assert_fallback(r: RewrittenQuery, query: str, error: str) -> None:
    assert r.lexical == query
    assert r.dense == (query,)
    assert r.notes["fallback"] is True
    assert error in r.notes["error"]


def test_timeout_falls_back(llm: FakeLLM) -> None:
    llm.script["slow"] = ("sleep", 3.0)
    assert_fallback(make(llm).rewrite("slow"), "slow", "timeout")


def test_http_500_falls_back(llm: FakeLLM) -> None:
    llm.script["q"] = ("status", 500)
    assert_fallback(make(llm).rewrite("q"), "q", "http 500")


def test_http_404_falls_back(llm: FakeLLM) -> None:
    r = LLMRewriter(llm.base_url + "/nope", "fake-model", timeout_s=FAST).rewrite("q")
    assert_fallback(r, "q", "http 404")


@pytest.mark.parametrize(
    "action, error",
    [
        (("raw", b"this is not json"), "malformed json"),
        (("json", {"id": "x"}), "malformed reply"),
        (("json", {"choices": []}), "malformed reply"),
        (("json", ["a", "list"]), "malformed reply"),
        (("json", {"choices": [{"message": {"content": None}}]}), "malformed reply"),
        ("   \n ", "empty reply"),
    ],
)
def test_malformed_reply_falls_back(llm: FakeLLM, action: object, error: str) -> None:
    llm.script["q"] = action
    assert_fallback(make(llm).rewrite("q"), "q", error)


def test_connection_refused_falls_back() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = LLMRewriter(f"http://127.0.0.1:{port}/v1", "m", timeout_s=FAST).rewrite("q")
    assert_fallback(r, "q", "connection error")


def test_closed_client_does_not_raise(llm: FakeLLM) -> None:
    rw = make(llm)
    rw.close()
    assert rw.rewrite("q").notes["fallback"] is True


# --- LLMRewriter: cache -------------------------------------------------------------------------------------------


def test_cache_skips_second_request(llm: FakeLLM) -> None:
    rw = make(llm)
    first = rw.rewrite("cached query")
    first.notes["scribble"] = 1
    second = rw.rewrite("cached query")
    assert llm.calls() == 1
    assert second == first
    assert second.notes == {"mode": "multi_query", "n": 3}
    rw.rewrite("another query")
    assert llm.calls() == 2


def test_cache_is_per_instance_mode(llm: FakeLLM) -> None:
    llm.script["q"] = "a passage"
    make(llm, mode="hyde").rewrite("q")
    make(llm).rewrite("q")
    assert llm.calls() == 2


def test_failures_are_not_cached(llm: FakeLLM) -> None:
    rw = make(llm)
    llm.script["flaky"] = ("status", 500)
    assert rw.rewrite("flaky").notes["fallback"] is True
    del llm.script["flaky"]
    r = rw.rewrite("flaky")
    assert r.notes == {"mode": "multi_query", "n": 3}
    assert llm.calls() == 2
    rw.rewrite("flaky")
    assert llm.calls() == 2


def test_cache_is_bounded(llm: FakeLLM) -> None:
    rw = make(llm)
    rw.rewrite("oldest")
    # Filling the cache through the server would take thousands of requests; the bound is what matters here.
    with rw._lock:
        for i in range(CACHE_SIZE):
            rw._cache[("multi_query", "fake-model", f"filler {i}")] = RewrittenQuery("x", ("x",))
    rw.rewrite("newest")
    assert len(rw._cache) == CACHE_SIZE
    calls = llm.calls()
    rw.rewrite("oldest")
    assert llm.calls() == calls + 1


def test_empty_query_makes_no_request(llm: FakeLLM) -> None:
    r = make(llm).rewrite("   ")
    assert r.dense == ("   ",) and r.notes.get("fallback") is None
    assert llm.calls() == 0


def test_concurrent_use(llm: FakeLLM) -> None:
    rw = make(llm, timeout_s=2.0)
    queries = [f"query {i % 4}" for i in range(16)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(rw.rewrite, queries))
    assert all(r.notes == {"mode": "multi_query", "n": 3} for r in results)
    assert all(r.dense[0] == q for r, q in zip(results, queries))
    assert 4 <= llm.calls() <= 16


def test_caller_supplied_client_is_used_and_left_open(llm: FakeLLM) -> None:
    seen = []
    with httpx.Client(event_hooks={"request": [seen.append]}) as client:
        rw = make(llm, client=client)
        assert rw.rewrite("q").notes["n"] == 3
        rw.close()
        assert not client.is_closed
    assert len(seen) == 1


# --- LLMRewriter: validation and recipe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, names",
    [
        ({"mode": "rag-fusion"}, ["'rag-fusion'", "multi_query", "hyde"]),
        ({"n_queries": 0}, ["n_queries=0", "[1, 8]"]),
        ({"n_queries": 9}, ["n_queries=9"]),
        ({"n_queries": True}, ["n_queries=True"]),
        ({"timeout_s": 0}, ["timeout_s=0"]),
        ({"timeout_s": -1.0}, ["timeout_s=-1.0"]),
        ({"base_url": "localhost:8000/v1"}, ["'localhost:8000/v1'", "http://"]),
        ({"base_url": "ftp://host/v1"}, ["'ftp://host/v1'"]),
        ({"model": ""}, ["model=''"]),
    ],
)
def test_validation(kw: dict, names: list[str]) -> None:
    args = {"base_url": "http://127.0.0.1:9/v1", "model": "m", **kw}
    with pytest.raises(ValueError) as e:
        LLMRewriter(**args)
    for name in names:
        assert name in str(e.value)


def test_recipe_has_no_secret() -> None:
    rw = LLMRewriter("https://user:pw@llm.example/v1/", "m", api_key="sk-secret", mode="hyde", n_queries=5, timeout_s=1)
    recipe = rw.recipe()
    assert recipe == {
        "name": "llm",
        "mode": "hyde",
        "model": "m",
        "base_url": "https://llm.example/v1",
        "n_queries": 5,
        "timeout_s": 1.0,
    }
    assert "sk-secret" not in json.dumps(recipe) and "pw" not in json.dumps(recipe)
    rw.close()
