"""snapdex as an MCP server (README, "MCP: agents call snapdex as a tool").

One set of tools (`tools.py`) over one client of the HTTP API (`Gateway`), reached two ways:
- `/mcp` on `snapdex serve` (`http.py`): Streamable HTTP for remote agents. Each tool call is a request to the
  service's own routes in process (an ASGI call, no socket), with the credentials of the MCP request that carries it:
  the same authentication, scopes, principals, rate limits, strict input and answers as the HTTP API.
- `snapdex mcp --url` (`stdio.py`): a process a desktop client starts, speaking MCP over stdio and calling a running
  service over HTTP with SNAPDEX_API_KEY. The embedded store belongs to the service's process, so this one holds none.

The package is not named `mcp`: that is the SDK's, which these modules import.
"""
