"""Fuzzing the OpenAPI surface with schemathesis against the real `snapdex serve`: no 5xx, every status code
documented, every body and header as the schema says."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis not installed (dev extra)")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from tests.procs import snapdex_serve  # noqa: E402

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
