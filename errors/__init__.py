"""Domain errors: what went wrong, in the caller's terms, raised where the problem is found.

api/errors.py maps each class to its HTTP status in one place (create_app installs the handlers), so a route
catches none of them; the command line and the workers catch them as the built-in errors they subclass. Anything
else that escapes a route, a ValueError included, is a bug: a 500 naming the request id, never a 422.

This package imports nothing, so every layer (store/, ingest/, notify/, db/ ...) may raise these.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """The message is the answer's `detail`, shown to the caller as it is: say what was wrong and what is allowed."""

    @property
    def detail(self) -> Any:
        return self.args[0] if self.args else type(self).__name__


class InvalidInput(DomainError, ValueError):
    """The input is not acceptable (422). `loc` and `kind`, when the raiser knows the field, make the answer's
    detail one entry shaped as FastAPI's validation errors ({"type", "loc", "msg"}) instead of a sentence."""

    def __init__(self, message: str, loc: tuple | None = None, kind: str = "value_error") -> None:
        super().__init__(message)
        self.loc, self.kind = loc, kind


class TooLarge(InvalidInput):
    """The input is over a size limit (413)."""


class NotFound(DomainError, LookupError):
    """What the request names does not exist, or is not readable (404)."""


class Conflict(DomainError):
    """The request is fine but the state does not allow it now: nothing to roll back to, a snapshot that is not
    built, a name taken (409)."""


class Unavailable(DomainError):
    """A service this one needs did not answer; worth retrying after `retry_after` seconds (503)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
