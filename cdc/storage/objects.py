"""Cloud Storage objects, read and written whole, guarded by their generation.

A *generation* is the version number Cloud Storage gives every write of an
object; 0 stands for "no such object". :meth:`Objects.write` uploads in one
request with ``if_generation_match``: readers see the old object or the new
one, never a mix, and of two writers that started from the same generation
only one succeeds; the other gets :class:`~cdc.errors.Conflict`. Errors are
translated by :func:`cdc.google_errors.storage_boundary`.

:class:`ObjectStore` is what the callers need; :class:`MemoryObjects` is the
in-memory one the unit tests and benchmarks use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from cdc.errors import Conflict, SinkMisconfigured
from cdc.google_errors import storage_boundary

TIMEOUT_S = 60.0  # one request; the caller's retry loop backs off between tries


@dataclass(frozen=True)
class Stored:
    data: bytes
    generation: int


class ObjectStore(Protocol):
    def read(self, name: str) -> Stored | None: ...
    def write(self, name: str, data: bytes, *, if_generation: int,
              content_type: str = ...) -> int: ...
    def delete(self, name: str) -> None: ...


class Objects:
    """The objects of one bucket (``google-cloud-storage``; STORAGE_EMULATOR_HOST applies)."""

    def __init__(self, bucket: str, project: str | None = None, client: Any = None) -> None:
        self.bucket_name = bucket
        with storage_boundary("connecting to Cloud Storage", bucket):
            if client is None:
                from google.cloud import storage  # type: ignore[attr-defined]

                client = storage.Client(project=project)
            self._bucket = client.bucket(bucket)

    def check_bucket(self) -> None:
        """SinkMisconfigured when the bucket does not exist (a missing object is no error,
        and Cloud Storage answers a missing bucket's object as a missing object)."""
        with storage_boundary(f"reading bucket {self.bucket_name}", self.bucket_name):
            found = self._bucket.exists(timeout=TIMEOUT_S, retry=None)
        if not found:
            raise SinkMisconfigured(f"bucket {self.bucket_name} not found",
                                    hint=f"create it (gcloud storage buckets create "
                                         f"gs://{self.bucket_name}) or set CDC_ROSTER_BUCKET")

    def read(self, name: str) -> Stored | None:
        """The object and its generation; None when there is none."""
        with storage_boundary(f"reading gs://{self.bucket_name}/{name}", self.bucket_name):
            blob = self._bucket.get_blob(name, timeout=TIMEOUT_S, retry=None)
            if blob is None:
                return None
            generation = int(blob.generation)
            data = blob.download_as_bytes(if_generation_match=generation, timeout=TIMEOUT_S,
                                          retry=None)
        return Stored(data, generation)

    def write(self, name: str, data: bytes, *, if_generation: int,
              content_type: str = "text/plain; charset=utf-8") -> int:
        """Upload ``data`` in one request if the object is still at ``if_generation``
        (0: absent); its new generation. :class:`Conflict` when another write was first."""
        with storage_boundary(f"writing gs://{self.bucket_name}/{name}", self.bucket_name):
            blob = self._bucket.blob(name)
            blob.upload_from_string(data, content_type=content_type,
                                    if_generation_match=if_generation, timeout=TIMEOUT_S,
                                    retry=None)
            return int(blob.generation)

    def delete(self, name: str) -> None:
        with storage_boundary(f"deleting gs://{self.bucket_name}/{name}", self.bucket_name):
            blob = self._bucket.get_blob(name, timeout=TIMEOUT_S, retry=None)
            if blob is not None:
                blob.delete(timeout=TIMEOUT_S, retry=None)


class MemoryObjects:
    """An in-memory bucket with the same preconditions (unit tests, benchmarks)."""

    def __init__(self) -> None:
        self.objects: dict[str, Stored] = {}
        self.writes = 0
        self._next = 1
        self._lock = threading.Lock()

    def read(self, name: str) -> Stored | None:
        with self._lock:
            return self.objects.get(name)

    def write(self, name: str, data: bytes, *, if_generation: int,
              content_type: str = "text/plain; charset=utf-8") -> int:
        with self._lock:
            current = self.objects.get(name)
            if (current.generation if current else 0) != if_generation:
                raise Conflict(f"writing {name}: another writer was first")
            self._next += 1
            self.objects[name] = Stored(bytes(data), self._next)
            self.writes += 1
            return self._next

    def delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(name, None)
