// The live status page itself: one self-contained HTML document (inline CSS and script, no
// external assets, works offline), read-only. It loads the current snapshot from /live, then
// follows /events (Server-Sent Events, one snapshot a second). Plots are drawn on <canvas>.
// Every value is inserted as text (textContent), never as HTML: replies come from remote servers.

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mxd status</title>
<style>
  :root { --fg:#1d232a; --muted:#5d6b79; --bg:#f6f7f9; --card:#fff; --line:#dde2e8; --accent:#2563eb; --warn:#b45309; --bad:#b91c1c; --ok:#15803d; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; gap:1em; align-items:baseline; padding:.8em 1.2em; background:#111827; color:#f9fafb; }
  header h1 { font-size:1.1em; margin:0; } header .muted { color:#9ca3af; }
  #conn { margin-left:auto; font-size:.85em; } #conn.live { color:#86efac; } #conn.down { color:#fca5a5; }
  main { padding:1em 1.2em; display:grid; gap:1em; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); }
  section { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:.8em 1em; min-width:0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size:.8em; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); margin:0 0 .6em; }
  .kpis { display:grid; grid-template-columns: repeat(4, 1fr); gap:.6em; }
  .kpi b { display:block; font-size:1.6em; font-variant-numeric: tabular-nums; }
  .kpi span { color:var(--muted); font-size:.85em; }
  table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align:left; padding:.25em .4em; border-bottom:1px solid var(--line); vertical-align:top; }
  th { color:var(--muted); font-weight:600; font-size:.85em; }
  td.num, th.num { text-align:right; }
  td.reply { font-family: ui-monospace, Menlo, monospace; font-size:.85em; word-break:break-word; }
  .sent { color:var(--ok); } .deferred { color:var(--warn); } .bounced, .expired { color:var(--bad); }
  .paused { color:var(--bad); font-weight:600; }
  canvas { width:100%; height:160px; display:block; }
  .legend span { margin-right:1em; font-size:.85em; } .legend i { display:inline-block; width:10px; height:10px; margin-right:4px; }
  .empty { color:var(--muted); font-style:italic; }
</style>
</head>
<body>
<header><h1>mxd</h1><span id="host" class="muted"></span><span id="uptime" class="muted"></span><span id="conn" class="down">connecting…</span></header>
<main>
  <section>
    <h2>Throughput</h2>
    <div class="kpis">
      <div class="kpi"><b id="accepted-rate">–</b><span>accepted /s</span></div>
      <div class="kpi"><b id="delivered-rate">–</b><span>delivered /s</span></div>
      <div class="kpi"><b id="deferred-rate">–</b><span>deferred /min</span></div>
      <div class="kpi"><b id="bounced-rate">–</b><span>bounced /min</span></div>
    </div>
    <p class="muted">since start: <span id="accepted-total">0</span> accepted, <span id="delivered-total">0</span> delivered, <span id="deferred-total">0</span> deferred, <span id="bounced-total">0</span> bounced</p>
  </section>
  <section>
    <h2>Queue</h2>
    <div class="kpis">
      <div class="kpi"><b id="depth-queued">–</b><span>queued</span></div>
      <div class="kpi"><b id="depth-deferred">–</b><span>deferred</span></div>
      <div class="kpi"><b id="depth-held">–</b><span>held</span></div>
      <div class="kpi"><b id="depth-dead">–</b><span>dead</span></div>
    </div>
    <p class="muted">oldest message: <span id="oldest">–</span> · in delivery: <span id="active">0</span> · <span id="paused"></span></p>
  </section>
  <section>
    <h2>Queue size, last hour</h2>
    <canvas id="plot-queue" width="600" height="160"></canvas>
    <div class="legend"><span><i style="background:#2563eb"></i>queued</span><span><i style="background:#d97706"></i>deferred</span><span><i style="background:#6b7280"></i>held</span></div>
  </section>
  <section>
    <h2>Throughput, last hour (per second)</h2>
    <canvas id="plot-rate" width="600" height="160"></canvas>
    <div class="legend"><span><i style="background:#7c3aed"></i>accepted</span><span><i style="background:#16a34a"></i>delivered</span></div>
  </section>
  <section class="wide">
    <h2>Destinations</h2>
    <table id="destinations"><thead><tr><th>destination</th><th class="num">queued</th><th class="num">held</th><th class="num">in flight</th><th>last reply</th><th>next attempt</th><th>paused</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Top deferral reasons</h2>
    <table id="reasons"><thead><tr><th class="num">count</th><th>reply</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>TLS per destination</h2>
    <table id="tls"><thead><tr><th>destination</th><th>TLS</th><th>cipher</th><th>verified</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Recent attempts</h2>
    <table id="recent"><thead><tr><th>time</th><th>queue id</th><th>recipient</th><th>status</th><th>relay</th><th>reply</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const set = (id, v) => { $(id).textContent = String(v); };
