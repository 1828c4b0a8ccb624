"""`snapdex mcp --url`: MCP over stdio for a desktop client, answering from a running service over HTTP."""

from __future__ import annotations

import logging

import anyio
import httpx
from pydantic import ValidationError

from api.mcp_server.tools import Gateway, build_server
from wire.common import PrincipalIn

TIMEOUT_S = 120.0  # an ingest_text of a long text, or a first query while the service loads its model


def serve(url: str, api_key: str | None, principal: str | None, allow_writes: bool) -> int:
    """Serve MCP on stdin/stdout until the client closes them. `principal`: JSON {"user", "groups"} a service key
    reads for when a call names nobody."""
    try:
        session_principal = PrincipalIn.model_validate_json(principal) if principal else None
    except ValidationError as e:
        raise SystemExit(f'--principal (or SNAPDEX_PRINCIPAL) is not a principal {{"user": ..., "groups": [...]}}: '
                         f"{e.errors(include_url=False, include_input=False)}") from e
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per call on stderr says nothing the client shows

    async def main() -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=TIMEOUT_S) as http:
            gateway = Gateway(http, principal=session_principal)
            await build_server(lambda ctx: gateway, allow_writes).run_stdio_async()

    anyio.run(main)
    return 0
