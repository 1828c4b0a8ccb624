"""Webhook signatures, URL checks and settings, without a server: the service's signer and the README's verifier
agree, tampering and age are caught, and non-public addresses are refused."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from notify.signing import sign, verify
from notify.urls import check_webhook_url
from snapdex.settings import Settings
from tests.test_webhooks_e2e import readme_verifier

BODY = b'{"data":{},"id":"evt_1","tenant":"acme","type":"webhook.test"}'


def test_the_service_signature_verifies_with_the_readme_snippet_and_nothing_else():
    readme = readme_verifier()
    header = sign("whsec_abc", BODY)
    assert readme("whsec_abc", BODY, header) and verify("whsec_abc", BODY, header)
    assert not readme("whsec_abc", BODY + b" ", header) and not verify("whsec_abc", BODY + b" ", header)
    assert not readme("whsec_other", BODY, header)
    t = int(time.time())
    assert header.startswith(f"t={t}") or header.startswith(f"t={t - 1}")
    stale = sign("whsec_abc", BODY, t - 600)
    assert not readme("whsec_abc", BODY, stale) and not verify("whsec_abc", BODY, stale)
    # A rotated secret may sign with several v1 values; any one that matches verifies.
    both = sign("whsec_abc", BODY, t) + ",v1=" + "0" * 64
    assert readme("whsec_abc", BODY, both) and verify("whsec_abc", BODY, both)
    for broken in ("", "t=abc,v1=00", f"v1={'0' * 64}", f"t={t},t={t},v1=00"):
        assert not readme("whsec_abc", BODY, broken) and not verify("whsec_abc", BODY, broken)


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://localhost:8080/x", "http://10.1.2.3/",
                                 "http://192.168.0.1/", "http://169.254.169.254/latest/meta-data", "http://[::1]/",
                                 "http://0.0.0.0/", "http://[fe80::1]/"])
def test_non_public_addresses_are_refused_unless_allowed(url):
    with pytest.raises(ValueError, match="loopback, link-local or private.*SNAPDEX_WEBHOOK_ALLOW_PRIVATE"):
        check_webhook_url(url, allow_private=False)
    assert check_webhook_url(url, allow_private=True) == url


@pytest.mark.parametrize("url, says", [("ftp://example.com/", "http:// or https://"), ("/relative", "http://"),
                                       ("https://user:pw@example.com/", "credentials")])
def test_bad_urls_say_why(url, says):
    with pytest.raises(ValueError, match=says):
        check_webhook_url(url, allow_private=True)


def test_the_retry_schedule_is_checked_and_sums_to_about_a_day(tmp_path):
    assert 23 * 3600 < sum(Settings(data_dir=tmp_path).webhook_retry_schedule_s) < 25 * 3600
    with pytest.raises(ValidationError, match=r"\[-1.0\] out of range"):
        Settings(data_dir=tmp_path, webhook_retry_schedule_s=[1, -1])