const num = (v) => (Math.round(v * 10) / 10).toString();
function age(s) {
  if (s == null) return "–";
  if (s < 120) return s + "s"; if (s < 7200) return Math.round(s / 60) + "m";
  if (s < 172800) return Math.round(s / 3600) + "h"; return Math.round(s / 86400) + "d";
}
function rows(table, list, cells, emptyText) {
  const body = $(table).tBodies[0];
  body.replaceChildren();
  if (!list.length) {
    const tr = body.insertRow(); const td = tr.insertCell();
    td.colSpan = $(table).tHead.rows[0].cells.length; td.className = "empty"; td.textContent = emptyText;
    return;
  }
  for (const item of list) {
    const tr = body.insertRow();
    for (const [text, cls] of cells(item)) { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; }
  }
}
function plot(id, series, colors, points) {
  const c = $(id); const ctx = c.getContext("2d");
  const w = c.width = c.clientWidth * (window.devicePixelRatio || 1); const h = c.height = 160 * (window.devicePixelRatio || 1);
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...points.flatMap((p) => series.map((k) => p[k])));
  ctx.strokeStyle = "#dde2e8"; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(0, h - 0.5); ctx.lineTo(w, h - 0.5); ctx.stroke();
  ctx.fillStyle = "#5d6b79"; ctx.font = (11 * (window.devicePixelRatio || 1)) + "px sans-serif"; ctx.fillText(num(max), 4, 12 * (window.devicePixelRatio || 1));
  if (points.length < 2) { ctx.fillText("collecting (one point every 10 s)…", 4, h / 2); return; }
  const t0 = points[points.length - 1].t - 3600e3;
  series.forEach((k, i) => {
    ctx.strokeStyle = colors[i]; ctx.lineWidth = 2 * (window.devicePixelRatio || 1); ctx.beginPath();
    points.forEach((p, j) => {
      const x = Math.max(0, (p.t - t0) / 3600e3) * w; const y = h - (p[k] / max) * (h - 16 * (window.devicePixelRatio || 1));
      j ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.stroke();
  });
}
function render(s) {
  set("host", s.hostname); set("uptime", "up " + age(s.uptimeSeconds));
  set("accepted-rate", num(s.rates.acceptedPerSec)); set("delivered-rate", num(s.rates.deliveredPerSec));
  set("deferred-rate", s.rates.deferredPerMin); set("bounced-rate", s.rates.bouncedPerMin);
  for (const k of ["accepted", "delivered", "deferred", "bounced"]) set(k + "-total", s.totals[k]);
  for (const k of ["queued", "deferred", "held", "dead"]) set("depth-" + k, s.queue[k]);
  set("oldest", age(s.oldestAgeSeconds)); set("active", s.queue.active);
  $("paused").textContent = s.paused ? "outbound delivery PAUSED" : ""; $("paused").className = s.paused ? "paused" : "";
  const now = Date.parse(s.now);
  rows("destinations", s.destinations, (d) => [[d.domain], [d.messages, "num"], [d.held, "num"], [d.inFlight, "num"], [d.lastReply ?? "", "reply " + (d.lastStatus ?? "")],
    [d.nextAttemptAt ? (Date.parse(d.nextAttemptAt) <= now ? "now" : "in " + age(Math.round((Date.parse(d.nextAttemptAt) - now) / 1000))) : ""], [d.paused ? "paused" : "", d.paused ? "paused" : ""]], "nothing queued");
  rows("reasons", s.reasons, (r) => [[r.count, "num"], [r.reason, "reply"]], "no deferrals since start");
  rows("tls", s.tls, (t) => [[t.domain], [t.used ? t.version : "none (plain text)", t.used ? "sent" : "deferred"], [t.cipher ?? ""], [t.used ? (t.verified ? "yes" : "no") : ""]], "no deliveries yet");
  rows("recent", s.recent, (e) => [[new Date(e.at).toISOString().slice(11, 19)], [e.qid], [e.to], [e.status, e.status], [e.relay ?? ""], [e.reply, "reply"]], "no attempts yet");
  plot("plot-queue", ["queued", "deferred", "held"], ["#2563eb", "#d97706", "#6b7280"], s.history);
  plot("plot-rate", ["accepted", "delivered"], ["#7c3aed", "#16a34a"], s.history);
  document.body.dataset.updated = s.now;
}
fetch("live", { credentials: "same-origin" }).then((r) => r.ok ? r.json() : null).then((s) => s && render(s)).catch(() => {});
const es = new EventSource("events");
es.onopen = () => { set("conn", "live"); $("conn").className = "live"; };
es.onerror = () => { set("conn", "reconnecting…"); $("conn").className = "down"; };
es.onmessage = (m) => render(JSON.parse(m.data));
</script>
</body>
</html>
`;
