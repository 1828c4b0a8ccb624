"""API keys: each maps to one tenant (or to the operator, who reads /metrics and /ready and no tenant's data).

A key is shown once, when it is made; only its SHA-256 is kept, in the catalog database (`snapdex keys`) or in
SNAPDEX_API_KEYS ({sha256: tenant | "*"}) for deployments that hand keys out through their secret store. A plain
SHA-256 suffices: keys are 256-bit random tokens, not passwords, so there is nothing to slow a guess down for.
Lookups are cached for a few seconds: a revoked key stops working within `CACHE_S` on every API process.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass

from cachetools import TTLCache, cachedmethod
from sqlalchemy import func, select, update

from db.engine import Database
from db.tables import api_keys
from ingest.tenants import check_tenant
from snapdex.settings import key_tenants

SCOPES = ("admin", "service", "user")
PREFIX = "sdx"
CACHE_S = 5.0


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str | None  # None: operator
    name: str = ""
    created_at: float | None = None
    revoked_at: float | None = None
    source: str = "catalog"  # or "settings"
    # admin: the whole tenant. service: retrieves on behalf of the principal each request names. user: a fixed
    # principal (`user`, `groups`) that requests may not change.
    scope: str = "admin"
    user: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def operator(self) -> bool:
        return self.tenant is None


def check_configured(keys: dict[str, str]) -> dict[str, ApiKey]:
    """SNAPDEX_API_KEYS, checked: {sha256 hex: tenant or "*"} -> {sha256: ApiKey}."""
    return {sha: ApiKey(id=sha[:8], tenant=tenant, source="settings") for sha, tenant in key_tenants(keys).items()}


def check_scope(tenant: str | None, scope: str, user: str | None, groups) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    if tenant is None and scope != "admin":
        raise ValueError("an operator key has no scope: --scope is for a tenant's keys")
    if scope == "user" and not user:
        raise ValueError("a user key needs --user NAME (and optionally --groups G1,G2): the principal it reads as")
    if scope != "user" and (user or groups):
        raise ValueError(f"--user and --groups make a user key's fixed principal; a {scope} key has none "
                         "(a service key names the principal in each /retrieve request)")
    bad = [g for g in [user or "x", *groups] if not g.strip() or len(g) > 256]
    if bad:
        raise ValueError(f"user and group names are 1-256 characters, not blank: {bad[:3]!r}")


_k = api_keys.c
_COLUMNS = (_k.id, _k.tenant, _k.name, _k.created_at, _k.scope, _k.principal_user, _k.principal_groups)


def _key(r) -> ApiKey:
    return ApiKey(r["id"], r["tenant"], r["name"], r["created_at"], r.get("revoked_at"), scope=r["scope"] or "admin",
                  user=r["principal_user"], groups=tuple(json.loads(r["principal_groups"] or "[]")))


class KeyStore:
    def __init__(self, db: Database, configured: dict[str, str] | None = None) -> None:
        self.db = db
        self.configured = check_configured(configured or {})
        self._found: TTLCache = TTLCache(maxsize=10_000, ttl=CACHE_S)
        self._required: TTLCache = TTLCache(maxsize=1, ttl=CACHE_S)
        # cachetools caches are not thread-safe, and every request asks (handlers run on a thread pool): the reads
        # go through cachedmethod with this lock, one lookup per read (`key in cache` then `cache[key]` raised
        # KeyError when the entry expired in between, and a GET /jobs answered 500).
        self._lock = threading.Lock()

    def create(self, tenant: str | None, name: str = "", scope: str = "admin", user: str | None = None,
               groups: tuple[str, ...] | list[str] = ()) -> tuple[str, ApiKey]:
        """A new key for `tenant` (None: operator). The key is returned once and never stored."""
        if tenant is not None:
            check_tenant(tenant)
        check_scope(tenant, scope, user, groups)
        groups = tuple(sorted(set(groups)))
        key_id = secrets.token_hex(4)
        key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        with self.db.tx() as c:
            c.execute(api_keys.insert().values(
                id=key_id, sha256=digest(key), tenant=tenant, name=name, created_at=now, scope=scope,
                principal_user=user, principal_groups=json.dumps(list(groups)) if scope == "user" else None))
        with self._lock:
            self._required.clear()
        return key, ApiKey(key_id, tenant, name, now, scope=scope, user=user, groups=groups)

    def revoke(self, key_id: str) -> ApiKey | None:
        with self.db.tx() as c:
            c.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                      .values(revoked_at=time.time()))
        return next((k for k in self.list(include_revoked=True) if k.id == key_id), None)

    def list(self, include_revoked: bool = False) -> list[ApiKey]:
        k = api_keys.c
        stmt = select(*_COLUMNS, k.revoked_at).order_by(k.created_at)
        if not include_revoked:
            stmt = stmt.where(k.revoked_at.is_(None))
        stored = [_key(r) for r in self.db.all(stmt)]
        return [*self.configured.values(), *stored]

    def required(self) -> bool:
        """Keys are required once any is configured, in the settings or in the catalog, and stay required when
        every key is revoked: revoking a leaked last key must shut the door, not open the service keyless."""
        if self.configured:
            return True
        return self._stored_keys() > 0

    @cachedmethod(lambda self: self._required, lock=lambda self: self._lock)
    def _stored_keys(self) -> int:
        return self.db.scalar(select(func.count()).select_from(api_keys))

    def find(self, key: str) -> ApiKey | None:
        """The live key this string is, or None (unknown or revoked)."""
        sha = digest(key)
        if sha in self.configured:
            return self.configured[sha]
        return self._stored_key(sha)

    @cachedmethod(lambda self: self._found, lock=lambda self: self._lock)
    def _stored_key(self, sha: str) -> ApiKey | None:
        k = api_keys.c
        row = self.db.first(select(*_COLUMNS).where(k.sha256 == sha, k.revoked_at.is_(None)))
        return _key(row) if row else None
