"""``cdc backfill``: a full, consistent resync from a snapshot (docs/backfill.md)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, NoReturn

import click

from cdc.backfill.checkpoint import ABANDONED, PUBLISHED, RUNNING, StateStore
from cdc.backfill.parts import wait_for_backfill
from cdc.backfill.read_plan import DEFAULT_CHUNK
from cdc.backfill.runner import Backfill, BackfillOptions, Outcome, refuse_legacy_where
from cdc.backfill.scope import IdRange
from cdc.backfill.wait import WaitReport
from cdc.cli.options import with_settings
from cdc.cli.scope_options import scope_of, scope_options
from cdc.errors import CdcError, ConfigError, policy
from cdc.settings import Settings
from cdc.telemetry.redaction import redact

# With no consumer, `--wait` says so within a minute of the command's start (issue #4):
# the seconds count from the start of publishing (cdc/backfill/wait.py), and pacing
# gives up after half of them.
STALL_TIMEOUT_S = 45.0


@click.command()
@with_settings("database_url", "slot", "tables", "project", "topic", "ordering_keys",
               "members_collection")
@click.option("--wait", is_flag=True,
              help="return 0 only once Firestore reflects the snapshot; show progress")
@click.option("--resume", is_flag=True,
              help="continue the interrupted backfill (with a new snapshot for the rest)")
@click.option("--abandon", is_flag=True, help="drop the interrupted backfill and its state")
@scope_options
@click.option("--dry-run", is_flag=True, help="report what would change; publish nothing")
@click.option("--allow-mass-delete", is_flag=True,
              help="delete orphans even when they are over 10% of the member documents")
@click.option("--stall-timeout", envvar="CDC_STALL_TIMEOUT", default=STALL_TIMEOUT_S,
              show_default=True, show_envvar=True, type=float,
              help="--wait fails when nothing is applied for this many seconds")
@click.option("--chunk-size", default=DEFAULT_CHUNK, show_default=True, type=int, hidden=True)
@click.option("--stop-after-chunks", default=None, type=int, hidden=True)
def backfill(settings: Settings, wait: bool, resume: bool, abandon: bool,
             kennitalas: tuple[str, ...], comrade_ids: tuple[IdRange, ...],
             joined_after: date | None, dry_run: bool, allow_mass_delete: bool,
             stall_timeout: float, chunk_size: int, stop_after_chunks: int | None) -> None:
    """Publish every row of a consistent snapshot as op "r" events.

    Tables: --tables / CDC_TABLES. Members in Firestore that are not in the
    snapshot are deleted at the end (full resyncs only, with a 10% guard).
    --kennitala, --comrade-id and --joined-after limit the comrades read
    (child rows follow their comrade); a limited resync deletes nothing.
    """
    scope = scope_of(kennitalas, comrade_ids, joined_after)
    if abandon and (wait or resume or dry_run or not scope.everything):
        raise click.UsageError("--abandon drops the interrupted backfill; it takes no "
                               "--wait, --resume, --dry-run or scope options")
    store = StateStore(settings)
    if abandon:
        _abandon(store)
        return
    with _interruptible(store) as stage:
        if resume and wait and not store.unfinished():
            stage.waiting = True
            _wait_again(settings, store, stall_timeout)
            return
        options = BackfillOptions(scope=scope, dry_run=dry_run, resume=resume,
                                  allow_mass_delete=allow_mass_delete, compare=wait, pace=wait,
                                  pace_patience_s=stall_timeout / 2,
                                  chunk_size=chunk_size, stop_after_chunks=stop_after_chunks)
        outcome = Backfill(settings, options, store=store).run()
        _print_run(settings, outcome)
        if dry_run or not wait:
            return
        stage.waiting = True
        report = wait_for_backfill(settings, store.client, outcome.state,
                                   outcome.preflight.member_ids,
                       stall_timeout, outcome.pacer)
        _print_summary(outcome, report)


@dataclass
class _Stage:
    """How far the command got: what to tell the user if it stops now."""

    waiting: bool = False  # the snapshot is published; only the wait is left


@contextmanager
def _interruptible(store: StateStore) -> Iterator[_Stage]:
    """Say how to go on after Ctrl-C or SIGTERM (exit 130, 128 + SIGINT), or when a
    service stayed unreachable past its retries (exit 1)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _as_interrupt) if main else None
    stage = _Stage()
    try:
        yield stage
    except KeyboardInterrupt:
        click.echo("", err=True)  # end the progress line
        click.echo(f"interrupted: {_how_to_go_on(store, stage.waiting)}", err=True)
        sys.exit(130)
    except CdcError as exc:
        if not policy(exc).retry:
            raise
        click.echo("", err=True)
        click.echo(f"error: {redact(exc.one_line())}", err=True)
        click.echo(f"then: {_how_to_go_on(store, stage.waiting)}", err=True)
        sys.exit(1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _as_interrupt(_signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt


def _how_to_go_on(store: StateStore, waiting: bool) -> str:
    """What this run left behind, from the state it last saved (no read: the
    service that failed may be the one holding the state)."""
    if waiting:
        return ("the snapshot is published and consumers go on applying it; "
                "`cdc backfill --resume --wait` keeps waiting")
    state = store.last_saved
    if state is None or state.status != RUNNING:
        return "this run published nothing; run the same command again"
    return (f"backfill {state.id} stopped after {state.checkpoint.events:,} events acked by "
            "Pub/Sub; its temporary replication slot ended with it. "
            "`cdc backfill --resume --wait` continues it where it stopped, "
            "`cdc backfill --abandon` drops it")


def _abandon(store: StateStore) -> None:
    unfinished = store.unfinished()
    if not unfinished:
        click.echo("no interrupted backfill to abandon")
        return
    for state in unfinished:
        state.status = ABANDONED
        store.save(state)
        click.echo(f"abandoned backfill {state.id} (started {state.started_at}); its temporary "
                   "replication slot ended with its process, and the events it published "
                   "stay valid")


def _wait_again(settings: Settings, store: StateStore, stall_timeout: float) -> None:
    state = store.latest()
    if state is None or state.status != PUBLISHED:
        raise ConfigError("--resume --wait: no published backfill to wait for",
                          hint="start one with `cdc backfill --wait`")
    refuse_legacy_where(state)
    pre = Backfill(settings, BackfillOptions(dry_run=True, scope=state.filters),
                   store=store).preflight_only()
    click.echo(f"waiting for backfill {state.id} (snapshot at LSN {state.lsn})")
    report = wait_for_backfill(settings, store.client, state, pre.member_ids, stall_timeout)
    click.echo(f"backfill {state.id} is applied: {report.applied:,} members, "
               f"{report.stale:,} superseded by newer live changes")


def _print_run(settings: Settings, outcome: Outcome) -> None:
    state, pre = outcome.state, outcome.preflight
    ckpt = state.checkpoint
    scope = state.filters
    if not scope.everything:
        click.echo(f"scope: {scope.describe()} (orphans are not deleted)")
        if not pre.members and not pre.rejected:
            click.echo("no comrade matches the scope: nothing to resync")
    head = f"backfill {state.id}: snapshot at LSN {state.lsn}"
    if len(state.parts) > 1:
        head += f" (resumed; {len(state.parts)} snapshots, first at {state.first_lsn})"
    click.echo(head)
    if state.status != PUBLISHED:  # dry run
        diff = outcome.diff
        click.echo(f"dry run: {pre.members:,} members, {pre.rows:,} rows would be published; "
                   f"would create {diff.created:,}, update {diff.updated:,}, leave "
                   f"{diff.unchanged:,} unchanged, delete {outcome.would_delete:,} orphans, "
                   f"reject {len(pre.rejected):,} comrades")
        _print_rejected(settings, state.rejected, len(pre.rejected), would=True)
        return
    click.echo(f"published {ckpt.events:,} events ({ckpt.rows_read:,} rows, "
               f"{pre.members:,} members); dead-lettered {ckpt.dead_lettered:,}; "
               f"deleted {outcome.deleted:,} orphan documents")
    _print_rejected(settings, state.rejected, len(pre.rejected), would=False)


def _print_rejected(settings: Settings, rejected: list[dict[str, Any]], total: int,
                    *, would: bool) -> None:
    if not total:
        return
    verb = "would be dead-lettered" if would else f"dead-lettered to {settings.dead_letter_topic}"
    click.echo(f"{total:,} comrades cannot become documents ({verb}, with their child rows):")
    for item in rejected[:10]:
        click.echo(f"  comrade id {item['id']}: {redact(str(item['reason']))}")
    if total > 10:
        click.echo(f"  ... and {total - 10:,} more (see the dead-letter topic)")


def _print_summary(outcome: Outcome, report: WaitReport) -> None:
    diff, ckpt = outcome.diff, outcome.state.checkpoint
    click.echo(f"summary: created {diff.created:,}, updated {diff.updated:,}, "
               f"unchanged {diff.unchanged:,}, deleted {outcome.deleted:,}, "
               f"skipped as stale {report.stale:,}, failed {ckpt.dead_lettered:,}")
