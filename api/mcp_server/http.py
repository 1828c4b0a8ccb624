"""/mcp on `snapdex serve`: MCP over Streamable HTTP for remote agents.

The route sits behind the service's middleware like every other, so a request without a valid key is a 401 before
MCP sees it, and the key decides the tenant and scope. Each tool call is then a request to the service's own routes,
in process (an ASGI call through the whole app: authentication, strict input, rate limits, request ids, metrics), with
the credentials of the MCP request that carries it: nothing an MCP client does reaches more than its key does over
HTTP. `X-Snapdex-Principal` on the MCP requests names a service key's principal for the session (a call's
`principal` argument overrides it).

Stateless, with JSON answers: any request may reach any API replica behind a load balancer (no session to keep), and
nothing of one key's session is there for another key to use.
"""

from __future__ import annotations

import logging
import sys

import httpx
from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings

from api.deps import get_asked_principal
from api.mcp_server.tools import Gateway, build_server
from snapdex.logs import request_id_var
from snapdex.settings import Settings

PATH = "/mcp"
LOOPBACK = "http://snapdex"  # the base URL of the calls to the service's own routes (no socket: ASGI)
# What decides who a call is, as the service reads it (api/auth.py, api/deps.py), passed on to the routes it calls.
CREDENTIALS = ("authorization", "x-api-key", "cookie", "x-tenant")


def _quiet() -> None:
    """Per tool call, httpx logs the inner request at info (the route logs its own line already) and the SDK a
    "Terminating session: None" (there are no sessions here): neither says anything; and httpx's ASGI transport
    imports sniffio on every request to ask whether trio runs, which, not installed, searched sys.path each time
    (0.3 ms of every call). Its absence is remembered as the import system remembers one: None in sys.modules."""
    logging.getLogger("httpx").addFilter(
        lambda record: not (isinstance(record.args, tuple) and len(record.args) > 1
                            and str(record.args[1]).startswith(LOOPBACK)))
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None


class McpEndpoint:
    def __init__(self, app: FastAPI, settings: Settings) -> None:
        _quiet()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=LOOPBACK, timeout=None)
        self.server = build_server(self.connect, settings.mcp_allow_writes)
        # Built for its session manager (the Starlette app it returns is not used: the route below serves the manager
        # inside the service's app). No DNS-rebinding check: the service is reached under any host name, and a key
        # guards it as it guards every other route.
        self.server.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, json_response=True,
            max_request_body_size=settings.max_request_bytes,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.asgi = StreamableHTTPASGIApp(self.server.session_manager)

    def mount(self, app: FastAPI) -> None:
        app.add_route(PATH, self.asgi, include_in_schema=False)  # any method: POST, and GET/DELETE answered by MCP

    def connect(self, ctx: Context) -> Gateway:
        request = ctx.request_context.request  # the POST to /mcp that carries this call
        headers = {name: value for name in CREDENTIALS if (value := request.headers.get(name)) is not None}
        if request_id := request_id_var.get():  # the routes answer under the /mcp request's id: one id in the logs
            headers["x-request-id"] = request_id
        return Gateway(self.http, headers, get_asked_principal(request.headers.get("x-snapdex-principal")))

    def run(self):
        """The session manager, for the app's lifespan (it holds the task group the calls run in)."""
        return self.server.session_manager.run()

    async def aclose(self) -> None:
        await self.http.aclose()
