"""Per-key rate limits on the routes that cost the most (`limits`, moving window): in process for the
embedded default, in Redis when SNAPDEX_REDIS_URL is set, so every API process shares one budget per key.
A keyless service counts per tenant (it has one)."""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from api.deps import PrincipalDep

log = logging.getLogger(__name__)


class RateLimits:
    def __init__(self, rules: dict[str, str | None], redis_url: str | None) -> None:
        self.items: dict[str, RateLimitItem] = {}
        for route, rule in rules.items():
            if rule:
                try:
                    self.items[route] = parse(rule)
                except ValueError as e:
                    raise ValueError(f"rate limit for {route} is {rule!r}: not a rule like '100/second' ({e})") from e
        self.limiter = MovingWindowRateLimiter(storage_from_string(redis_url or "memory://"))

    def check(self, route: str, who: str, cost: int = 1) -> None:
        """Spend `cost` units (a batch: one per query, at most the whole window, so a batch can always pass)."""
        item = self.items.get(route)
        if item is None:
            return
        try:
            allowed = self.limiter.hit(item, route, who, cost=max(1, min(cost, item.amount)))
        except Exception as e:  # the limiter's store is down: serve rather than fail the hot path (fail open)
            log.warning("rate limiter unavailable (%s: %s): not limiting", type(e).__name__, e)
            return
        if not allowed:
            reset = self.limiter.get_window_stats(item, route, who).reset_time
            retry = max(1, math.ceil(reset - time.time()))
            raise HTTPException(status_code=429, headers={"Retry-After": str(retry)},
                                detail=f"rate limit of {item} on {route} reached for {who}; retry in {retry} s")


def limited(route: str):
    """A dependency that spends one unit of the caller's budget for `route`."""

    def dependency(request: Request, principal: PrincipalDep) -> None:
        request.app.state.rate_limits.check(route, principal.rate_key)

    return Depends(dependency)


def spend(request: Request, route: str, who: str, cost: int) -> None:
    """Spend `cost` units of the caller's budget for `route` (a route that learns its cost from its body)."""
    request.app.state.rate_limits.check(route, who, cost)


RetrieveLimit = Annotated[None, limited("retrieve")]
IngestLimit = Annotated[None, limited("ingest")]
