"""Log lines are JSON and never carry a full kennitala."""

from __future__ import annotations

import logging
import sys

import orjson

from cdc.telemetry.logs import JsonFormatter, fields, mask_kennitala


def _render(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("cdc.test", logging.INFO, __file__, 1, message, None, None)
    for key, value in fields(**extra).items():
        setattr(record, key, value)
    parsed: dict[str, object] = orjson.loads(JsonFormatter().format(record))
    return parsed


def test_a_kennitala_with_or_without_a_dash_is_masked() -> None:
    assert mask_kennitala("member 0101701259 and 120385-2169") == (
        "member 010170-**** and 120385-****")


def test_longer_numbers_such_as_lsn_offsets_are_left_alone() -> None:
    assert mask_kennitala("xid 123456789012") == "xid 123456789012"


def test_a_kennitala_in_a_structured_field_is_masked_in_the_line() -> None:
    line = _render("applied", kennitala="0101701259", lsn="16/B374D848")
    assert line["kennitala"] == "010170-****"
    assert line["lsn"] == "16/B374D848"
    assert line["msg"] == "applied" and line["level"] == "info"


def test_a_password_in_a_field_or_a_traceback_never_reaches_the_line() -> None:
    dsn = 'postgresql://cdc_reader:pa"ss wörd@db.example/members'
    try:
        raise ValueError(f"cannot parse {dsn}")
    except ValueError:
        record = logging.LogRecord("cdc.test", logging.ERROR, __file__, 1, "failed %s",
                                   (dsn,), sys.exc_info())
    for key, value in fields(url=dsn, error=ValueError(dsn)).items():
        setattr(record, key, value)
    line = JsonFormatter().format(record)
    assert 'pa"ss' not in line and "pa\\\"ss" not in line and "wörd" not in line
    assert orjson.loads(line)["url"] == "postgresql://****@db.example/members"


def test_an_event_id_in_a_log_line_is_kept_whole() -> None:
    assert _render("applied", event="00000016B374D848-0000000003")["event"] == (
        "00000016B374D848-0000000003")
