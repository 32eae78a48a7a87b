"""``cdc verify``: are the member documents what Postgres implies? (docs/verify.md)

Roles, each in its own module:

* :mod:`.source` - Postgres in one REPEATABLE READ snapshot, rendered with the
  members consumer's own mapping, the way a backfill's events would be;
* :mod:`.sink` - the stored member documents (listed once, read again whole);
* :mod:`.compare` - pure: which documents are missing, unexpected or
  differing, and at which field paths;
* :mod:`.settle` - changes in flight are not differences: wait for the slot
  and the subscription, re-read only what differs;
* :mod:`.repair` - ``--repair`` through the backfill's own machinery;
* :mod:`.verifier` - one run, from both reads to the report.
"""
