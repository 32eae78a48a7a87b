"""An edit request from the portal, and its validation. Pure: no I/O.

The portal writes ``<CDC_EDITS_COLLECTION>/{request id}`` (docs/writeback.md)::

    kennitala  "0101701259"          the member's own (the security rules check it)
    uid        "<Firebase uid>"      who asked
    version    "<_cdc.version>"      of the member document the member saw
    fields     {"profile.email": "jon@example.is", "profile.address.city": "Reykjavík"}
    status     "pending"

:func:`parse_request` turns the stored fields into an :class:`EditRequest`, or
raises :class:`Rejected` with a reason a member can read: it names the field
and the rule, never a value, and never another member's data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cdc.member.kennitala import kennitala_problem
from cdc.member.version import Version

PENDING: Final = "pending"
APPLIED: Final = "applied"
REJECTED: Final = "rejected"
CONFLICT: Final = "conflict"
OUTCOMES: Final = (APPLIED, REJECTED, CONFLICT)

# portal field path -> (table, column); docs/writeback.md says how each is applied
FIELD_MAP: Final[Mapping[str, tuple[str, str]]] = {
    "profile.name": ("membership_comrade", "name"),
    "profile.email": ("communication_email", "email"),
    "profile.phone": ("membership_contactinfo", "phone"),
    "profile.address.street": ("membership_simpleaddress", "street_address"),
    "profile.address.postalcode": ("membership_simpleaddress", "postal_code"),
    "profile.address.city": ("membership_simpleaddress", "city"),
}
# the column widths of sql/schema.sql (Django's max_length)
MAX_LENGTH: Final[Mapping[str, int]] = {
    "profile.name": 255, "profile.email": 254, "profile.phone": 30,
    "profile.address.street": 255, "profile.address.postalcode": 10,
    "profile.address.city": 255,
}
REQUIRED: Final = frozenset({"profile.name", "profile.email"})  # cannot be cleared

# Django's EmailValidator, in short: a dot-atom local part, a dotted domain
# whose last label is letters (or an IDN's xn--), no spaces.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})")
# an Icelandic or international number: optional +, digits with spaces or dashes
_PHONE = re.compile(r"\+?[0-9]([0-9 -]*[0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Rejected(Exception):
    """The request cannot be applied; ``reason`` is for the member to read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    """What became of a request: ``status``, the member's ``reason``, rows written."""

    status: str
    reason: str | None = None
    writes: int = 0
    replayed: bool = False
    """Decided by an earlier transaction (a crash before the status, another process)."""


@dataclass(frozen=True, slots=True)
class EditRequest:
    request_id: str
    kennitala: str
    uid: str
    version: Version
    fields: Mapping[str, str]
    """Portal field path -> the new value ('' clears an optional field)."""

    def columns(self, table: str) -> dict[str, str]:
        """Column -> new value of the fields that map to ``table``."""
        return {FIELD_MAP[path][1]: value for path, value in self.fields.items()
                if FIELD_MAP[path][0] == table}


def parse_request(request_id: str, body: Mapping[str, Any]) -> EditRequest:
    """The request in ``body``, validated; :class:`Rejected` with the reason otherwise."""
    kennitala = body.get("kennitala")
    if kennitala_problem(kennitala) is not None:
        raise Rejected("kennitala: not a valid kennitala")
    uid = body.get("uid")
    if not isinstance(uid, str) or not uid.strip():
        raise Rejected("uid: missing; sign in again and resend")
    version = Version.parse_or_none(body.get("version"))
    if version is None:
        raise Rejected("version: missing or not a member-document version; reload your "
                       "details and resend")
    fields = body.get("fields")
    if not isinstance(fields, Mapping) or not fields:
        raise Rejected("fields: nothing to change")
    assert isinstance(kennitala, str)
    return EditRequest(request_id, kennitala, uid, version,
                       {path: field_value(path, value) for path, value in sorted(fields.items())})


def field_value(path: object, value: object) -> str:
    """The value to store for one field; :class:`Rejected` naming the field and the rule."""
    if not isinstance(path, str) or path not in FIELD_MAP:
        shown = path if isinstance(path, str) and len(path) <= 40 else "a field"
        raise Rejected(f"{_printable(shown)}: this field cannot be changed here; "
                       f"allowed: {', '.join(sorted(FIELD_MAP))}")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Rejected(f"{path}: must be text")
    text = value.strip()
    if _CONTROL.search(text):
        raise Rejected(f"{path}: must not hold control characters")
    if len(text) > MAX_LENGTH[path]:
        raise Rejected(f"{path}: at most {MAX_LENGTH[path]} characters")
    if not text:
        if path in REQUIRED:
            raise Rejected(f"{path}: cannot be empty")
        return ""
    if path == "profile.email" and not valid_email(text):
        raise Rejected("profile.email: not a valid e-mail address")
    if path == "profile.phone" and not valid_phone(text):
        raise Rejected("profile.phone: not a valid phone number (digits, spaces, dashes, "
                       "an optional leading +; 7 to 15 digits)")
    return text


def valid_email(text: str) -> bool:
    return len(text) <= 254 and _EMAIL.fullmatch(text) is not None \
        and len(text.rsplit("@", 1)[0]) <= 64


def valid_phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    return _PHONE.fullmatch(text) is not None and 7 <= digits <= 15


def _printable(text: str) -> str:
    return _CONTROL.sub("?", text)
