"""The garbage collector's settings for ``cdc`` processes.

CPython's defaults (a young collection every 700 container allocations, a
full one whenever the survivors grew by a quarter) suit small scripts. The
members consumer keeps a cache of 50k documents, a few hundred thousand
objects, and allocates briskly: messages in flight live for about a second,
long enough to be promoted by the default young collections, so the heap
"grew" all the time and a full collection (0.3-0.45 s, holding the GIL)
ran every three seconds. In a 100k-member resync the collector took 14.2 s
of the consumer's 60.3 CPU-seconds (9.6 s in 31 full collections, timed
with ``gc.callbacks``). With young collections every 50,000
allocations, objects in flight die young, no full collection was needed in
the whole run, and the consumer used 45.5 CPU-seconds (bench/README.md).

Reference cycles are still collected: the young generations are collected
as before, only less often, and the full collection still runs once enough
survivors pile up. :func:`apply` also freezes what exists at start-up
(imported modules, the clients' descriptors: ~100k objects), so a full
collection does not walk it again.
"""

from __future__ import annotations

import gc

YOUNG = 50_000  # container allocations between two collections of the youngest generation
MIDDLE = 50  # young collections between two of the middle generation
OLD = 10  # middle collections before a full one is considered (CPython's default)


def apply() -> None:
    """Set the thresholds and freeze the objects alive now (idempotent)."""
    gc.set_threshold(YOUNG, MIDDLE, OLD)
    gc.freeze()
