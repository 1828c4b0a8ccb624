"""Dependencies as Annotated aliases, so handlers declare what they need in one word."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from ingest.catalog import TENANT_RE, check_tenant
from snapdex.runtime import Runtime
from snapdex.settings import Settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(request: Request) -> Settings:
    return request.app.state.runtime.settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_tenant(settings: SettingsDep, x_tenant: Annotated[str | None, Header(
        description="the tenant: 1-63 of a-z, 0-9, '_', '-'; default: the service's default tenant",
        json_schema_extra={"pattern": TENANT_RE.pattern})] = None) -> str:
    # The pattern is documented, not enforced by FastAPI: check_tenant's message says what is allowed.
    return tenant_or_422(x_tenant, settings)


def tenant_or_422(tenant: str | None, settings: Settings) -> str:
    """The named tenant, or the default one; a bad name is a 422 that says what is allowed."""
    try:
        return check_tenant(tenant or settings.default_tenant)
    except ValueError as e:
        raise HTTPException(status_code=422, detail=str(e)) from e


TenantDep = Annotated[str, Depends(get_tenant)]
