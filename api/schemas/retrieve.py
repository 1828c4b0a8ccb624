"""What /retrieve checks beyond its body's schema (wire/retrieve.py): the service's own limits."""

from __future__ import annotations

from errors import InvalidInput
from retrieval.context import ContextConfig
from wire.retrieve import ContextRequest


def check_query_chars(text: str, limit: int, what: str = "query") -> str:
    if len(text) > limit:
        raise InvalidInput(f"{what} is {len(text):,} characters, over this service's limit of {limit:,} "
                           "(SNAPDEX_MAX_QUERY_CHARS)")
    return text



def context_config(request: ContextRequest | None) -> ContextConfig | None:
    """The context block a request asks for, as the context builder takes it; None: no context block."""
    if request is None:
        return None
    expand = request.expand if isinstance(request.expand, str) else request.expand.neighbors if request.expand else 0
    return ContextConfig(request.max_tokens, expand, request.max_per_document, request.tokenizer)
