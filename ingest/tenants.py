"""Tenant names: what a tenant may be called. Apart from the catalog so that the settings and the key store can
check a name without loading the catalog's tokenizer."""

from __future__ import annotations

import re

from errors import InvalidInput

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_tenant(tenant: str) -> str:
    if not TENANT_RE.match(tenant):
        raise InvalidInput(f"tenant {tenant!r} is invalid: use 1-63 characters of a-z, 0-9, '_' or '-'")
    return tenant
