"""What the members consumer remembers between batches, to skip Firestore reads.

* :class:`LruCache`: documents this process read or wrote recently, with their
  ``update_time``. A stale entry only costs a precondition conflict, after
  which the batch is read again.
* :class:`AbsenceGuess`: after many reads in a row found nothing (a first load
  into an empty collection), documents not seen are assumed absent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

# documents found absent in a row before uncached ones are assumed absent (see AbsenceGuess)
GUESS_AFTER = 200


class AbsenceGuess:
    """Skip reads that would find nothing: a first load into an empty collection.

    A read costs the Firestore emulator about three writes' worth, and a cold
    backfill reads two absent documents per member. After ``GUESS_AFTER``
    documents in a row were read and found absent, documents this process
    has not seen are assumed absent without a read. The guess is safe: every
    write of a document assumed absent carries the precondition
    ``exists=False``, so a wrong guess fails the commit, the applier forgets
    the batch and plans it again - and :meth:`wrong` stops the guessing until
    reads find nothing again.
    """

    def __init__(self, after: int = GUESS_AFTER) -> None:
        self.after = after
        self.absent_in_a_row = 0
        self.guessed = 0

    def active(self) -> bool:
        return self.after > 0 and self.absent_in_a_row >= self.after

    def saw(self, exists: bool) -> None:
        self.absent_in_a_row = 0 if exists else self.absent_in_a_row + 1

    def wrong(self) -> None:
        self.absent_in_a_row = 0


class LruCache:
    """A bounded map from document path to its last known :class:`Any`.

    Thread-safe: the runner's workers share one backend and its cache.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> Any | None:
        with self._lock:
            item = self._items.get(path)
            if item is not None:
                self._items.move_to_end(path)
            return item

    def put(self, path: str, value: Any) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[path] = value
            self._items.move_to_end(path)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def drop(self, path: str) -> None:
        with self._lock:
            self._items.pop(path, None)

    def __len__(self) -> int:
        return len(self._items)
