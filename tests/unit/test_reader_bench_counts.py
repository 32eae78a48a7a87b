"""bench/reader_bench.py's decode step counts every row or fails loudly."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench.reader_bench import CountedNothing, _build_events, _count_inserts, _frames, rate
from cdc.lsn import Lsn
from cdc.postgres.pgoutput.messages import Insert, Message
from cdc.postgres.replication.protocol import XLogData
from tests.unit import pgoutput_bytes as wire

COMRADE = wire.make_relation(16385, "membership_comrade", [wire.column("id", 23, key=True),
                                                           wire.column("ssn")])
END = Lsn.parse("0/16B3778")


class HalfReceived:
    """A session whose reads time out now and then mid-stream, as a real one does
    while a frame is half received or the server is still decoding."""

    def __init__(self, rows: int) -> None:
        messages: list[Message] = [wire.make_begin(), COMRADE,
                    *(Insert(16385, wire.text(str(n), f"{n:010d}")) for n in range(rows)),
                    wire.make_commit()]
        frames = [wire.xlog_data(Lsn(0x16B3700 + i), END, wire.encode(m))
                  for i, m in enumerate(messages)]
        self._reads: Iterator[bytes | None] = iter(
            [None, *(x for f in frames for x in (f, None))])

    def read(self, timeout: float) -> bytes | None:
        return next(self._reads)


def _frames_of(session: HalfReceived) -> Iterator[XLogData]:
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        yield from _frames(session, sink)
    finally:
        os.close(sink)


def test_reads_that_time_out_mid_stream_do_not_end_the_count() -> None:
    assert _count_inserts(_frames_of(HalfReceived(5)), END) == 5
    assert _build_events(_frames_of(HalfReceived(5)), END) == 5


@pytest.mark.parametrize("counted", [0, 4])
def test_a_run_that_did_not_count_every_row_exits_non_zero_with_a_message(counted: int) -> None:
    with pytest.raises(CountedNothing) as caught:
        rate("receive+decode+events", counted, 5, 0.4)
    assert caught.value.code != 0
    assert f"counted {counted:,} of 5 rows" in str(caught.value.code)


def test_a_complete_run_has_a_rate() -> None:
    assert rate("receive+decode", 5, 5, 0.5) == 10.0
