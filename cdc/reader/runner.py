"""The always-on reader: replication stream -> decoder -> events -> Pub/Sub.

Roles, each in its own module:

* :class:`~cdc.postgres.replication.client.ReplicationSession` - bytes from Postgres;
* :func:`~cdc.postgres.pgoutput.decoder.decode` - bytes to typed wire messages (pure);
* :class:`~cdc.reader.event_builder.EventBuilder` - messages to change events (pure);
* :class:`~cdc.pubsub.publisher.EventPublisher` - events to Pub/Sub, in order;
* :class:`~cdc.reader.confirmer.Confirmer` - which LSN may be confirmed to Postgres.

The LSN rule: a transaction's end LSN is confirmed only after Pub/Sub acked
every event of it and of every transaction before it. A keepalive's server
LSN, received between transactions, is confirmed once nothing is in flight,
so the slot advances while other tables or databases write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cdc.backoff import Backoff
from cdc.contract.events import ChangeEvent
from cdc.errors import CdcError, policy
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.decoder import decode
from cdc.postgres.replication.client import ReplicationSession, check_slot, connect, read_slot
from cdc.postgres.replication.protocol import Keepalive, XLogData, parse_copy_data
from cdc.pubsub.publisher import EventPublisher
from cdc.reader import metrics
from cdc.reader.confirmer import Confirmer
from cdc.reader.event_builder import EventBuilder, TransactionEnd
from cdc.settings import Settings
from cdc.telemetry.logs import fields

log = logging.getLogger(__name__)

PublisherFactory = Callable[[Settings, Callable[[TransactionEnd], None]],
                            EventPublisher[TransactionEnd]]


@dataclass
class ReaderOptions:
    status_interval_s: float = 10.0
    heartbeat_interval_s: float = 60.0  # 0 disables the heartbeat
    standby_poll_s: float = 5.0
    max_backoff_s: float = 10.0  # back at work within 10 s of the source's return
    drain_timeout_s: float = 30.0
    stall_after_s: float = 60.0


def default_publisher(settings: Settings, on_acked: Callable[[TransactionEnd], None]
                      ) -> EventPublisher[TransactionEnd]:
    return EventPublisher(settings, on_mark_acked=on_acked)


class Reader:
    """Runs replication sessions until :meth:`stop`; reconnects on faults."""

    def __init__(self, settings: Settings, options: ReaderOptions | None = None,
                 publisher_factory: PublisherFactory = default_publisher) -> None:
        self.settings = settings
        self.options = options or ReaderOptions()
        self._publisher_factory = publisher_factory
        self._stop = threading.Event()
        self.state = "starting"
        self.last_progress = time.monotonic()
        self.publisher: EventPublisher[TransactionEnd] | None = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def health(self) -> tuple[bool, str]:
        """200 only while streaming and not stalled."""
        if self.state != "streaming":
            return False, self.state
        publisher = self.publisher
        if publisher is not None and publisher.stalled_for > self.options.stall_after_s:
            return False, f"stalled: publishing has failed for {publisher.stalled_for:.0f}s"
        return True, "streaming"

    def alive(self) -> tuple[bool, str]:
        """/livez: the process runs, streaming or not (a standby waits, and is alive)."""
        return True, self.state

    def run(self) -> None:
        """Until stopped. Permanent errors propagate; retryable ones back off."""
        backoff = Backoff.of("session", cap=self.options.max_backoff_s)
        while not self.stopping:
            try:
                self._session()
                backoff.reset()
            except CdcError as exc:
                if not policy(exc).retry:
                    raise
                if policy(exc).backoff == "standby":
                    self._standby(exc)
                    continue
                delay = backoff.next_delay()
                self.state = "reconnecting"
                metrics.RECONNECTS.inc()
                log.warning("replication session failed; reconnecting",
                            extra=fields(error=exc.one_line(), retry_in_s=delay))
                self._stop.wait(delay)
            finally:
                metrics.STREAMING.set(0)
        self.state = "stopped"

    def _standby(self, exc: CdcError) -> None:
        if self.state != "standby":
            log.info("standby: another reader holds the slot", extra=fields(reason=str(exc)))
        self.state = "standby"
        self._stop.wait(self.options.standby_poll_s)

    def _session(self) -> None:
        s = self.settings
        conninfo = s.source_conninfo()
        slot = check_slot(read_slot(conninfo, s.slot), s.slot)
        start = slot.confirmed_flush or Lsn(0)
        confirmer = Confirmer(start)
        publisher = self._publisher_factory(s, _on_acked(confirmer))
        self.publisher = publisher
        try:
            session = ReplicationSession(conninfo, s.slot, s.publication, start)
        except BaseException:
            self._retire(publisher)
            raise
        try:
            self.state = "streaming"
            metrics.STREAMING.set(1)
            _Pump(self, session, publisher, confirmer).run()
        finally:
            self._finish(session, publisher, confirmer)

    def _finish(self, session: ReplicationSession, publisher: EventPublisher[TransactionEnd],
                confirmer: Confirmer) -> None:
        """On a stop, drain what is in flight and confirm it. Either way, the publisher
        is gone before the next session streams (:meth:`_retire`)."""
        try:
            if self.stopping:
                self._drain(publisher)
            else:
                self.state = "reconnecting"
        finally:
            self._retire(publisher)
        try:
            session.send_status(confirmer.confirmed, confirmer.confirmed)
            log.info("confirmed", extra=fields(lsn=str(confirmer.confirmed)))
        except CdcError as exc:
            log.warning("could not send the final status", extra=fields(error=exc.one_line()))
        session.close()


    def _drain(self, publisher: EventPublisher[TransactionEnd]) -> None:
        try:
            if not publisher.flush(self.options.drain_timeout_s):
                log.warning("stopping with unacked events; they are re-sent on restart")
        except CdcError as exc:
            log.warning("publisher failed while draining", extra=fields(error=exc.one_line()))

    def _retire(self, publisher: EventPublisher[TransactionEnd]) -> None:
        """Close the session's publisher for good before another session starts.

        The next session re-sends every unconfirmed event from the slot's confirmed
        LSN. A publisher left retrying would publish its copies after the new
        session's (breaking each key's order), so nothing of it may outlive this:
        its queue is dropped and its request in flight is waited for. A failed
        session is not drained: the connection is gone, so nothing could be
        confirmed, and during a Pub/Sub outage draining would only delay the
        reconnect.
        """
        publisher.close()
        while publisher.sending and not self.stopping:
            log.error("the publisher's request in flight has not returned; "
                      "waiting for it before streaming again")
            publisher.close()
        if self.publisher is publisher:
            self.publisher = None


def _on_acked(confirmer: Confirmer) -> Callable[[TransactionEnd], None]:
    def on_acked(end: TransactionEnd) -> None:
        confirmer.transaction_acked(end)

    return on_acked


class _Pump:
    """The loop of one session: read frames, publish events, send status."""

    def __init__(self, reader: Reader, session: ReplicationSession,
                 publisher: EventPublisher[TransactionEnd], confirmer: Confirmer) -> None:
        self.reader = reader
        self.session = session
        self.publisher = publisher
        self.confirmer = confirmer
        self.builder = EventBuilder()
        self.received = confirmer.confirmed
        self.last_status = 0.0
        self.sent_flush = Lsn(0)
        self.idle_lsn: Lsn | None = None  # a server LSN to confirm once all is acked
        self.heartbeat = _Heartbeat(reader.settings, reader.options.heartbeat_interval_s)

    def run(self) -> None:
        while not self.reader.stopping:
            if self.publisher.has_room(0.2):
                frame = self.session.read(timeout=0.5)
                if frame is not None:
                    self._handle(frame)
            self._confirm_idle()
            self._maybe_send_status()
            self.heartbeat.maybe_beat()

    def _handle(self, frame: bytes) -> None:
        parsed = parse_copy_data(frame)
        if isinstance(parsed, Keepalive):
            self._keepalive(parsed)
            return
        assert isinstance(parsed, XLogData)
        self.received = max(self.received, parsed.wal_end, parsed.wal_start)
        message = decode(parsed.payload, parsed.wal_start)
        for item in self.builder.on_message(message, parsed.wal_start):
            if isinstance(item, ChangeEvent):
                self.publisher.publish(item)
                self.heartbeat.saw_event()
            else:
                self.publisher.mark(item)
        self.reader.last_progress = time.monotonic()

    def _keepalive(self, keepalive: Keepalive) -> None:
        self.confirmer.saw_server(keepalive.wal_end)
        self.received = max(self.received, keepalive.wal_end)
        if not self.builder.in_transaction:
            # Every transaction that commits before it was sent before it. Once they
            # are acked, it may be confirmed (the loop's next turn); the server may
            # not send another.
            self.idle_lsn = keepalive.wal_end
        self.reader.last_progress = time.monotonic()
        if keepalive.reply_requested:
            self._send_status(reply=False)

    def _confirm_idle(self) -> None:
        if (self.idle_lsn is not None and not self.builder.in_transaction
                and self.publisher.pending == 0):
            self.confirmer.idle_at(self.idle_lsn)
            self.idle_lsn = None

    def _maybe_send_status(self) -> None:
        since = time.monotonic() - self.last_status
        advanced = self.confirmer.confirmed > self.sent_flush
        if since >= self.reader.options.status_interval_s or (advanced and since >= 0.5):
            self._send_status()

    def _send_status(self, reply: bool = False) -> None:
        flush = self.confirmer.confirmed
        self.session.send_status(max(self.received, flush), flush, reply=reply)
        self.sent_flush = flush
        self.last_status = time.monotonic()


class _Heartbeat:
    """Emits a WAL message on an idle source so the slot keeps moving."""

    def __init__(self, settings: Settings, interval_s: float) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.last = time.monotonic()

    def saw_event(self) -> None:
        self.last = time.monotonic()

    def maybe_beat(self) -> None:
        if self.interval_s <= 0 or time.monotonic() - self.last < self.interval_s:
            return
        self.last = time.monotonic()
        try:
            with connect(self.settings.source_conninfo(), autocommit=True) as conn:
                conn.execute("SELECT pg_logical_emit_message(false, 'cdc_heartbeat', %s)",
                             (datetime.now(UTC).isoformat(),))
        except Exception as exc:  # a heartbeat is best effort; the stream is what matters
            log.warning("heartbeat failed", extra=fields(error=str(exc).splitlines()[0]))
