"""Outgoing events: webhooks a tenant registers, the outbox of events written beside the state changes they
report, and their signed, retried delivery (Stripe's `t=...,v1=HMAC` signature, GitHub's delivery log).

A leaf of the import graph, like store/: it imports db/ only, so ingest/ and index_snapshots/ can write events in
the transactions of their own state changes."""

from notify.events import EVENT_TYPES, TEST_EVENT, emit
from notify.signing import sign, verify

__all__ = ["EVENT_TYPES", "TEST_EVENT", "emit", "sign", "verify"]
