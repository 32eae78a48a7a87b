"""Structured (JSON-lines) logging, redacted.

Every record is one JSON object on stderr. Extra fields are passed as
``log.info("msg", extra=fields(lsn=..., table=...))``. Whatever a caller
passes, every text in the record goes through the redaction layer
(cdc/telemetry/redaction.py): no password, no full kennitala (``010170-****``), no
e-mail address.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from cdc.telemetry.redaction import mask_kennitala, redact

__all__ = ["JsonFormatter", "configure", "fields", "mask_kennitala"]

_FIELDS = "cdc_fields"


def fields(**values: Any) -> dict[str, Any]:
    """Extra structured fields for one log call."""
    return {_FIELDS: values}


def _redacted(value: Any) -> Any:
    """A field value with every text in it redacted (other objects become text)."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(v) for v in value]
    return redact(str(value))


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
        line = orjson.dumps(_redacted(payload)).decode()
        return mask_kennitala(line)  # keys and numbers too


def configure(level: str = "INFO") -> None:
    """Send every log record to stderr as redacted JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("google", "grpc", "urllib3", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
