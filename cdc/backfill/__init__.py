"""``cdc backfill``: a full, consistent resync from an exported snapshot.

Roles, each in its own module (see docs/backfill.md):

* :mod:`.rows` - Python row values to the event contract's JSON types;
* :mod:`.kennitala` - which comrade rows can become member documents;
* :mod:`.scope` - which comrades a limited backfill reads: typed filters, no SQL text;
* :mod:`.plan` - what to read: tables, keys, the scope, chunk SQL;
* :mod:`.snapshot` - a temporary slot's exported snapshot, chunked reads, their events;
* :mod:`.state` - the resumable checkpoint, one Firestore document per backfill;
* :mod:`.runner` - one backfill run: snapshot events -> Pub/Sub, checkpoints;
* :mod:`.orphans` - member documents absent from the snapshot, with the guard;
* :mod:`.wait` - ``--wait``: watch Firestore until the snapshot is applied.
"""
