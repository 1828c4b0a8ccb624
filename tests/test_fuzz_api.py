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
