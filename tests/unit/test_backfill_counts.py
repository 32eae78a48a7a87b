"""The --wait summary's created/updated/unchanged counts of a full resync (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from cdc.backfill.diff import content_digest, rendered_documents
from cdc.backfill.orphans import OrphanScan
from cdc.backfill.runner import Backfill, BackfillOptions, Preflight
from cdc.settings import Settings
from tests.factories import kennitala
from tests.unit.member_fakes import comrade_row, event


class _Store:
    class client:  # stands in for a Firestore client
        @staticmethod
        def collection(name: str) -> str:
            return name


def _backfill() -> Backfill:
    return Backfill(Settings(project="p"), BackfillOptions(compare=True),
                    store=_Store())  # type: ignore[arg-type]


def test_a_full_resync_renders_only_members_that_have_a_document(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ssns = {cid: kennitala(cid) for cid in (1, 2, 3, 4)}
    events = [event("r", "membership_comrade", comrade_row(cid, ssn))
              for cid, ssn in ssns.items()]
    rendered = rendered_documents(events)
    digests = {ssns[2]: content_digest(rendered[ssns[2]]),  # unchanged
               ssns[3]: b"other content digest"}            # updated
    pre = Preflight(member_ids={s: cid for cid, s in ssns.items()},
                    orphans=OrphanScan([], 2, digests), listed={2, 3})
    seen: list[Any] = []

    def counting(events: Any) -> dict[str, dict[str, Any]]:
        events = list(events)
        seen.extend(e.comrade_id() for e in events)
        return rendered_documents(events)

    monkeypatch.setattr("cdc.backfill.runner.rendered_documents", counting)
    counts = _backfill()._compare(pre, events)
    assert (counts.created, counts.updated, counts.unchanged) == (2, 1, 1)
    assert sorted(seen) == [2, 3]
