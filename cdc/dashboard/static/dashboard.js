// member-cdc dashboard: polls /api/status every second and draws it.
// Text goes in with textContent only: nothing the server sends is parsed as HTML.
"use strict";

const REFRESH_MS = 1000;
let chart = null;

function $(id) { return document.getElementById(id); }

function set(id, text, cls) {
  const el = $(id);
  el.textContent = text === null || text === undefined ? "–" : String(text);
  el.className = cls || "";
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "unknown";
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let n = bytes, u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return u === 0 ? `${bytes} bytes` : `${n.toFixed(1)} ${units[u]}`;
}

function when(iso) {
  if (!iso) return "–";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "");
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [key, value] of Object.entries(attrs || {})) tr.setAttribute(key, value);
  for (const [text, cls] of cells) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  return tr;
}

function showSlot(slot, lastEvent) {
  set("slot-name", slot.name);
  if (slot.exists === null) {
    set("slot-active", "unknown: " + (slot.note || ""), "bad");
  } else if (!slot.exists) {
    set("slot-active", "MISSING: run `cdc setup`", "bad");
  } else {
    const state = slot.active ? `active (pid ${slot.active_pid})` : "INACTIVE";
    set("slot-active", state + (slot.wal_status ? `, WAL ${slot.wal_status}` : ""),
        slot.active ? "ok" : "bad");
  }
  set("slot-lsn", slot.confirmed_lsn);
  set("slot-lag", slot.lag_bytes === undefined ? null : size(slot.lag_bytes));
  set("slot-lag-time", slot.lag_seconds === null || slot.lag_seconds === undefined
      ? "unknown" : `${slot.lag_seconds.toFixed(1)} s`);
  const keep = slot.max_slot_wal_keep_size_bytes;
  const retained = slot.wal_retained_bytes;
  let wal = size(retained) + " of " + (keep ? size(keep) : slot.max_slot_wal_keep_size || "unknown");
  if (keep && retained !== null && retained !== undefined) {
    wal += ` (${Math.round(100 * retained / keep)}%)`;
  }
  set("slot-wal", slot.exists ? wal : null,
      keep && retained > 0.8 * keep ? "bad" : "");
  set("last-event", when(lastEvent.commit_time));
}

function showProcesses(processes) {
  const body = $("processes");
  body.replaceChildren(...processes.map((p) => {
    let state = p.up ? "up" : "DOWN";
    if (p.up && p.streaming === false) state = "up (standby)";
    const last = p.last_event_time
      ? `${when(p.last_event_time)} (${p.last_event_kind === "commit" ? "commit" : "last batch"})`
      : "–";
    return row([[p.name], [state, p.up ? "ok state" : "bad state"],
                [p.events_total === null ? "–" : Math.round(p.events_total), "events"],
                [p.events_per_s === null ? "–" : p.events_per_s.toFixed(1), "rate"],
                [last, "last-event"], [p.url, "muted"]],
               {"data-process": p.name, "data-up": String(p.up)});
  }));
}

function showDeadLetters(dead) {
  set("dead-letter-depth", dead.depth === null ? "unknown" : dead.depth,
      dead.depth ? "bad" : dead.depth === 0 ? "ok" : "warn");
  set("dead-letter-note", `${dead.subscription}${dead.note ? ": " + dead.note : ""}`, "muted");
  $("dead-letter-action").hidden = !dead.commands.length;
  $("dead-letter-commands").textContent = dead.commands.join("\n");
}

function showBackfill(backfill) {
  const b = backfill || {};
  set("backfill-when", backfill ? when(b.when) : "none recorded");
  set("backfill-members", b.members);
  set("backfill-rows", b.rows);
  set("backfill-outcome", b.outcome);
}

function showAudit(audit) {
  $("audit").replaceChildren(...audit.records.map((r) => row([
    [when(r.commit_time)], [r.op], [r.op === "backfill" ? `snapshot ${r.snapshot_id}` : r.table],
    [r.kennitala], [r.op === "backfill" ? `${r.rows} rows` : r.changed.join(", ")]])));
  set("audit-note", audit.note, "muted");
}

function showAttention(reasons) {
  $("attention-box").hidden = !reasons.length;
  $("attention").replaceChildren(...reasons.map((r) => {
    const li = document.createElement("li");
    li.textContent = r;
    return li;
  }));
  set("overall", reasons.length ? "needs attention" : "all good",
      "badge " + (reasons.length ? "bad" : "ok"));
}

function drawChart(history) {
  const data = [history.time, history.lag_bytes, history.events_per_s];
  if (chart === null) {
    const width = Math.max(300, $("chart").clientWidth);
    chart = new uPlot({
      width, height: 240,
      series: [{}, {label: "lag (bytes)", stroke: "#b42318", scale: "bytes",
                    value: (u, v) => v === null ? "–" : size(v)},
               {label: "events/s", stroke: "#1570ef", scale: "rate"}],
      axes: [{}, {scale: "bytes", values: (u, vals) => vals.map(size), size: 80},
             {scale: "rate", side: 1, grid: {show: false}}],
      scales: {x: {time: true}},
    }, data, $("chart"));
    window.dashboardChart = chart;
  } else {
    chart.setData(data);
  }
}

async function refresh() {
  try {
    const response = await fetch("/api/status", {cache: "no-store"});
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const status = await response.json();
    showSlot(status.slot, status.last_event);
    showProcesses(status.processes);
    showDeadLetters(status.dead_letters);
    showBackfill(status.last_backfill);
    showAudit(status.audit);
    showAttention(status.attention);
    drawChart(status.history);
    set("updated", "updated " + when(status.generated_at) + " UTC", "muted");
  } catch (err) {
    set("updated", "cannot reach the dashboard: " + err.message, "bad");
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
