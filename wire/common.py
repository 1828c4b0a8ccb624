"""What several bodies share: names, document ids, metadata, access lists and principals."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from errors import InvalidInput
from wire.ids import CONTROL, MAX_ID_CHARS, check_id, describe

MAX_NAMES = 1000  # users, and groups, of one access list
MAX_NAME_CHARS = 256
Scalar = str | int | float | bool


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("is blank (white space only)")
    return v


NonBlank = Annotated[str, AfterValidator(_not_blank)]


def _no_control(v: str) -> str:
    if found := CONTROL.search(v):
        raise ValueError(f"holds {describe(found.group())}: a name holds no control characters")
    return v


# A string that names something (a user, a group, a query, a set): no control character (Unicode category Cc).
# Free text (a document's text, a query, a description) may hold them, but never a NUL (api/strict.py).
Label = Annotated[str, AfterValidator(_no_control)]


def unique_ids(items: list, message: str) -> list:
    seen: set[str] = set()
    dupes = sorted({i.id for i in items if i.id in seen or seen.add(i.id)})
    if dupes:
        raise ValueError(f"{message}: {dupes[:10]}")
    return items


# A user or group name of an access list or principal: matched exactly, so never blank.
Name = Annotated[NonBlank, AfterValidator(_no_control), Field(min_length=1, max_length=MAX_NAME_CHARS)]
# A document id (wire/ids.py): what every route can address.
DocId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(check_id)]
Metadata = dict[str, Scalar | list[Scalar]]


class AccessIn(BaseModel):
    """Who may read a document, besides the tenant's admin keys. Absent on a document: the whole tenant (unless the
    tenant denies by default, SNAPDEX_ACCESS_DENY_BY_DEFAULT)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"users": ["alice@acme"], "groups": ["hr", "managers"]}]})

    users: list[Name] = Field(default_factory=list, max_length=MAX_NAMES,
                              description="user names as your chat backend sends them")
    groups: list[Name] = Field(default_factory=list, max_length=MAX_NAMES, description="group names")


class PrincipalIn(BaseModel):
    """Whom a service key retrieves for. Only a service (or admin) key may send one; a user key carries its own."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"user": "alice@acme", "groups": ["hr"]}]})

    user: Name | None = None
    groups: list[Name] = Field(default_factory=list, max_length=MAX_NAMES)


def parse_date(value: str) -> float:
    """Epoch seconds of an ISO 8601 date-time; one without a time zone is taken as UTC (peer_bench writes UTC)."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"date {value!r} is not an ISO 8601 date-time (e.g. 2026-11-25T03:36:13+00:00)") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
