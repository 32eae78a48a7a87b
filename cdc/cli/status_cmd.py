"""``cdc status``: is the pipeline healthy, and how far behind is it?

The report and the rules that judge it are cdc/status/report.py's; this
prints it, as a table or as JSON, and exits 1 when it needs attention.
"""

from __future__ import annotations

import sys

import click
import orjson

from cdc.cli.options import SOURCE, with_settings
from cdc.settings import Settings
from cdc.status.report import GIB, StatusReport, gather, size_text


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
        click.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(report))
    sys.exit(0 if report.ok else 1)


def render(report: StatusReport) -> str:
    """The human table."""
    slot, pub = report.slot, report.publication
    rows: list[tuple[str, str]] = []
    if slot.exists:
        state = f"active (pid {slot.active_pid})" if slot.active else "INACTIVE"
        if slot.wal_status:
            state += f", WAL {slot.wal_status}"
        rows += [
            ("slot", f"{slot.name}: {state}"),
            ("confirmed up to", slot.confirmed_flush_lsn or "-"),
            ("lag", size_text(slot.lag_bytes)),
            ("WAL retained", size_text(slot.wal_retained_bytes)),
        ]
    else:
        rows.append(("slot", f"{slot.name}: MISSING"))
    if pub.exists:
        tables = "all tables" if pub.all_tables else ", ".join(pub.tables) or "none"
        rows.append(("publication", f"{pub.name}: {tables}"))
    else:
        rows.append(("publication", f"{pub.name}: MISSING"))
    rows.append(("last event", str(report.last_event.value or report.last_event.note)))
    dead = report.dead_letter
    if dead.value is None:
        rows.append(("dead letters", dead.note))
    else:
        count = dead.note or f"{dead.value} message(s)"
        rows.append(("dead letters", f"{count} waiting in {report.dead_letter_subscription}"))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    reasons = report.attention
    if reasons:
        lines += ["", "needs attention:"] + [f"  - {r}" for r in reasons]
    else:
        lines += ["", "all good"]
    return "\n".join(lines)
