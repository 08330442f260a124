"""Structured logs: one line per event, ``key=value`` pairs, level from ``MESH_LOG_LEVEL``."""

from __future__ import annotations

import logging
import sys
import time

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "silent": logging.CRITICAL + 10,
}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d}Z level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "info") -> None:
    """Send mesh's logs to stderr at ``level``; called once by the CLI, never at import."""
    root = logging.getLogger("mesh")
    # psycopg_pool reports failed reconnects on "psycopg.pool": same format, warnings and up.
    for name in ("mesh", "actors", "psycopg"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)
        threshold = LEVELS.get(level.lower(), logging.INFO)
        logger.setLevel(max(threshold, logging.WARNING) if name == "psycopg" else threshold)
        logger.propagate = False
    root.debug("event=logging_configured level=%s", level)
