"""Structured (JSON-lines) logging with kennitalas masked.

Every record is one JSON object on stderr. Extra fields are passed as
``log.info("msg", extra=fields(lsn=..., table=...))``. Whatever a caller
passes, the rendered line is scrubbed: anything shaped like a kennitala
(``0101701234`` or ``010170-1234``) becomes ``010170-****``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

_KENNITALA = re.compile(r"(?<![0-9])([0-9]{6})-?[0-9]{4}(?![0-9])")
_FIELDS = "cdc_fields"


def mask_kennitala(text: str) -> str:
    """``0101701234`` -> ``010170-****``, anywhere in ``text``."""
    return _KENNITALA.sub(lambda m: f"{m.group(1)}-****", text)


def fields(**values: Any) -> dict[str, Any]:
    """Extra structured fields for one log call."""
    return {_FIELDS: values}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, _FIELDS, {}))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(payload, default=str).decode()
        return mask_kennitala(line)


def configure(level: str = "INFO") -> None:
    """Send every log record to stderr as masked JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("google", "grpc", "urllib3", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
