"""Validating change events on the consumer side: the one boundary, with a fast path.

Consumers call :func:`parse_event` (or :func:`decode`). An event it accepts is
one both consumers can use: on top of the JSON Schema
(cdc/contract/schema/change-event.schema.json) it checks what a schema pattern cannot
(:func:`value_problem`): ``commit_time`` is a real instant (not
``2026-02-30``), ``seq`` fits the event id's 10 digits, and every integer
fits Firestore's 64 bits.

A rejected event's reason (:func:`problem`) names the JSON path and the rule
it breaks, never the value: jsonschema's own message quotes the whole row
(name, kennitala, street), and the reason becomes a log line and a
dead-letter attribute.

``jsonschema`` costs about 0.3 ms per event, more than the Firestore write it
guards (measured by the audit and members consumers' benchmarks).
:func:`surely_valid` checks the same rules in plain Python and answers True
only for bodies the full check accepts; when it is unsure (unusual types,
optional fields it does not know) it answers False and the caller runs the
full validation.

It is written against one version of cdc/contract/schema/change-event.schema.json:
when the schema changes, :data:`ENABLED` turns False (every event takes the
full validation) until this module is reviewed and ``SCHEMA_FINGERPRINT``
updated. tests/unit/test_event_validation.py checks both the fingerprint and,
with hypothesis, that a True here always means valid there.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

import orjson

from cdc.contract.events import OPS, ChangeEvent, json_schema
from cdc.errors import PoisonEvent

SCHEMA_FINGERPRINT = "d1b3545754ec59aeeada37bd57611ed8f41db95d3eb288f13dc9a8959a478b9f"

_ID = re.compile(r"[0-9A-F]{16}-[0-9]{10}")
_LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_REQUIRED = ("id", "op", "schema", "table", "key", "before", "after", "lsn", "seq", "xid",
             "commit_time")
_REQUIRED_SET = frozenset(_REQUIRED)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # Firestore's integers
MAX_SEQ = 10**10 - 1  # the event id holds seq in 10 digits; versions sort as text
# properties the schema constrains that this fast path leaves to the full check
_UNSURE = ("unchanged_toast", "writeback")
# op -> (before must be, after must be): dict, None, or "either"
_IMAGES: dict[str, tuple[object, object]] = {
    "c": (None, dict), "r": (None, dict), "u": ("either", dict),
    "d": (dict, None), "t": (None, None),
}


def schema_fingerprint() -> str:
    text = json.dumps(json_schema(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


ENABLED = schema_fingerprint() == SCHEMA_FINGERPRINT


def _count(value: Any, *, nullable: bool = False, most: int = INT64_MAX) -> bool:
    if value is None:
        return nullable
    return type(value) is int and 0 <= value <= most


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
        and _count(body["seq"], most=MAX_SEQ) and _count(body["xid"], nullable=True)
        and _snapshot(body.get("snapshot")) and _origin(body.get("origin"))
        and _ints_fit(body["key"]) and _ints_fit(body["before"]) and _ints_fit(body["after"])
    )


def _ints_fit(value: Any) -> bool:
    """Every integer in a row image (nested json values too) fits in 64 bits."""
    if type(value) is int:
        return INT64_MIN <= value <= INT64_MAX
    if type(value) is dict:
        return all(_ints_fit(v) for v in value.values())
    if type(value) is list:
        return all(_ints_fit(v) for v in value)
    return True


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


def _origin(value: Any) -> bool:
    """None (absent) or a replication origin's name."""
    return value is None or _nonempty(value)


def _text(value: Any, pattern: re.Pattern[str]) -> bool:
    return type(value) is str and pattern.fullmatch(value) is not None


_REPEATED = {"lsn": _LSN, "commit_time": _TIME}


def _repeated_text(value: Any, name: str) -> bool:
    """Values most events of a batch share (a transaction's, a snapshot's): memoized."""
    return type(value) is str and _matches(value, name)


@lru_cache(maxsize=4096)
def _matches(value: str, name: str) -> bool:
    if _REPEATED[name].fullmatch(value) is None:
        return False
    return name != "commit_time" or real_instant(value)


def real_instant(text: str) -> bool:
    """``2026-02-30T00:00:00.000000Z`` matches the pattern but is no instant."""
    try:
        datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        return False
    return True


def _nonempty(value: Any) -> bool:
    return type(value) is str and len(value) > 0


def parse_event(body: Any, data: bytes) -> ChangeEvent:
    """The event of an already-decoded body: fast when surely valid, else fully
    checked; PoisonEvent (path and rule, no value) when it is not valid."""
    if surely_valid(body):
        return ChangeEvent.from_dict(body)
    reason = problem(body)
    if reason:
        raise PoisonEvent(f"event {reason}")
    return ChangeEvent.from_dict(body)


def decode(data: bytes) -> ChangeEvent:
    """Parse and validate one Pub/Sub message body; PoisonEvent if invalid."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PoisonEvent(f"event is not JSON: {exc}") from exc
    return parse_event(body, data)


# -- the full check ------------------------------------------------------------------

@cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(json_schema())


def problem(body: object) -> str | None:
    """None when ``body`` is a valid event, else the first problem, path and rule:
    ``fails the JSON Schema: before: must be of type "null"`` or
    ``has an unusable value: commit_time: ...``."""
    error = next(iter(_validator().iter_errors(body)), None)
    if error is not None:
        return f"fails the JSON Schema: {_path(error.absolute_path)}: {_rule(error)}"
    assert isinstance(body, dict)  # the schema says so
    unusable = value_problem(body)
    return f"has an unusable value: {unusable}" if unusable else None


def value_problem(body: dict[str, Any]) -> str | None:
    """What the schema's patterns let through and a consumer cannot use."""
    if not real_instant(body["commit_time"]):
        return "commit_time: is not a real date and time (ISO-8601 UTC with microseconds)"
    if body["seq"] > MAX_SEQ:
        return f"seq: must be at most {MAX_SEQ} (10 digits in the event id)"
    if body["xid"] is not None and body["xid"] > INT64_MAX:
        return "xid: must fit in 64 bits"
    for name in ("key", "before", "after"):
        where = next(_outsized(body[name], (name,)), None)
        if where is not None:
            return f"{_path(where)}: integer outside the 64-bit range"
    return None


def _outsized(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _outsized(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _outsized(item, (*path, index))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,62}")


def _path(parts: Any) -> str:
    """A JSON path of column and field names; a key of another shape is not shown."""
    shown = [str(p) if isinstance(p, int) or _NAME.fullmatch(str(p)) else "…" for p in parts]
    return "/".join(shown) or "(root)"


def _rule(error: Any) -> str:
    """The schema rule ``error`` breaks, from the schema alone (never the instance)."""
    rule, expected = error.validator, error.validator_value
    if rule == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in expected if name not in present]
        return f"required property {', '.join(missing)} is missing"
    if rule == "type":
        return f"must be of type {_either(expected)}"
    if rule == "enum":
        return "must be one of " + ", ".join(json.dumps(v) for v in expected)
    if rule == "const":
        return f"must be {json.dumps(expected)}"
    if rule == "pattern":
        return f"must match {expected}"
    if rule == "minimum":
        return f"must be at least {expected}"
    if rule == "minLength":
        return f"must be at least {expected} character(s) long"
    if rule == "uniqueItems":
        return "must not repeat an item"
    return f"breaks the schema rule {rule!r}"


def _either(expected: Any) -> str:
    values = expected if isinstance(expected, list) else [expected]
    return " or ".join(json.dumps(v) for v in values)
