"""A member document as a person sees it (``cdc members show``, ``cdc demo``):
read one, and mask its personal data unless asked not to.

Masked, in :func:`masked`: the kennitala as ``010170-****`` (the document id
and the ``kennitala`` field); names, the Facebook name, the street and the
city as their first letter and ``***`` per word (``Jón Jónsson`` ->
``J*** J***``); an e-mail address as ``j***@e***.is``; a phone number as its
last two digits (``***67``); a postal code as its first digit (``1**``). The
rest (enums, dates, flags, the country, ``_cdc``) is shown as it is: it says
whether the pipeline works and names nobody.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cdc.contract.times import iso_utc
from cdc.google_deadlines import call_options
from cdc.google_errors import google_boundary
from cdc.telemetry.redaction import mask_kennitala

MASK = "***"
_WORDS = ("name", "facebook")
_PHONES = ("phone", "foreign_phone")
_ADDRESS_WORDS = ("street", "city")


# -- masking (pure) ---------------------------------------------------------------

def mask_words(text: str) -> str:
    """``Jón Jónsson`` -> ``J*** J***``."""
    return " ".join(word[0] + MASK for word in text.split()) or MASK


def mask_email(address: str) -> str:
    """``jon@example.is`` -> ``j***@e***.is``."""
    local, _, domain = address.partition("@")
    if not domain:
        return mask_words(address)
    host, dot, tld = domain.rpartition(".")
    masked_domain = f"{host[:1]}{MASK}{dot}{tld}" if host else f"{tld[:1]}{MASK}"
    return f"{local[:1]}{MASK}@{masked_domain}"


def mask_phone(number: str) -> str:
    """``+354 555 1267`` -> ``***67``."""
    digits = [c for c in number if c.isdigit()]
    return MASK + "".join(digits[-2:]) if len(digits) > 4 else MASK


def mask_postal_code(code: str) -> str:
    """``101`` -> ``1**``."""
    code = code.strip()
    return code[:1] + "*" * max(len(code) - 1, 2)


def masked(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a member document with its personal data masked."""
    out = dict(doc)
    if isinstance(out.get("kennitala"), str):
        out["kennitala"] = mask_kennitala(out["kennitala"])
    profile = dict(out.get("profile") or {})
    for name in _WORDS:
        profile[name] = _masked(profile.get(name), mask_words)
    for name in _PHONES:
        profile[name] = _masked(profile.get(name), mask_phone)
    profile["email"] = _masked(profile.get("email"), mask_email)
    address = profile.get("address")
    if isinstance(address, dict):
        address = dict(address)
        for name in _ADDRESS_WORDS:
            address[name] = _masked(address.get(name), mask_words)
        address["postalcode"] = _masked(address.get("postalcode"), mask_postal_code)
        profile["address"] = address
    if "profile" in out:
        out["profile"] = profile
    return out


def _masked(value: Any, mask: Any) -> Any:
    return mask(value) if isinstance(value, str) and value else value


# -- reading ------------------------------------------------------------------------

def read_member(client: Any, collection: str, kennitala: str) -> dict[str, Any] | None:
    """The document ``<collection>/<kennitala>``, or None when there is none."""
    with google_boundary(f"reading {collection}/{kennitala}"):  # redacted where shown
        snap = client.collection(collection).document(kennitala).get(**call_options())
    return (snap.to_dict() or {}) if snap.exists else None


# -- output ---------------------------------------------------------------------------

def json_ready(value: Any) -> Any:
    """Timestamps as ISO-8601 UTC text, the rest as it is."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    return value


def to_json(doc_id: str, doc: dict[str, Any]) -> str:
    return json.dumps({"id": doc_id, **json_ready(doc)}, ensure_ascii=False, sort_keys=True)


def human_lines(doc_id: str, doc: dict[str, Any]) -> list[str]:
    """The document as a short table, one field a line."""
    profile, membership = doc.get("profile") or {}, doc.get("membership") or {}
    address = profile.get("address")
    rows = [
        ("name", profile.get("name")),
        ("birthday", _day(profile.get("birthday"))),
        ("gender", profile.get("gender")),
        ("housing situation", profile.get("housing_situation")),
        ("email", profile.get("email")),
        ("phone", profile.get("phone")),
        ("foreign phone", profile.get("foreign_phone")),
        ("facebook", profile.get("facebook")),
        ("address", ", ".join(str(address.get(k) or "-") for k in
                              ("street", "postalcode", "city", "country"))
         if isinstance(address, dict) else None),
        ("date joined", _moment(membership.get("date_joined"))),
        ("reachable", _yes_no(membership.get("reachable"))),
        ("groupable", _yes_no(membership.get("groupable"))),
        ("version", (doc.get("_cdc") or {}).get("version")),
    ]
    width = max(len(label) for label, _ in rows)
    head = f"{doc_id}" + (f" (django id {doc['django_id']})" if "django_id" in doc else "")
    return [head, *(f"  {label.ljust(width)}  {'-' if value is None else value}"
                    for label, value in rows)]


def one_line(doc_id: str, doc: dict[str, Any]) -> str:
    """The document in one line, for the demo's running echo."""
    profile, membership = doc.get("profile") or {}, doc.get("membership") or {}
    return (f"{doc_id}: {profile.get('name')!s:<16} email={profile.get('email')!s:<18} "
            f"housing={profile.get('housing_situation')!s:<8} "
            f"reachable={membership.get('reachable')}")


def changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
            shown_id: Any = mask_kennitala) -> list[str]:
    """Lines for what changed between two readings of a collection (ids to documents)."""
    lines = []
    for doc_id in sorted(set(before) | set(after)):
        old, new = before.get(doc_id), after.get(doc_id)
        if new is None:
            lines.append(f"{shown_id(doc_id)}: deleted")
        elif old != new:
            lines.append(("new " if old is None else "") + one_line(shown_id(doc_id), masked(new)))
    return lines


def _day(value: Any) -> Any:
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else value


def _moment(value: Any) -> Any:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else value


def _yes_no(value: Any) -> Any:
    return {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) else value
