"""Logging setup: readable lines for a terminal, one JSON object per line for containers."""
from __future__ import annotations

import logging
import os
import sys
import time

import orjson

from batchrun.definitions.urls import redact

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed with `extra=` become keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k not in entry})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class Redacting(logging.Filter):
    """Masks passwords in any URL a log line carries, whoever wrote the line (see definitions/urls.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s")
        self.converter = time.gmtime


def setup(log_format: str = "text", level: str = "info") -> None:
    """Route batchrun's logs to stderr, which both terminals and container runtimes collect."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(Redacting())
    root = logging.getLogger("batchrun")
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("BATCHRUN_LOG_LEVEL", level).upper())
    root.propagate = False
