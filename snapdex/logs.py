"""Logging for the service's processes: one JSON object per line (python-json-logger), each carrying the
request id of the request it belongs to. Document and query text never go into a log line at info level: a
hash and a length stand in for them (`text_digest`)."""

from __future__ import annotations

import hashlib
import logging
import logging.config
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def text_digest(text: str) -> dict:
    """What a log may say about a text: enough to correlate requests, nothing to read."""
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], "chars": len(text)}


def logging_config(fmt: str, level: str) -> dict:
    level = level.upper()
    formatter = ({"()": "pythonjsonlogger.json.JsonFormatter", "fmt": FIELDS + " %(request_id)s",
                  "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
                 if fmt == "json" else {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["request_id"],
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        # uvicorn's own loggers go through the same handler, so its lines are JSON too.
        "loggers": {name: {"handlers": [], "propagate": True, "level": level}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")},
    }


def configure(fmt: str = "json", level: str = "info") -> dict:
    config = logging_config(fmt, level)
    logging.config.dictConfig(config)
    return config
