"""The replication client: a ``START_REPLICATION`` session on psycopg 3.

It is driven at the libpq level (``get_copy_data``/``put_copy_data``), and
knows nothing about pgoutput: it hands out raw CopyData frames and sends
standby status updates. Framing is parsed by :mod:`cdc.postgres.replication.protocol`.

psycopg errors are translated by cdc/postgres/errors.py; connecting is
cdc/postgres/connection.py's.
"""

from __future__ import annotations

import logging
import select
from dataclasses import dataclass

import psycopg
from psycopg import pq

from cdc.errors import SlotBusy, SlotLost, SourceMisconfigured, SourceUnavailable, first_line
from cdc.lsn import Lsn
from cdc.postgres.connection import (
    connect as connect,  # re-exported: the reader and backfill use it
)
from cdc.postgres.errors import translate
from cdc.postgres.replication.protocol import standby_status_update
from cdc.telemetry.logs import fields

log = logging.getLogger(__name__)

# The walsender prints timestamps with its own TimeZone and DateStyle.
SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601"
# what `pg_stat_activity` and `cdc teardown` show for the reader's session
APPLICATION_NAME = "cdc-run"


@dataclass(frozen=True)
class SlotInfo:
    name: str
    plugin: str | None
    database: str | None
    active_pid: int | None
    wal_status: str | None
    confirmed_flush: Lsn | None
    restart_lsn: Lsn | None


def read_slot(conninfo: str, slot: str) -> SlotInfo | None:
    """The slot's row in ``pg_replication_slots``, or None."""
    with connect(conninfo, autocommit=True) as conn:
        has_wal_status = conn.info.server_version >= 130000
        wal_status = "wal_status" if has_wal_status else "NULL"
        row = conn.execute(
            f"SELECT slot_name, plugin, database, active_pid, {wal_status}, "
            "confirmed_flush_lsn::text, restart_lsn::text "
            "FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    if row is None:
        return None
    return SlotInfo(row[0], row[1], row[2], row[3], row[4],
                    Lsn.parse(row[5]) if row[5] else None, Lsn.parse(row[6]) if row[6] else None)


def check_slot(info: SlotInfo | None, slot: str) -> SlotInfo:
    """Raise the right error for a slot that cannot be streamed from."""
    if info is None:
        raise SlotLost(f"replication slot {slot!r} does not exist",
                       hint="run `cdc setup` to create it, then `cdc backfill` to resync; "
                            "the reader never silently starts from 'now'")
    if info.wal_status == "lost" or info.restart_lsn is None:
        raise SlotLost(f"replication slot {slot!r} was invalidated: the WAL it needs is gone")
    if info.plugin != "pgoutput":
        raise SourceMisconfigured(f"replication slot {slot!r} uses plugin {info.plugin!r}",
                                  hint="drop it (`cdc teardown`) and run `cdc setup`")
    if info.active_pid is not None:
        raise SlotBusy(f"replication slot {slot!r} is in use by pid {info.active_pid}",
                       hint="another `cdc run` is active; this one waits in standby")
    return info


class ReplicationSession:
    """One streaming session; iterate :meth:`read` and call :meth:`send_status`."""

    def __init__(self, conninfo: str, slot: str, publication: str, start: Lsn) -> None:
        self.slot = slot
        self._conn = connect(conninfo, autocommit=True, replication="database",
                             options=SESSION_OPTIONS, application_name=APPLICATION_NAME)
        self._pg = self._conn.pgconn
        proto = "proto_version '1', publication_names '{}'".format(publication.replace("'", ""))
        if self._conn.info.server_version >= 140000:
            proto += ", messages 'true'"
        command = f"START_REPLICATION SLOT {slot} LOGICAL {start} ({proto})"
        try:
            self._conn.execute(command)
        except psycopg.Error as exc:
            self.close()
            raise translate(exc, f"starting replication from slot {slot!r}") from exc
        log.info("replication started", extra=fields(slot=slot, start_lsn=str(start)))

    def read(self, timeout: float) -> bytes | None:
        """The next CopyData frame, or None when nothing arrived in ``timeout``."""
        while True:
            nbytes, data = self._pg.get_copy_data(1)
            if nbytes > 0:
                return bytes(data)
            if nbytes == 0:
                if not self._wait_readable(timeout):
                    return None
                timeout = 0.0
                continue
            raise self._stream_ended()

    def _wait_readable(self, timeout: float) -> bool:
        try:
            ready, _, _ = select.select([self._pg.socket], [], [], timeout)
            if not ready:
                return False
            self._pg.consume_input()
        except (OSError, psycopg.Error) as exc:
            raise SourceUnavailable(f"replication connection lost: {first_line(exc)}") from exc
        return True

    def _stream_ended(self) -> Exception:
        result = self._pg.get_result()
        failed = result is not None and result.status == pq.ExecStatus.FATAL_ERROR
        source = result if failed and result is not None else self._pg
        message = source.get_error_message().strip() or "the server ended the replication stream"
        if "can no longer get changes" in message or "has been removed" in message:
            return SlotLost(f"replication slot {self.slot!r}: {message}")
        return SourceUnavailable(f"replication stream ended: {message}")

    def send_status(self, write: Lsn, flush: Lsn, *, reply: bool = False) -> None:
        """Tell the server what we received (write) and made durable (flush)."""
        frame = standby_status_update(write, flush, flush, reply=reply)
        try:
            self._pg.put_copy_data(frame)
            self._pg.flush()
        except Exception as exc:
            raise SourceUnavailable(f"cannot send standby status: {first_line(exc)}") from exc

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception as exc:  # closing a broken connection must not mask the real error
            log.debug("close failed", extra=fields(error=str(exc)))
