"""The Firestore side of the member store: batched reads, guarded batched writes, a cache."""

from __future__ import annotations

from typing import Any

from google.cloud import firestore

from cdc.errors import ContentRefused
from cdc.firestore import document_rpc, encoding
from cdc.member.index import index_collection_name
from cdc.member.state import Row
from consumers.members.applier import Loaded
from consumers.members.cache import GUESS_AFTER, AbsenceGuess, LruCache
from consumers.members.plan import Writes

ABSENT = Loaded(None, None)

# what the planner needs of each document: index state, member owner and claim
_FIELDS = ["kennitala", "state", "django_id", "_cdc.claim"]


class FirestoreBackend:
    def __init__(self, client: firestore.Client, members_collection: str,
                 cache_size: int = 50_000, guess_after: int = GUESS_AFTER) -> None:
        self.client = client
        self.members = client.collection(members_collection)
        self.index = client.collection(index_collection_name(members_collection))
        self.cache = LruCache(cache_size)
        self.guess = AbsenceGuess(guess_after)

    def _index_path(self, cid: int) -> str:
        return f"i/{cid}"

    def _member_path(self, kennitala: str) -> str:
        return f"m/{kennitala}"

    def load(self, index_ids: set[int], member_ids: set[str]) -> tuple[
            dict[int, Loaded], dict[str, Loaded]]:
        index: dict[int, Loaded] = {}
        members: dict[str, Loaded] = {}
        refs: list[str] = []
        guess = self.guess.active()
        for cid in index_ids:
            hit = self.cache.get(self._index_path(cid))
            if hit is not None:
                index[cid] = hit
            elif guess:
                index[cid] = ABSENT
                self.guess.guessed += 1
            else:
                refs.append(document_rpc.document_path(self.client, self.index, str(cid)))
        for kennitala in member_ids:
            hit = self.cache.get(self._member_path(kennitala))
            if hit is not None:
                members[kennitala] = hit
            elif guess:
                members[kennitala] = ABSENT
                self.guess.guessed += 1
            else:
                refs.append(document_rpc.document_path(self.client, self.members, kennitala))
        for path, doc in document_rpc.read(self.client, refs, _FIELDS):
            self.guess.saw(doc is not None)
            loaded = Loaded(None, None) if doc is None else Loaded(
                document_rpc.decode_map(doc.fields), encoding.copy_timestamp(doc.update_time))
            collection, name = path.rsplit("/", 2)[-2:]
            if collection == self.index.id:
                index[int(name)] = loaded
                self.cache.put(self._index_path(int(name)), loaded)
            else:
                members[name] = loaded
                self.cache.put(self._member_path(name), loaded)
        return index, members

    def commit(self, writes: Writes, index: dict[int, Loaded],
               members: dict[str, Loaded]) -> None:
        request, after = self._request(writes, index, members)
        # a failed precondition is a Conflict, a refused document a ContentRefused
        times = document_rpc.commit(self.client, request, "writing member documents")
        for (path, data), time in zip(after, times, strict=True):
            self.cache.put(path, Loaded(data, time if data is not None else None))

    def _request(self, writes: Writes, index: dict[int, Loaded], members: dict[str, Loaded]
                 ) -> tuple[Any, list[tuple[str, Row | None]]]:
        """The CommitRequest, and what the cache keeps of each write once it is done.

        A value no Firestore document can hold (an integer beyond int64) is
        refused here, before anything is sent.
        """
        request = document_rpc.commit_request(self.client)
        after: list[tuple[str, Row | None]] = []
        try:
            for cid, body in writes.index.items():
                name = document_rpc.document_path(self.client, self.index, str(cid))
                encoding.replace(request.writes.add(), name, body, index[cid].token)
                after.append((self._index_path(cid), body))
            for kennitala, doc in writes.members.items():
                name = document_rpc.document_path(self.client, self.members, kennitala)
                token = members[kennitala].token
                if doc is None:
                    encoding.delete(request.writes.add(), name, token)
                else:
                    encoding.replace(request.writes.add(), name, doc, token)
                after.append((self._member_path(kennitala), _owner_fields(doc)))
        except (ValueError, TypeError) as exc:  # their text quotes the value: never pass it on
            raise ContentRefused(_unencodable(exc)) from None
        return request, after

    def forget(self, index_ids: set[int], member_ids: set[str]) -> None:
        self.guess.wrong()  # a conflict or an unknown outcome: read before writing again
        for cid in index_ids:
            self.cache.drop(self._index_path(cid))
        for kennitala in member_ids:
            self.cache.drop(self._member_path(kennitala))


def _unencodable(exc: Exception) -> str:
    if isinstance(exc, ValueError) and "out of range" in str(exc):
        return "integer beyond int64, refused before sending"
    return f"{type(exc).__name__}, refused before sending"


def _owner_fields(doc: Row | None) -> Row | None:
    """What the cache keeps of a member document: enough to decide ownership."""
    if doc is None:
        return None
    return {"kennitala": doc.get("kennitala"), "django_id": doc.get("django_id"),
            "_cdc": {"claim": doc.get("_cdc", {}).get("claim")}}
