"""POST /ingest's multipart form (api/routes/ingest.py); its JSON body is the wire's (wire/ingest.py)."""

from __future__ import annotations

from pydantic import TypeAdapter

from wire.common import Metadata


FormMetadata = TypeAdapter(Metadata)  # the multipart `metadata` field, checked as a JSON document's metadata

