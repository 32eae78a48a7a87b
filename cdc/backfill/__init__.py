"""``cdc backfill``: a full, consistent resync from an exported snapshot.

Roles, each in its own module (see docs/backfill.md):

* :mod:`.scope` - which comrades a limited backfill reads: typed filters, no SQL text;
* :mod:`.read_plan` - what to read: tables, keys, the scope, chunk SQL;
* :mod:`.snapshot` - a temporary slot's exported snapshot, chunked reads, their events;
* :mod:`.rows` - Python row values to the event contract's JSON types;
* :mod:`.duplicates` - comrade rows that share a kennitala cannot become documents;
* :mod:`.checkpoint` - the resumable state, one Firestore document per backfill;
* :mod:`.runner` - one backfill run: snapshot events -> Pub/Sub, checkpoints;
* :mod:`.pacing` - publish at the pace the consumer applies, with ``--wait``;
* :mod:`.orphans` - member documents absent from the snapshot, with the guard;
* :mod:`.diff` - what the snapshot changes in the documents (dry run, summary);
* :mod:`.parts` - which snapshot each member of a resumed backfill is settled at;
* :mod:`.wait` - ``--wait``: watch Firestore until the snapshot is applied.
"""
