"""Dependencies as Annotated aliases, so handlers declare what they need in one word."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from ingest.catalog import check_tenant
from snapdex.runtime import Runtime
from snapdex.settings import Settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(request: Request) -> Settings:
    return request.app.state.runtime.settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_tenant(settings: SettingsDep, x_tenant: Annotated[str | None, Header()] = None) -> str:
    try:
        return check_tenant(x_tenant or settings.default_tenant)
    except ValueError as e:
        raise HTTPException(status_code=422, detail=str(e)) from e


TenantDep = Annotated[str, Depends(get_tenant)]
