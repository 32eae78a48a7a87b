"""Validating change events on the consumer side, with a fast path.

Consumers call :func:`parse_event`. ``jsonschema`` costs about 0.3 ms per
event, more than the Firestore write it guards (measured by the audit and
members consumers' benchmarks). :func:`surely_valid` checks the same rules
in plain Python and answers True only for bodies the schema accepts; when
it is unsure (unusual types, optional fields it does not know) it answers
False and the caller runs the full validation (``ChangeEvent.from_json``),
which also gives the reason for a poison event.

It is written against one version of cdc/schema/change-event.schema.json:
when the schema changes, :data:`ENABLED` turns False (every event takes the
full validation) until this module is reviewed and ``SCHEMA_FINGERPRINT``
updated. tests/unit/test_event_validation.py checks both the fingerprint and,
with hypothesis, that a True here always means valid there.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from typing import Any

from cdc.events import OPS, ChangeEvent, json_schema

SCHEMA_FINGERPRINT = "e55e8687f142ccb391e9945cb40ffbc7a999b4ab63d17b68131fbe27f7298df6"

_ID = re.compile(r"[0-9A-F]{16}-[0-9]{10}")
_LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_REQUIRED = ("id", "op", "schema", "table", "key", "before", "after", "lsn", "seq", "xid",
             "commit_time")
_REQUIRED_SET = frozenset(_REQUIRED)
# properties the schema constrains that this fast path leaves to the full check
_UNSURE = ("unchanged_toast",)
# op -> (before must be, after must be): dict, None, or "either"
_IMAGES: dict[str, tuple[object, object]] = {
    "c": (None, dict), "r": (None, dict), "u": ("either", dict),
    "d": (dict, None), "t": (None, None),
}


def schema_fingerprint() -> str:
    text = json.dumps(json_schema(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


ENABLED = schema_fingerprint() == SCHEMA_FINGERPRINT


def _count(value: Any, *, nullable: bool = False) -> bool:
    if value is None:
        return nullable
    return type(value) is int and value >= 0


def _image(value: Any, rule: object) -> bool:
    if rule is None:
        return value is None
    if rule is dict:
        return type(value) is dict
    return value is None or type(value) is dict


def surely_valid(body: Any) -> bool:
    """True only when ``body`` certainly satisfies the change-event JSON Schema."""
    if not ENABLED or type(body) is not dict:
        return False
    if not body.keys() >= _REQUIRED_SET or not body.keys().isdisjoint(_UNSURE):
        return False
    op = body["op"]
    if type(op) is not str or op not in OPS:
        return False
    before_rule, after_rule = _IMAGES[op]
    return (
        _text(body["id"], _ID) and _repeated_text(body["lsn"], "lsn")
        and _repeated_text(body["commit_time"], "commit_time")
        and _nonempty(body["schema"]) and _nonempty(body["table"])
        and type(body["key"]) is dict
        and _image(body["before"], before_rule) and _image(body["after"], after_rule)
        and _count(body["seq"]) and _count(body["xid"], nullable=True)
        and _snapshot(body.get("snapshot"))
    )


def _snapshot(value: Any) -> bool:
    """None, or an object whose ``children`` (when there) maps tables to arrays.

    A limited backfill's ``scope`` is left to the full check (rare, and typed there).
    """
    if value is None:
        return True
    if type(value) is not dict or "scope" in value:
        return False
    children = value.get("children")
    if children is None:
        return "children" not in value
    return type(children) is dict and all(type(v) is list for v in children.values())


def _text(value: Any, pattern: re.Pattern[str]) -> bool:
    return type(value) is str and pattern.fullmatch(value) is not None


_REPEATED = {"lsn": _LSN, "commit_time": _TIME}


def _repeated_text(value: Any, name: str) -> bool:
    """Values most events of a batch share (a transaction's, a snapshot's): memoized."""
    return type(value) is str and _matches(value, name)


@lru_cache(maxsize=4096)
def _matches(value: str, name: str) -> bool:
    return _REPEATED[name].fullmatch(value) is not None


def _nonempty(value: Any) -> bool:
    return type(value) is str and len(value) > 0


def parse_event(body: Any, data: bytes) -> ChangeEvent:
    """The event of an already-decoded body: fast when surely valid, else fully checked."""
    if surely_valid(body):
        return ChangeEvent.from_dict(body)
    return ChangeEvent.from_json(data)
