"""The wire: the request and response bodies of the routes the Python client calls (snapdex/client.py), and the
rules of what they may hold (document ids, names, job phases), one module per resource as in api/routes/.

The server validates with these same classes (api/routes/ imports them; api/schemas/ holds the bodies only the
server needs), so a client checks a request as the service will, before sending it. This package sits at the
bottom of the import order beside errors/: it imports pydantic and errors/ only, never the server, the catalog or
the vector store, so `import snapdex.client` stays light (tests/unit/test_layering.py). ingest/, retrieval/ and
eval/ read their limits from here (one definition)."""
