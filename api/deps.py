"""Dependencies as Annotated aliases, so handlers declare what they need in one word."""

from __future__ import annotations

from typing import Annotated

import logging

from fastapi import Depends, Header, HTTPException, Request

from pydantic import ValidationError

from api.auth import Principal
from api.strict import invalid, parse_json
from ingest.access import Reader, user_digest
from ingest.catalog import TENANT_RE, check_tenant
from snapdex.runtime import Runtime
from snapdex.settings import Settings
from wire.common import PrincipalIn


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(request: Request) -> Settings:
    return request.app.state.runtime.settings


def get_principal(request: Request) -> Principal:
    return request.state.principal  # set by AuthMiddleware on every route but /health


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


log = logging.getLogger("snapdex.access")

TenantHeader = Annotated[str | None, Header(
    description="optional: names the tenant the API key belongs to (1-63 of a-z, 0-9, '_', '-'); "
                "a key never reaches another tenant", json_schema_extra={"pattern": TENANT_RE.pattern})]


PrincipalHeader = Annotated[str | None, Header(
    max_length=16_000, description=(
        'routes without a body (the GET /documents routes): the `principal` a service key reads for, as the JSON '
        '/retrieve takes in its body, e.g. {"user": "alice@acme", "groups": ["hr"]}; a user key may not send it'))]


def get_asked_principal(x_snapdex_principal: PrincipalHeader = None) -> PrincipalIn | None:
    """The principal a request names in its X-Snapdex-Principal header, parsed as /retrieve's body field is."""
    if x_snapdex_principal is None:
        return None
    loc, what = ("header", "x-snapdex-principal"), "X-Snapdex-Principal is not a principal: "
    try:
        return PrincipalIn.model_validate(parse_json(x_snapdex_principal, loc, what))
    except ValidationError as e:
        raise invalid(e, loc, what) from e


def get_tenant(principal: PrincipalDep, x_tenant: TenantHeader = None) -> str:
    # The pattern is documented, not enforced by FastAPI: check_tenant's message says what is allowed.
    return tenant_of(principal, x_tenant)


def get_reading_tenant(principal: PrincipalDep, x_tenant: TenantHeader = None) -> str:
    """The tenant of a route that reads documents as a principal (retrieve, the document reads): every scope."""
    return tenant_of(principal, x_tenant, scopes=("admin", "service", "user"))


def get_viewing_tenant(principal: PrincipalDep, x_tenant: TenantHeader = None) -> str:
    """The tenant of a dashboard route (the page, its overview, its drill-down): admin keys, and user keys, which see
    aggregates and only the per-query rows naming documents they may read."""
    return tenant_of(principal, x_tenant, scopes=("admin", "user"))


def tenant_of(principal: Principal, named: str | None, scopes: tuple[str, ...] = ("admin",)) -> str:
    """The caller's tenant. Naming another one is refused (403), never followed: the key decides. Only the key
    scopes in `scopes` pass: every route but those that read as a principal is an admin key's (or keyless)."""
    if principal.operator:
        raise HTTPException(status_code=403, detail="an operator key reaches the service-wide routes only "
                                                    "(/metrics, /ready, /benchmarks); use a tenant's key for its data")
    if named is not None:
        check_tenant(named)  # InvalidInput: a 422 saying what a tenant may be called
        if named != principal.tenant:
            raise HTTPException(status_code=403, detail=(
                f"this API key belongs to tenant {principal.tenant!r}, not {named!r}" if principal.key_id else
                f"this service runs keyless for the one tenant {principal.tenant!r}, not {named!r}: "
                "configure API keys (`snapdex keys create --tenant NAME`) to serve more tenants"))
    if principal.scope not in scopes:
        raise HTTPException(status_code=403, detail=(
            f"a {principal.scope} key reads through POST /retrieve, POST /retrieve/batch and the GET /documents "
            "routes (a user key also through the dashboard) only; this route needs an admin key of the tenant "
            "(`snapdex keys create --scope admin`)"))
    return principal.tenant


def reader_of(principal: Principal, tenant: str, settings: Settings, asked=None) -> Reader | None:
    """Whom a read runs as: None for everything (an admin key, keyless, a service key of a tenant that allows
    unrestricted service reads), else the Reader whose access tokens filter it. `asked`: the request's
    `principal` (user, groups), which a user key may not send and a service key must, unless its tenant lets it
    read unrestricted (SNAPDEX_ACCESS_UNRESTRICTED_SERVICE_READS)."""
    tenant_wide = tenant not in settings.access_deny_by_default
    if principal.scope == "user":
        if asked is not None:
            raise HTTPException(status_code=403, detail="a user key reads as its own principal: it may not send "
                                                        "`principal` (a service key of the tenant may)")
        return Reader.of(principal.user, principal.groups, tenant_wide)
    if asked is not None:
        reader = Reader.of(asked.user, asked.groups, tenant_wide)
        # Impersonation is recorded, with a digest of the user instead of the name (logs travel further than data).
        log.info("principal", extra={"tenant": tenant, "key": principal.key_id, "scope": principal.scope,
                                     "user": user_digest(asked.user) if asked.user else None,
                                     "groups": len(reader.groups)})
        return reader
    if principal.scope == "service" and tenant not in settings.access_unrestricted_service_reads:
        raise HTTPException(status_code=403, detail=(
            "a service key reads on behalf of an end user: send `principal` {\"user\": ..., \"groups\": [...]} "
            f"(tenant {tenant!r} does not allow unrestricted service reads: SNAPDEX_ACCESS_UNRESTRICTED_SERVICE_READS)"))
    return None


def require_operator(principal: PrincipalDep) -> None:
    """Service-wide data (every tenant's metrics, benchmark imports): an operator key, or anyone when keyless."""
    if principal.key_id and not principal.operator:
        raise HTTPException(status_code=403, detail="service-wide data (metrics, benchmark imports) needs an operator "
                                                    "key (`snapdex keys create --operator`), not a tenant's")


TenantDep = Annotated[str, Depends(get_tenant)]
ReadingTenantDep = Annotated[str, Depends(get_reading_tenant)]
ViewingTenantDep = Annotated[str, Depends(get_viewing_tenant)]
AskedPrincipalDep = Annotated[PrincipalIn | None, Depends(get_asked_principal)]
OperatorDep = Annotated[None, Depends(require_operator)]
