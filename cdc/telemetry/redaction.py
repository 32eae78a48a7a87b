"""The one redaction layer: every string that leaves a process passes :func:`redact`.

Log records (cdc/telemetry/logs.py), ``/healthz`` bodies (cdc/telemetry/health.py), the CLI's
error lines (cdc/cli), dead-letter ``reason`` attributes and what ``cdc dlq``
prints all go through it. It

- removes passwords: a URI's userinfo when it holds one
  (``postgresql://u:p@h/db`` -> ``postgresql://****@h/db``, also when the URI
  is malformed: the userinfo runs to the last ``@`` of the line), conninfo
  ``password=...`` (quoted or not), and every secret registered with
  :func:`register_dsn` (a DSN's password, raw and percent-decoded, which libpq
  may quote on its own, e.g. ``invalid percent-encoded token: "..."``). The
  project registers its DSN before it connects (cdc/postgres/connection.py):
  text rules alone cannot tell where a raw password holding both a space and
  ``://`` ends;
- masks kennitalas, with or without a dash, anywhere, a document path such as
  ``members/0101701234`` included (``010170-****``). Event ids
  (``00000016B374D848-0000000003``) are kept;
- masks the local part of e-mail addresses (``****@example.is``), except
  Google service accounts, which name no member;
- drops the row values jsonschema quotes in a validation message
  (``<path>: {'ssn': ...} is not of type 'null'``), keeping the JSON path
  and the rule. New reasons never hold values (cdc/contract/validation.py); this
  cleans the dead letters older versions wrote.

A secret shorter than :data:`MIN_SECRET` characters is not registered: it
would mask ordinary words.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "****"
MIN_SECRET = 4

_SECRETS: set[str] = set()
_LOCK = threading.Lock()

# scheme://userinfo@ - greedy: a password may hold '@', '/', ':' or spaces, so the
# userinfo runs to the last '@' of the line before the next URI, or else of the
# token; it is stripped only when it holds a password (a ':')
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*://"
_URI_USERINFO = re.compile(
    rf"(?P<scheme>{_SCHEME})(?P<userinfo>(?:(?!{_SCHEME})[^\n])*|\S*)@")
_PASSWORD_SETTING = re.compile(
    r"(?P<name>password\s*[=:]\s*)(?P<value>'(?:[^'\\\n]|\\.)*(?:'|$)|\S+)",
    re.IGNORECASE | re.MULTILINE)
_EVENT_ID = r"(?<![0-9A-F])[0-9A-F]{16}-[0-9]{10}(?![0-9])"
_KENNITALA = re.compile(rf"(?P<event_id>{_EVENT_ID})|(?<![0-9])(?P<head>[0-9]{{6}})-?[0-9]{{4}}"
                        r"(?![0-9])")
_EMAIL = re.compile(r"(?<![\w.+\-*])(?<!://)[\w.+\-]+@(?P<domain>[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*)")
_SERVICE_ACCOUNTS = ".gserviceaccount.com"
# jsonschema's messages start with the offending value: "<value> is not of type ..."
_SCHEMA_RULES = ("is not of type", "is not one of", "does not match", "is too long",
                 "is too short", "is less than", "is greater than", "should be non-empty",
                 "was expected", "has non-unique elements", "is not valid under",
                 "is valid under each", "should not be valid under",
                 "does not have enough properties", "has too many properties", "is not a ")
_SCHEMA_MESSAGE = re.compile(
    r"(?P<head>JSON Schema: [^\s:]*: ).*(?P<rule>" + "|".join(map(re.escape, _SCHEMA_RULES))
    + r")(?P<tail>.*)$", re.MULTILINE)


def redact(text: str) -> str:
    """``text`` without passwords, kennitalas, e-mail addresses or quoted row values."""
    text = _without_secrets(text)
    text = _URI_USERINFO.sub(_userinfo, text)
    text = _PASSWORD_SETTING.sub(lambda m: m.group("name") + MASK, text)
    text = _SCHEMA_MESSAGE.sub(_schema_message, text)
    text = _EMAIL.sub(_email, text)
    return mask_kennitala(text)


def mask_kennitala(text: str) -> str:
    """``0101701234`` -> ``010170-****``, anywhere in ``text``; event ids are kept."""
    return _KENNITALA.sub(_kennitala, text)


def register_dsn(dsn: str) -> None:
    """Remember the password(s) in a libpq URI or conninfo (and ``PGPASSWORD``):
    :func:`redact` removes them from every later text, wherever they appear."""
    found = {*_uri_passwords(dsn), *_conninfo_passwords(dsn)}
    env = os.environ.get("PGPASSWORD")
    if env:
        found.add(env)
    with _LOCK:
        _SECRETS.update(s for s in found if len(s) >= MIN_SECRET)


def _uri_passwords(dsn: str) -> Iterable[str]:
    scheme = re.match(r"\s*[A-Za-z][A-Za-z0-9+.\-]*://", dsn)
    if scheme is None or "@" not in dsn[scheme.end():]:
        return []
    rest = dsn[scheme.end():]
    userinfo = rest[:rest.rindex("@")]
    if ":" not in userinfo:
        return []
    password = userinfo.split(":", 1)[1]
    # libpq ends the userinfo at the first '@': the rest of the password reads as the host
    pieces = {password, *password.split("@"), *password.split("/")}
    return pieces | {_decoded(p) for p in pieces}


def _conninfo_passwords(dsn: str) -> Iterable[str]:
    out = set()
    for match in _PASSWORD_SETTING.finditer(dsn):
        value = match.group("value")
        out.add(value)
        if value.startswith("'"):
            inner = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
            out.add(inner)
            out.add(re.sub(r"\\(.)", r"\1", inner))
    return out


def _decoded(text: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return text


def _without_secrets(text: str) -> str:
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _userinfo(match: re.Match[str]) -> str:
    if ":" not in match.group("userinfo"):
        return match.group(0)  # a user name only: no secret
    return f"{match.group('scheme')}{MASK}@"


def _schema_message(match: re.Match[str]) -> str:
    return f"{match.group('head')}<value> {match.group('rule')}{match.group('tail')}"


def _email(match: re.Match[str]) -> str:
    domain = match.group("domain")
    if domain.endswith(_SERVICE_ACCOUNTS):
        return match.group(0)
    return f"{MASK}@{domain}"


def _kennitala(match: re.Match[str]) -> str:
    if match.group("event_id"):
        return match.group(0)
    return f"{match.group('head')}-{MASK}"
