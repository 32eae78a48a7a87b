"""The roster's objects in the bucket: the roster, its state, a hold and an approval.

``<object>`` (``kennitalas.txt``)   the roster (cdc/member/roster.py)
``<object>.state.json``             each comrade's ``ssn`` and version (consumers/roster/state.py)
``<object>.hold.json``              an upload the drop guard holds back (counts only)
``<object>.approval.json``          ``cdc roster approve``: the generation it lets drop

Every write is conditional on the generation that was read (cdc/storage/objects.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson

from cdc.errors import SinkMisconfigured
from cdc.member import roster
from cdc.member.roster import RosterChange
from cdc.storage.objects import ObjectStore
from consumers.roster.state import RosterState

JSON = "application/json"


@dataclass(frozen=True)
class Hold:
    """An upload held back: from the object at ``generation``, with these counts."""

    generation: int
    before: int
    after: int
    added: int
    removed: int
    held_at: str

    @classmethod
    def of(cls, generation: int, change: RosterChange) -> Hold:
        return cls(generation, change.before, change.after, change.added, change.removed,
                   datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def change(self) -> RosterChange:
        return RosterChange(self.before, self.after, self.added, self.removed)


class RosterStore:
    def __init__(self, objects: ObjectStore, name: str) -> None:
        self.objects = objects
        self.name = name
        self.state_name = f"{name}.state.json"
        self.hold_name = f"{name}.hold.json"
        self.approval_name = f"{name}.approval.json"

    def read_roster(self) -> tuple[set[str], int]:
        """The kennitalas in the object and its generation (an absent object: empty, 0)."""
        stored = self.objects.read(self.name)
        return (roster.parse(stored.data), stored.generation) if stored else (set(), 0)

    def write_roster(self, kennitalas: set[str], generation: int) -> int:
        return self.objects.write(self.name, roster.render(kennitalas), if_generation=generation)

    def read_state(self) -> tuple[RosterState, int]:
        stored = self.objects.read(self.state_name)
        if stored is None:
            return RosterState(), 0
        try:
            return RosterState.from_json(stored.data), stored.generation
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise SinkMisconfigured(
                f"{self.state_name} is not a roster state ({type(exc).__name__})",
                hint=f"delete it (its roster is rebuilt by `cdc backfill`); "
                     f"{self.name} is left as it is until then") from exc

    def write_state(self, state: RosterState, generation: int) -> int:
        return self.objects.write(self.state_name, state.to_json(), if_generation=generation,
                                  content_type=JSON)

    # -- the guard's markers --------------------------------------------------------
    def read_hold(self) -> Hold | None:
        stored = self.objects.read(self.hold_name)
        return Hold(**orjson.loads(stored.data)) if stored else None

    def write_hold(self, hold: Hold) -> None:
        current = self.objects.read(self.hold_name)
        self.objects.write(self.hold_name, orjson.dumps(asdict(hold)),
                           if_generation=current.generation if current else 0,
                           content_type=JSON)

    def approved_generation(self) -> int | None:
        stored = self.objects.read(self.approval_name)
        if stored is None:
            return None
        value = orjson.loads(stored.data).get("generation")
        return value if isinstance(value, int) else None

    def approve(self, hold: Hold) -> None:
        current = self.objects.read(self.approval_name)
        body = {"generation": hold.generation, "approved_at":
                datetime.now(UTC).isoformat(timespec="seconds"), "removed": hold.removed}
        self.objects.write(self.approval_name, orjson.dumps(body),
                           if_generation=current.generation if current else 0,
                           content_type=JSON)

    def clear_guard(self) -> None:
        self.objects.delete(self.hold_name)
        self.objects.delete(self.approval_name)
