"""The member document: the mapping from a member's rows to ``members/{kennitala}``.

:func:`render` turns a :class:`~cdc.member.state.MemberState` into the document
of the public contract (docs/firestore.md): typed fields, enum labels, blank
strings as null, the primary-email rule, the address, and the ``_cdc``
bookkeeping. The consumer, the backfill's dry run and ``cdc verify`` all render
through it. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cdc.member.state import (
    ADDRESS,
    COMRADE,
    CONTACTINFO,
    MemberState,
    Part,
    Row,
    settled_at,
    shown_parts,
    superseded,
)
from cdc.member.version import Version

GENDERS = ("unknown", "male", "female", "other")
HOUSING = ("unknown", "owner", "rental", "cooperative", "family", "other", "homeless")


@dataclass(frozen=True, slots=True)
class Rendered:
    doc_id: str  # the kennitala
    claim: Version  # version of the comrade row: decides between two claimants of one id
    document: Row
    problems: tuple[str, ...]  # enum values out of range etc., to be logged (masked)


def render(comrade_id: int, state: MemberState) -> Rendered | None:
    """The member document, or None when the member has no live comrade row."""
    comrade = state.comrade
    if comrade is None or comrade.row is None:
        return None
    row = comrade.row
    problems: list[str] = []
    shown = shown_parts(state)
    contact = _live(shown.contactinfo)
    profile: Row = {
        "name": blank_to_none(row.get("name")),
        "birthday": to_timestamp(row.get("birthday")),
        "gender": enum_label(row.get("gender"), GENDERS, "gender", problems),
        "housing_situation": enum_label(row.get("housing_situation"), HOUSING,
                                        "housing_situation", problems),
        "email": primary_email(shown.emails, contact),
        "phone": blank_to_none((contact or {}).get("phone")),
        "foreign_phone": blank_to_none((contact or {}).get("foreign_phone")),
        "facebook": blank_to_none((contact or {}).get("facebook")),
        "address": address_of(_live(shown.address)),
    }
    document: Row = {
        "kennitala": row["ssn"],
        "django_id": comrade_id,
        "profile": profile,
        "membership": {
            "date_joined": to_timestamp(row.get("date_joined")),
            "reachable": row.get("reachable"),
            "groupable": row.get("groupable"),
        },
        "_cdc": bookkeeping(comrade_id, state),
    }
    return Rendered(row["ssn"], comrade.version, document, tuple(problems))


def bookkeeping(comrade_id: int, state: MemberState) -> Row:
    """The ``_cdc`` map: which change version wrote each live part, as stored text."""
    comrade = state.comrade.version if state.comrade else None
    parts: Row = {COMRADE: _text(comrade)}
    for name in (CONTACTINFO, ADDRESS):
        p = state.get(name, None)
        if p is not None and p.row is not None:
            parts[name] = p.version.text()
    emails = {str(k): p.version.text() for k, p in sorted(state.emails.items())
              if p.row is not None}
    if emails:
        parts["emails"] = emails
    newest = max([p.version for p in state.all_parts()], default=None)
    body: Row = {"comrade_id": comrade_id, "claim": parts[COMRADE], "versions": parts,
                 "version": _text(newest)}
    settled = settled_at(state)
    if settled is not None:
        body["settled"] = settled.sortable()
        body["superseded"] = superseded(comrade, settled)
    return body


def _text(version: Version | None) -> str | None:
    return None if version is None else version.text()


def _live(part: Part | None) -> Row | None:
    return part.row if part is not None else None


def blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def enum_label(value: Any, labels: tuple[str, ...], name: str, problems: list[str]) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels):
        return labels[value]
    problems.append(f"{name} value {value!r} is out of range 0..{len(labels) - 1}")
    return "unknown"


def to_timestamp(value: Any) -> datetime | None:
    """'YYYY-MM-DD' -> midnight UTC; ISO-8601 timestamp -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) == 10:
        d = date.fromisoformat(value)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise ValueError(f"not a date or timestamp: {type(value).__name__}")


def primary_email(emails: dict[int, Part], contact: Row | None) -> str | None:
    """Primary Email row (lowest id), else lowest-id Email row, else ContactInfo email.

    Email rows whose address is blank do not count.
    """
    live = sorted((k, p.row) for k, p in emails.items()
                  if p.row is not None and blank_to_none(p.row.get("email")) is not None)
    primary = [row for _, row in live if row.get("is_primary") is True]
    chosen = primary[0] if primary else (live[0][1] if live else None)
    if chosen is not None:
        value: str | None = chosen["email"]
        return value
    fallback = blank_to_none((contact or {}).get("email"))
    return fallback if isinstance(fallback, str) else None


def address_of(row: Row | None) -> Row | None:
    if row is None:
        return None
    return {
        "street": blank_to_none(row.get("street_address")),
        "postalcode": blank_to_none(row.get("postal_code")),
        "city": blank_to_none(row.get("city")),
        "country": blank_to_none(row.get("country")),
    }
