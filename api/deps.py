"""Dependencies as Annotated aliases, so handlers declare what they need in one word."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from api.auth import Principal
from ingest.catalog import TENANT_RE, check_tenant
from snapdex.runtime import Runtime
from snapdex.settings import Settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(request: Request) -> Settings:
    return request.app.state.runtime.settings


def get_principal(request: Request) -> Principal:
    return request.state.principal  # set by AuthMiddleware on every route but /health


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_tenant(principal: PrincipalDep, x_tenant: Annotated[str | None, Header(
        description="optional: names the tenant the API key belongs to (1-63 of a-z, 0-9, '_', '-'); "
                    "a key never reaches another tenant", json_schema_extra={"pattern": TENANT_RE.pattern})] = None
               ) -> str:
    # The pattern is documented, not enforced by FastAPI: check_tenant's message says what is allowed.
    return tenant_of(principal, x_tenant)


def tenant_of(principal: Principal, named: str | None) -> str:
    """The caller's tenant. Naming another one is refused (403), never followed: the key decides."""
    if principal.operator:
        raise HTTPException(status_code=403, detail="an operator key reaches the service-wide routes only "
                                                    "(/metrics, /ready, /benchmarks); use a tenant's key for its data")
    if named is not None:
        try:
            check_tenant(named)
        except ValueError as e:
            raise HTTPException(status_code=422, detail=str(e)) from e
        if named != principal.tenant:
            raise HTTPException(status_code=403, detail=(
                f"this API key belongs to tenant {principal.tenant!r}, not {named!r}" if principal.key_id else
                f"this service runs keyless for the one tenant {principal.tenant!r}, not {named!r}: "
                "configure API keys (`snapdex keys create --tenant NAME`) to serve more tenants"))
    return principal.tenant


def require_operator(principal: PrincipalDep) -> None:
    """Service-wide data (every tenant's metrics, benchmark imports): an operator key, or anyone when keyless."""
    if principal.key_id and not principal.operator:
        raise HTTPException(status_code=403, detail="service-wide data (metrics, benchmark imports) needs an operator "
                                                    "key (`snapdex keys create --operator`), not a tenant's")


TenantDep = Annotated[str, Depends(get_tenant)]
OperatorDep = Annotated[None, Depends(require_operator)]
