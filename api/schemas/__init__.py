"""Request and response bodies, named by direction, one module per resource as in api/routes/.

The bodies of the routes the Python client calls are the wire's (wire/, light: the client imports them without the
server); a module here holds what only the server needs: its bodies (benchmarks, tuning, webhooks, sources,
health), the error body and the OpenAPI responses that declare it (common.py), and the checks of a route beyond its
body's schema (retrieve.py, ingest.py)."""
