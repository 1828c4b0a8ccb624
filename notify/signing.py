"""The signature a receiver checks: `X-Snapdex-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`
under the webhook's secret. The timestamp is signed too, so a captured delivery cannot be replayed later than the
receiver's tolerance. The README's verification snippet is the receiver's side of this (tested against it)."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Snapdex-Signature"
EVENT_HEADER = "X-Snapdex-Event"


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300, now: float | None = None) -> bool:
    """Whether `header` signs `body` under `secret` within `tolerance_s` of now (any of several v1 values)."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    ts = [v for k, v in parts if k.strip() == "t"]
    if len(ts) != 1 or not ts[0].isdigit():
        return False
    t = int(ts[0])
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    want = sign(secret, body, t).split("v1=", 1)[1]
    return any(hmac.compare_digest(v.strip(), want) for k, v in parts if k.strip() == "v1")
