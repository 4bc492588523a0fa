"""Logs: one JSON object per line (TM_LOG_FORMAT=json, the default) or text for people.

Every record goes through the root logger, so the libraries' own logs (grpc,
psycopg, botocore) come out in the same format. structlog's
ProcessorFormatter renders them; fields passed as `extra=` (the access log's
method, code, duration, tenant, chat, request_id, peer, trace_id) become keys
of the object. Nothing logs message contents.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("json", "text")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processor=structlog.processors.JSONRenderer(),
                foreign_pre_chain=[
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.stdlib.add_log_level,
                    structlog.stdlib.add_logger_name,
                    structlog.stdlib.ExtraAdder(),
                    structlog.processors.format_exc_info,
                ],
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
