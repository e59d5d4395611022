"""Structured logs: one JSON object per line on stderr, for the server and uvicorn alike.

Fields beyond the message go in `extra={"fields": {...}}`; they come out as top-level keys.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

LOGGER_NAME = "kopilot.serving"


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., **fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn and kopilot.serving, all JSON on stderr.

    uvicorn's access log is off: the server logs each detection request itself, with timings.
    """
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            LOGGER_NAME: {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
