"""Fuzzing the OpenAPI surface with schemathesis against the real `snapdex serve`: no 5xx, every status code
documented, every body and header as the schema says."""

from __future__ import annotations

import copy
import json

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis not installed (dev extra)")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import checks  # noqa: E402

from harness.procs import snapdex_serve  # noqa: E402

pytestmark = pytest.mark.slow

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with snapdex_serve(tmp_path_factory.mktemp("fuzz") / "data") as svc:
        # Something to find: a live snapshot, so /retrieve and the snapshot routes reach their real work.
        job = svc.client.post("/ingest", json={"documents": [
            {"id": "refunds", "text": "Refunds take five to seven business days."},
            {"id": "vpn", "text": "The VPN client must be updated before connecting from abroad."}]}).json()["job_id"]
        svc.wait_job(job)
        yield svc


def _schema():
    from api.main import create_app

    # The document the service serves at /openapi.json, built without starting it (collection time).
    return schemathesis.openapi.from_dict(create_app().openapi())


schema = _schema()


@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_answers_as_documented(case, service):
    case.call_and_validate(base_url=service.url, checks=CHECKS)


# --- hostile values in every operation: what JSON can write but nothing here can store ----------------------------
# Each is JSON text put in place of one generated value (written by hand: a client's JSON encoder would refuse or
# rewrite most of them), or a parameter's text.
HOSTILE_JSON = ["NaN", "Infinity", "-Infinity", "1e309", "-1e400", str(2**63), str(-(2**63) - 1), "9" * 5000,
                '"\\ud800"', '"a\\udfffb"', '"nul\\u0000"', "[" * 5000 + "]" * 5000]
HOSTILE_KEYS = ['"\\udc00"', '"a\\u0000"', '"line\\nfeed"']
HOSTILE_PARAMS = ["NaN", "-Infinity", "1e309", str(2**64), str(-(2**63) - 1), "9" * 5000, "nul\x00", "bell\x07",
                  '{"x": NaN}', '{"x": 1e309}', '{"x": "\\ud800"}', '{"x": %d}' % 2**64, '{"\\ud800": 1}']
HOSTILE_PRINCIPALS = ['{"user": "\\ud800"}', '{"user": NaN}', '{"groups": [1e309]}', '{"user": "a\\u0000"}',
                      '{"groups": ["%s"]}' % ("[" * 2000)]
_SENTINEL = "\u2063hostile\u2063"


def _paths(value, at=()):
    yield at
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*at, key))


def _hostile_body(body, pick: int, token: str, as_key: bool) -> bytes:
    """`body` as JSON text with the value at one of its places (or a new key of an object there) being `token`."""
    body = copy.deepcopy(body)
    paths = list(_paths(body))
    at = paths[pick % len(paths)]
    if not at:
        return token.encode() if not as_key else ("{%s: 1}" % token).encode()
    parent = body
    for key in at[:-1]:
        parent = parent[key]
    if as_key and isinstance(parent, dict):
        parent[_SENTINEL] = 1
    else:
        parent[at[-1]] = _SENTINEL
    return json.dumps(body).replace(json.dumps(_SENTINEL), token, 1).encode()


def flatmap_case(context, case):
    """A generated case with one hostile value: in its JSON body (a value or a key), a query or path parameter, or
    the principal header."""
    parts = [p for p, present in (
        ("body", case.media_type == "application/json" and isinstance(case.body, (dict, list))),
        ("query", bool(case.query)), ("path", bool(case.path_parameters)),
        ("header", any(h.name == "x-snapdex-principal" for h in case.operation.headers))) if present]

    def mutate(choice):  # each draw of the case strategy makes a new case: changed in place, it is drawn once
        part, pick, token = choice
        hostile = case
        if part == "body":
            as_key = pick % 3 == 0
            tokens = HOSTILE_KEYS if as_key else HOSTILE_JSON
            hostile.body = _hostile_body(case.body, pick // 3, tokens[token % len(tokens)], as_key)
        elif part in ("query", "path"):
            params = dict(case.query if part == "query" else case.path_parameters)
            name = sorted(params)[pick % len(params)]
            params[name] = HOSTILE_PARAMS[token % len(HOSTILE_PARAMS)]
            setattr(hostile, "query" if part == "query" else "path_parameters", params)
        else:
            principal = HOSTILE_PRINCIPALS[token % len(HOSTILE_PRINCIPALS)]
            hostile.headers = {**case.headers, "X-Snapdex-Principal": principal}
        return hostile

    if not parts:
        return st.just(case)
    return st.tuples(st.sampled_from(parts), st.integers(0, 2**16), st.integers(0, 2**16)).map(mutate)


@schema.hooks.apply(flatmap_case)
@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_hostile_values_never_answer_5xx(case, service):
    """Non-finite numbers, integers past 64 bits, lone surrogates, NUL and control characters, deep nesting: a 4xx
    as documented, on every operation, never a 5xx."""
    case.call_and_validate(base_url=service.url, checks=[checks.not_a_server_error, checks.status_code_conformance,
                                                         checks.content_type_conformance,
                                                         checks.response_schema_conformance])


def test_the_longest_query_strings_the_api_accepts_reach_it(service):
    """`filters` and `cursor` at their length limits, in 4-byte characters, percent-encoded: the request head stays
    below what the HTTP server parses (past ~64 KiB it answers a plain-text 400 no route can shape), so the route
    answers, with JSON."""
    import socket
    from urllib.parse import quote, urlsplit

    url = urlsplit(service.url)
    big = quote(chr(0x1D47B) * 1000)
    head = (f"GET /documents?filters={big}&cursor={big} HTTP/1.1\r\nHost: {url.hostname}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert status.split()[1] == b"422" and b"content-type: application/json" in rest.lower(), answer[:300]
