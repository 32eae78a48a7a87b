"""``cdc status``: is the pipeline healthy, and how far behind is it?

Reads the slot and publication from the source (:mod:`cdc.postgres.catalog`),
the newest audit record and the dead-letter depth from Google
(:mod:`cdc.status.sink`). Exit 1 when something needs attention: the slot is
missing, inactive or losing WAL, the lag is over ``--max-lag-bytes``, a captured
table does not exist, or a figure could not be read (unknown is not good).
"""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from cdc.cli.options import SOURCE, with_settings
from cdc.postgres import provisioning
from cdc.postgres.catalog import SourceState, read_source_state
from cdc.postgres.errors import postgres_boundary
from cdc.settings import Settings
from cdc.status import sink as sink_status

GIB = 1024**3


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of a table")
@click.option("--max-lag-bytes", envvar="CDC_MAX_LAG_BYTES", type=click.IntRange(min=0),
              default=GIB, show_default=f"{GIB} (1 GiB)", show_envvar=True,
              help="lag above which the status needs attention")
@with_settings(*SOURCE, "project", "topic", "audit_collection")
def status(settings: Settings, as_json: bool, max_lag_bytes: int) -> None:
    """Slot state, lag, WAL retained, publication, last event and dead letters."""
    report = gather(settings, max_lag_bytes)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(report))
    sys.exit(1 if report["attention"] else 0)


def gather(settings: Settings, max_lag_bytes: int) -> dict[str, Any]:
    """Everything ``cdc status`` shows, as a JSON-ready dict."""
    with provisioning.connect_source(settings, purpose="status") as conn, \
            postgres_boundary("reading the slot and publication"):
        state = read_source_state(conn, settings)
    last = sink_status.last_event_time(settings)
    dead = sink_status.dead_letter_depth(settings)
    report: dict[str, Any] = {
        "slot": _slot(state, settings),
        "publication": _publication(state, settings),
        "absent_tables": [t.name for t in state.tables if not t.exists],
        "source": {
            "database": state.database,
            "server_version": state.server_version,
            "wal_level": state.wal_level,
            "max_slot_wal_keep_size_mb": state.max_slot_wal_keep_size_mb,
        },
        "last_event": {"commit_time": last.value, "note": last.note, "known": last.known},
        "dead_letter": {"subscription": settings.dead_letter_subscription,
                        "depth_at_least": dead.value, "note": dead.note, "known": dead.known},
        "max_lag_bytes": max_lag_bytes,
    }
    report["attention"] = attention(report, max_lag_bytes)
    report["ok"] = not report["attention"]
    return report


def _slot(state: SourceState, settings: Settings) -> dict[str, Any]:
    slot = state.slot
    if slot is None:
        return {"name": settings.slot, "exists": False}
    return {
        "name": slot.name,
        "exists": True,
        "plugin": slot.plugin,
        "active": slot.active,
        "active_pid": slot.active_pid,
        "wal_status": slot.wal_status,
        "confirmed_flush_lsn": str(slot.confirmed_flush) if slot.confirmed_flush else None,
        "lag_bytes": slot.lag_bytes,
        "wal_retained_bytes": slot.retained_bytes,
    }


def _publication(state: SourceState, settings: Settings) -> dict[str, Any]:
    pub = state.publication
    if pub is None:
        return {"name": settings.publication, "exists": False, "tables": [],
                "missing_tables": list(settings.tables)}
    return {
        "name": pub.name,
        "exists": True,
        "all_tables": pub.all_tables,
        "tables": sorted(pub.tables),
        "missing_tables": [] if pub.all_tables else
        [t for t in settings.tables if t not in pub.tables],
    }


def attention(report: dict[str, Any], max_lag_bytes: int) -> list[str]:
    """Pure: why the pipeline needs a human, in plain words (empty when healthy)."""
    reasons = []
    slot, pub = report["slot"], report["publication"]
    absent = report.get("absent_tables", [])
    if absent:
        reasons.append(f"{', '.join(absent)} {'does' if len(absent) == 1 else 'do'} not exist "
                       f"in database {report['source']['database']}: check CDC_TABLES "
                       "(--tables) and that CDC_DATABASE_URL names the Django database")
    if not slot["exists"]:
        reasons.append(f"slot {slot['name']} does not exist: run `cdc setup`, "
                       "then `cdc backfill`")
    else:
        if slot["wal_status"] == "lost":
            reasons.append(f"slot {slot['name']} was invalidated (WAL removed): run "
                           "`cdc teardown --yes`, `cdc setup`, then `cdc backfill`")
        elif slot["wal_status"] == "unreserved":
            reasons.append(f"slot {slot['name']} is about to lose WAL: start `cdc run` now")
        if not slot["active"]:
            reasons.append(f"slot {slot['name']} is inactive: no `cdc run` streams from it, "
                           "and the source keeps WAL for it")
        lag = slot.get("lag_bytes")
        if lag is not None and lag > max_lag_bytes:
            reasons.append(f"lag {_bytes(lag)} is over {_bytes(max_lag_bytes)}")
    if not pub["exists"]:
        reasons.append(f"publication {pub['name']} does not exist: run `cdc setup`")
    else:
        missing = [t for t in pub["missing_tables"] if t not in absent]
        if missing:
            reasons.append(f"{', '.join(missing)} not in publication {pub['name']}: "
                           "run `cdc setup`")
    for label, figure in (("dead-letter depth", report["dead_letter"]),
                          ("time of the last event", report["last_event"])):
        if not figure.get("known", True):
            reasons.append(f"{label} {figure['note']}")
    return reasons


def render(report: dict[str, Any]) -> str:
    """The human table."""
    slot, pub = report["slot"], report["publication"]
    rows: list[tuple[str, str]] = []
    if slot["exists"]:
        state = f"active (pid {slot['active_pid']})" if slot["active"] else "INACTIVE"
        if slot["wal_status"]:
            state += f", WAL {slot['wal_status']}"
        rows += [
            ("slot", f"{slot['name']}: {state}"),
            ("confirmed up to", slot["confirmed_flush_lsn"] or "-"),
            ("lag", _bytes(slot["lag_bytes"])),
            ("WAL retained", _bytes(slot["wal_retained_bytes"])),
        ]
    else:
        rows.append(("slot", f"{slot['name']}: MISSING"))
    if pub["exists"]:
        tables = "all tables" if pub.get("all_tables") else ", ".join(pub["tables"]) or "none"
        rows.append(("publication", f"{pub['name']}: {tables}"))
    else:
        rows.append(("publication", f"{pub['name']}: MISSING"))
    last = report["last_event"]
    rows.append(("last event", last["commit_time"] or last["note"]))
    dead = report["dead_letter"]
    if dead["depth_at_least"] is None:
        rows.append(("dead letters", dead["note"]))
    else:
        count = dead["note"] or f"{dead['depth_at_least']} message(s)"
        rows.append(("dead letters", f"{count} waiting in {dead['subscription']}"))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    if report["attention"]:
        lines += ["", "needs attention:"] + [f"  - {r}" for r in report["attention"]]
    else:
        lines += ["", "all good"]
    return "\n".join(lines)


def _bytes(count: int | None) -> str:
    if count is None:
        return "unknown"
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit} ({count} bytes)"
        size /= 1024
    return f"{count} bytes"
