"""What differs between the documents Postgres implies and the stored ones. Pure.

Two levels:

* the full pass compares 16-byte digests of each document's content (without
  ``_cdc``; digest.py), so 100k members cost no more memory than their ids:
  :func:`candidates`;
* the members that differ there are read again whole, and
  :func:`differences` names the differing field paths (``profile.email``,
  ``django_id``), never the values.

A document written by the old signal-driven sync has no ``django_id``: it
differs at least there, so the cutover is complete only when CDC owns every
document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cdc.telemetry.logs import mask_kennitala

Kind = Literal["missing", "unexpected", "differing"]
MISSING: Kind = "missing"  # Postgres implies a document; Firestore has none
UNEXPECTED: Kind = "unexpected"  # Firestore has a document that no comrade implies
DIFFERING: Kind = "differing"  # both have it; some field differs
KINDS: tuple[Kind, ...] = (MISSING, UNEXPECTED, DIFFERING)


@dataclass(frozen=True)
class Expected:
    """A document Postgres implies, as the full pass keeps it."""

    comrade_id: int
    digest: bytes


@dataclass(frozen=True)
class Stored:
    """A stored document, as the full pass keeps it."""

    digest: bytes
    owner: int | None  # django_id, else _cdc.comrade_id: the comrade that wrote it


@dataclass(frozen=True)
class Difference:
    """One document that is not as Postgres implies. ``kennitala`` is the document id:
    internal, never printed (:meth:`public`)."""

    kind: Kind
    kennitala: str
    comrade_id: int | None = None  # the comrade Postgres has at this kennitala
    owner: int | None = None  # the comrade that wrote the stored document, when known
    fields: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        """What may be shown: the masked kennitala, ids and field paths."""
        return {"kind": self.kind, "kennitala": masked_id(self.kennitala),
                "comrade_id": self.comrade_id, "fields": list(self.fields)}


def masked_id(doc_id: str) -> str:
    """``010170-****`` for a kennitala; a document id of another shape is not shown."""
    if len(doc_id) == 10 and doc_id.isascii() and doc_id.isdigit():
        return mask_kennitala(doc_id)
    return f"(not a kennitala: {len(doc_id)} characters)"


def candidates(expected: Mapping[str, Expected], stored: Mapping[str, Stored]) -> list[Difference]:
    """Documents whose digests disagree (no field paths yet), by kennitala."""
    out: list[Difference] = []
    for kennitala, want in expected.items():
        have = stored.get(kennitala)
        if have is None:
            out.append(Difference(MISSING, kennitala, want.comrade_id))
        elif have.digest != want.digest:
            out.append(Difference(DIFFERING, kennitala, want.comrade_id, have.owner))
    out += [Difference(UNEXPECTED, k, None, have.owner)
            for k, have in stored.items() if k not in expected]
    return sorted(out, key=lambda d: d.kennitala)


def differences(expected: Mapping[str, tuple[int, dict[str, Any]]],
                stored: Mapping[str, tuple[int | None, dict[str, Any]]],
                kennitalas: Iterable[str]) -> list[Difference]:
    """Whole documents compared, for these kennitalas: kind and differing field paths.

    ``expected``: kennitala -> (comrade id, content); ``stored``: kennitala ->
    (owner, content), both without ``_cdc``.
    """
    out: list[Difference] = []
    for kennitala in sorted(set(kennitalas)):
        want, have = expected.get(kennitala), stored.get(kennitala)
        if want is None and have is None:
            continue
        if have is None:
            assert want is not None
            out.append(Difference(MISSING, kennitala, want[0]))
        elif want is None:
            out.append(Difference(UNEXPECTED, kennitala, None, have[0]))
        else:
            paths = differing_paths(want[1], have[1])
            if paths:
                out.append(Difference(DIFFERING, kennitala, want[0], have[0], tuple(paths)))
    return out


def differing_paths(expected: Mapping[str, Any], stored: Mapping[str, Any],
                    prefix: str = "") -> list[str]:
    """Dotted paths of the fields that differ, in order; maps are compared field by field.

    A field present on one side only differs (``django_id`` of a legacy
    document). Values compare with their types: ``True`` is not ``1``, an
    integer is not a double, as Firestore keeps them apart.
    """
    out: list[str] = []
    for key in sorted(set(expected) | set(stored)):
        path = f"{prefix}{key}"
        if key not in expected or key not in stored:
            out.append(path)
            continue
        want, have = expected[key], stored[key]
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            out += differing_paths(want, have, f"{path}.")
        elif not same_value(want, have):
            out.append(path)
    return out


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return not differing_paths(a, b)
    return bool(a == b)
