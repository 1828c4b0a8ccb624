"""API keys at rest and the caller they name: hashed, one tenant each, revocable, never keyless again."""

from __future__ import annotations

import time

import pytest

from sqlalchemy import select

from api.auth import Principal, presented_key
from db.tables import api_keys
from snapdex import keys as keys_module
from snapdex.keys import KeyStore, check_configured, digest


@pytest.fixture
def store(catalog_db):
    return KeyStore(catalog_db)


def test_a_new_key_is_found_by_its_tenant_and_only_its_hash_is_stored(store):
    assert not store.required()
    key, made = store.create("acme", "ci")
    assert key.startswith(f"sdx_{made.id}_") and len(key) > 40
    assert store.required()
    assert store.find(key) == made.__class__(made.id, "acme", "ci", made.created_at)
    assert store.find(key + "x") is None and store.find("") is None
    rows = store.db.all(select(api_keys))
    assert [r["sha256"] for r in rows] == [digest(key)]
    assert key not in repr([dict(r) for r in rows])


def test_operator_keys_have_no_tenant_and_bad_tenants_are_refused(store):
    key, made = store.create(None, "prometheus")
    assert made.operator and store.find(key).operator
    with pytest.raises(ValueError, match="invalid"):
        store.create("Not A Tenant")


def test_revoked_keys_stop_working_but_keys_stay_required(store, monkeypatch):
    monkeypatch.setattr(keys_module, "CACHE_S", 0.05)
    store = KeyStore(store.db)  # caches built with the short lifetime
    key, made = store.create("acme")
    assert store.find(key) is not None
    assert store.revoke(made.id).revoked_at is not None
    time.sleep(0.1)
    assert store.find(key) is None
    assert store.required()  # revoking the last key must not open the service
    assert store.revoke("nope") is None
    assert [k.id for k in store.list()] == [] and [k.id for k in store.list(include_revoked=True)] == [made.id]


def test_an_entry_expiring_between_two_looks_is_read_again_not_an_error(store):
    """Every cache read here sees time move past the entry's lifetime: each lookup must go back to the catalog
    rather than find its entry gone (a KeyError that made GET /jobs answer 500 in a benchmark run)."""
    from itertools import count

    from cachetools import TTLCache

    ticks = count(step=10)
    store._required = TTLCache(maxsize=1, ttl=1, timer=lambda: next(ticks))
    store._found = TTLCache(maxsize=10, ttl=1, timer=lambda: next(ticks))
    assert not store.required() and not store.required()
    key, made = store.create("acme")
    for _ in range(3):
        assert store.required() and store.find(key).id == made.id and store.find(key + "x") is None


def test_keys_from_the_settings_are_hashes_with_a_tenant_or_the_operator(catalog_db):
    a, op = digest("key-a"), digest("key-op")
    store = KeyStore(catalog_db, {a: "acme", op: "*"})
    assert store.required()
    assert store.find("key-a").tenant == "acme" and store.find("key-a").source == "settings"
    assert store.find("key-op").operator
    assert store.find(a) is None  # the hash itself is not a key
    with pytest.raises(ValueError, match="not a SHA-256"):
        check_configured({"plaintext-key": "acme"})
    with pytest.raises(ValueError, match="invalid"):
        check_configured({a: "Bad Tenant"})


def test_the_key_is_read_from_bearer_x_api_key_or_the_dashboard_cookie():
    assert presented_key({b"authorization": b"Bearer abc"}) == "abc"
    assert presented_key({b"authorization": b"bearer  abc "}) == "abc"
    assert presented_key({b"x-api-key": b"xyz"}) == "xyz"
    assert presented_key({b"cookie": b"theme=dark; snapdex_key=k1"}) == "k1"
    assert presented_key({b"authorization": b"Basic dXNlcg=="}) is None
    assert presented_key({}) is None
    assert Principal("acme", "1a2b3c4d").rate_key == "key 1a2b3c4d"
    assert Principal("default", None).rate_key == "tenant default"
