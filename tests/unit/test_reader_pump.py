"""The reader's session loop with a fake session and publisher: what it confirms."""

from __future__ import annotations

from typing import cast

from cdc.contract.events import ChangeEvent
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.messages import Insert, Message
from cdc.postgres.replication.client import ReplicationSession
from cdc.pubsub.publisher import EventPublisher
from cdc.reader.confirmer import Confirmer
from cdc.reader.event_builder import TransactionEnd
from cdc.reader.runner import Reader, ReaderOptions, _Pump
from cdc.settings import Settings
from tests.unit import pgoutput_bytes as wire

COMRADE = wire.make_relation(16385, "membership_comrade", [wire.column("id", 20, key=True)])
BEGIN, COMMIT, END = Lsn.parse("0/1000"), Lsn.parse("0/1100"), Lsn.parse("0/1130")
SERVER = Lsn.parse("0/2000")  # past the commit: WAL that no event is about


class FakeSession:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.flushes: list[Lsn] = []

    def read(self, timeout: float) -> bytes | None:
        return self.frames.pop(0) if self.frames else None

    def send_status(self, write: Lsn, flush: Lsn, reply: bool = False) -> None:
        self.flushes.append(flush)


class FakePublisher:
    """Holds events and marks until :meth:`ack_all`, then calls back in order."""

    def __init__(self, confirmer: Confirmer) -> None:
        self.confirmer = confirmer
        self.items: list[ChangeEvent | TransactionEnd] = []

    def has_room(self, timeout: float = 0.0) -> bool:
        return True

    def publish(self, event: ChangeEvent) -> None:
        self.items.append(event)

    def mark(self, end: TransactionEnd) -> None:
        self.items.append(end)

    @property
    def pending(self) -> int:
        return len(self.items)

    def ack_all(self) -> None:
        for item in self.items:
            if isinstance(item, TransactionEnd):
                self.confirmer.transaction_acked(item)
        self.items.clear()


def frame(message: Message, at: Lsn) -> bytes:
    return wire.xlog_data(at, at, wire.encode(message))


def pump() -> tuple[_Pump, FakeSession, FakePublisher]:
    reader = Reader(Settings(project="p"), ReaderOptions(heartbeat_interval_s=0))
    confirmer = Confirmer(Lsn.parse("0/100"))
    session, publisher = FakeSession(), FakePublisher(confirmer)
    loop = _Pump(reader, cast(ReplicationSession, session),
                 cast(EventPublisher[TransactionEnd], publisher), confirmer)
    return loop, session, publisher


def step(loop: _Pump, session: FakeSession) -> None:
    """What one turn of the loop does with each frame waiting."""
    while session.frames:
        loop._handle(session.frames.pop(0))
        loop._confirm_idle()


def one_transaction(session: FakeSession) -> None:
    session.frames += [frame(COMRADE, BEGIN), frame(wire.make_begin(str(COMMIT)), BEGIN),
                       frame(Insert(16385, wire.text("7")), BEGIN),
                       frame(wire.make_commit(str(COMMIT), str(END)), COMMIT)]


def test_a_keepalive_while_events_are_unacked_is_confirmed_once_they_are_acked() -> None:
    loop, session, publisher = pump()
    one_transaction(session)
    session.frames.append(wire.keepalive(SERVER))  # the server's last word on an idle source
    step(loop, session)
    assert loop.confirmer.confirmed == Lsn.parse("0/100"), "nothing is acked yet"
    publisher.ack_all()
    loop._confirm_idle()
    assert loop.confirmer.confirmed == SERVER


def test_a_keepalive_with_nothing_in_flight_is_confirmed_at_once() -> None:
    loop, session, _ = pump()
    session.frames.append(wire.keepalive(SERVER))
    step(loop, session)
    assert loop.confirmer.confirmed == SERVER


def test_a_keepalive_inside_a_transaction_is_never_confirmed() -> None:
    loop, session, publisher = pump()
    one_transaction(session)
    commit = session.frames.pop()
    session.frames.append(wire.keepalive(SERVER))  # mid-transaction: may be past its commit
    step(loop, session)
    publisher.ack_all()
    loop._confirm_idle()
    assert loop.confirmer.confirmed == Lsn.parse("0/100")
    session.frames.append(commit)
    step(loop, session)
    publisher.ack_all()
    loop._confirm_idle()
    assert loop.confirmer.confirmed == END
