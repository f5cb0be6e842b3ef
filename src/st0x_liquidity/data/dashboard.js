// st0x liquidity operations dashboard: plain JS, no build step.
// One WebSocket (/api/ws): an "initial" message with the full state, then
// incremental messages (see docs/dashboard.md). Decimals arrive as strings and
// are only turned into numbers to draw charts.
"use strict";

const S = {
  positions: new Map(), fills: new Map(), hedges: new Map(),
  pnl: { summary: null, series: [] }, latency: null, status: null, alerts: [], health: null,
  expanded: new Set(), fresh: new Set(), history: [],
};
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const MAX_FILLS = 500;
let ws = null, attempts = 0, dirty = false;
// Staleness: the time of the last message from the bot; the page greys itself out
// ("data as of …") when the socket closes or the bot stops answering pings.
let lastMessage = null, stale = false;
const SILENT_AFTER = 12000; // ms without any message (pings are answered every 5 s)

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function num(v) { return v === null || v === undefined ? null : Number(v); }
function dec(v, places) {
  if (v === null || v === undefined) return "–";
  const n = Number(v);
  if (places === undefined) return String(v);
  return n.toLocaleString(undefined, { minimumFractionDigits: places, maximumFractionDigits: places });
}
function usd(v) { return v === null || v === undefined ? "–" : (Number(v) < 0 ? "-$" : "$") + dec(Math.abs(Number(v)), 2); }
function signed(v) { const n = Number(v); return n > 0 ? "pos" : n < 0 ? "neg" : ""; }
function ago(iso) {
  if (!iso) return "–";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 1) return "just now";
  if (s < 60) return Math.round(s) + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return new Date(iso).toLocaleString();
}
function short(id) { return id.length > 18 ? id.slice(0, 10) + "…" + id.slice(-6) : id; }
function pill(el, text, cls) { el.textContent = text; el.className = "pill " + (cls || ""); }

// -- connection ---------------------------------------------------------------------

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const token = params.get("token");
  ws = new WebSocket(`${proto}//${location.host}/api/ws` + (token ? `?token=${encodeURIComponent(token)}` : ""));
  ws.onopen = () => { attempts = 0; pill($("conn"), "live", "good"); };
  ws.onmessage = (ev) => { lastMessage = Date.now(); handle(JSON.parse(ev.data)); };
  ws.onclose = () => {
    pill($("conn"), "disconnected — retrying", "off");
    setStale(true);
    const delay = Math.min(1000 * 2 ** attempts, 30000);
    attempts += 1;
    setTimeout(connect, delay);
  };
}

function setStale(on) {
  if (on === stale) { if (on) updateStale(); return; }
  stale = on;
  document.body.classList.toggle("stale", on);
  $("stale").hidden = !on;
  document.querySelectorAll("main .panel h2").forEach((h) => {
    h.querySelectorAll(".asof").forEach((e) => e.remove());
    if (on) { const span = document.createElement("span"); span.className = "asof"; h.appendChild(span); }
  });
  updateStale();
  schedule();
}

function updateStale() {
  if (!stale) return;
  const asOf = lastMessage ? new Date(lastMessage).toLocaleTimeString() : "never";
  const age = lastMessage ? ` (${ago(new Date(lastMessage).toISOString())})` : "";
  $("stale").textContent = `Disconnected from the bot — what you see is data as of ${asOf}${age}, not live. Retrying…`;
  document.querySelectorAll("main .panel h2 .asof").forEach((e) => { e.textContent = `data as of ${asOf}`; });
}

function heartbeat() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (lastMessage && Date.now() - lastMessage > SILENT_AFTER) {
    // Open but silent: the bot (or the network) is frozen. Show it, and reconnect.
    pill($("conn"), "no answer — retrying", "off");
    setStale(true);
    ws.close();
    return;
  }
  try { ws.send("ping"); } catch (err) { /* closing: onclose handles it */ }
}

function handle(msg) {
  const d = msg.data;
  switch (msg.type) {
    case "initial":
      setStale(false);
      S.positions.clear(); S.fills.clear(); S.hedges.clear();
      d.positions.forEach((p) => S.positions.set(p.symbol, p));
      d.fills.slice().reverse().forEach((f) => S.fills.set(f.trade_id, f));
      d.hedges.forEach((h) => S.hedges.set(h.client_order_id, h));
      S.pnl = d.pnl; S.latency = d.latency; S.status = d.status; S.alerts = d.alerts;
      S.health = d.health; S.history = d.breaker_history || []; S.inventory = d.inventory || null;
      break;
    case "fill":
      if (!S.fills.has(d.trade_id)) S.fresh.add(d.trade_id);
      S.fills.set(d.trade_id, d);
      while (S.fills.size > MAX_FILLS) S.fills.delete(S.fills.keys().next().value);
      break;
    case "hedge": S.hedges.set(d.client_order_id, d); break;
    case "position": S.positions.set(d.symbol, d); break;
    case "pnl":
      S.pnl.summary = d.summary;
      if (d.limit_slippage) S.pnl.limit_slippage = d.limit_slippage;
      S.pnl.series = S.pnl.series.concat(d.points).slice(-5000);
      break;
    case "latency": S.latency = d; break;
    case "inventory": S.inventory = d; break;
    case "status": S.status = d.status; S.alerts = d.alerts; S.health = d.health; break;
    case "risk": if (S.status) S.status.risk = d; break;
    case "breaker":
      if (S.status) S.status.breaker = d;
      S.history = d.history || S.history;
      break;
    default: break; // "skipped", "pong" and future types: nothing to draw
  }
  schedule();
}

function schedule() { if (!dirty) { dirty = true; requestAnimationFrame(render); } }

// -- rendering ----------------------------------------------------------------------

function render() {
  dirty = false;
  renderHeader(); renderSummary(); renderBreakerHistory(); renderFavicon(); renderAlerts(); renderRisk(); renderExtended(); renderPositions(); renderInventory(); renderPnl(); renderLatency(); renderHedges(); renderFills();
  $("footer").textContent = S.status ? `event log position ${S.status.log_position} · engine started ${ago(S.status.engine.started_at)} · fills ingested ${S.status.engine.fills_ingested}` : "";
}

function renderHeader() {
  const st = S.status; if (!st) return;
  const role = st.role || { role: "leader", epoch: null, detail: "" };
  pill($("role"), role.role, role.role === "leader" ? "good" : "warn");
  $("role").title = role.detail || "";
  $("role-detail").textContent = (role.epoch !== null ? `epoch ${role.epoch}` : "") + (role.role === "standby" ? " · read-only" : "");
  if (S.health) pill($("health"), S.health.status === "ready" ? "ready" : "not ready", S.health.status === "ready" ? "good" : "bad");
  pill($("market"), st.broker.market_open ? "open" : "closed", st.broker.market_open ? "good" : "warn");
  const src = st.source;
  const cond = src.condition || (src.stalled ? "stalled" : src.state);
  pill($("source"), cond, src.problem || src.stalled || cond.startsWith("failed") ? "bad" : cond === "running" || cond === "ended" ? "good" : "warn");
  $("source").title = src.problem || "";
  $("source-detail").textContent = `${src.name}` + (src.last_block !== null ? ` · block ${src.last_block}` : "") + ` · last input ${ago(src.last_item_at)}`;
  const b = st.broker;
  const authBad = b.auth === "required";
  pill($("broker"), authBad ? "auth required" : b.error ? "error" : b.market_checked_at ? "connected" : "connecting", authBad || b.error ? "bad" : b.market_checked_at ? "good" : "warn");
  $("broker-detail").textContent = b.type + (b.error ? ` · ${b.error}` : "");
  const tok = b.token;
  $("auth-chip").hidden = !tok;
  if (tok) {
    pill($("auth"), tok.state === "required" ? "re-authorize" : tok.state === "expiring" ? "expires soon" : "ok", tok.state === "required" ? "bad" : tok.state === "expiring" ? "warn" : "good");
    const left = tok.expires_in_seconds;
    $("auth-detail").textContent = tok.problem ? tok.problem : left === null ? "" : left <= 0 ? "refresh token expired" : `refresh token ends in ${left >= 86400 ? (left / 86400).toFixed(1) + " d" : (left / 3600).toFixed(1) + " h"}`;
    $("auth-chip").title = tok.refresh_expires_at ? `refresh token ends ${tok.refresh_expires_at}` : "";
  }
  const br = st.breaker;
  const paused = br.status === "paused";
  pill($("breaker-status"), paused ? "paused" : "active", paused ? "bad" : "good");
  $("breaker-status").title = br.reason ? `${br.reason} (${br.actor || ""} ${br.changed_at || ""})` : "";
  const btn = $("breaker-btn");
  btn.textContent = paused ? "resume" : "pause";
  btn.className = paused ? "resume" : "";
  btn.dataset.action = paused ? "resume" : "pause";
}

function critical() { return S.alerts.some((a) => a.severity === "critical"); }

function renderSummary() {
  const st = S.status; if (!st) return;
  const ex = st.exposure || {};
  const box = (id, cls) => { $(id).className = "stat " + (cls || ""); };
  const usdOpen = Number(ex.unhedged_usd || 0);
  const pausedOrBroken = S.alerts.find((a) => a.kind === "paused" || a.kind === "broker_error");
  $("sum-unhedged").textContent = ex.unhedged_usd === undefined ? "–" : usd(ex.unhedged_usd);
  $("sum-unhedged-detail").textContent = (ex.open_fills ? `${ex.open_fills} fill(s) open` : "all fills covered")
    + (ex.unpriced_symbols && ex.unpriced_symbols.length ? ` · no price yet: ${ex.unpriced_symbols.join(", ")}` : "");
  box("sum-unhedged-box", pausedOrBroken && pausedOrBroken.severity === "critical" ? "bad" : usdOpen > 0 ? "warn" : "good");
  const old = ex.oldest_unhedged;
  $("sum-oldest").textContent = old ? ago(old.recorded_at).replace(" ago", "") : "none";
  $("sum-oldest-detail").textContent = old ? `${old.symbol} ${old.open} open · recorded ${new Date(old.recorded_at).toLocaleString()}` : "nothing waiting for a hedge";
  const age = old ? (Date.now() - Date.parse(old.recorded_at)) / 1000 : 0;
  box("sum-oldest-box", !old ? "good" : age > 300 ? "bad" : "warn");
  const src = st.source;
  const cond = src.condition || src.state;
  $("sum-source").textContent = cond;
  const behind = src.head_block !== null && src.head_block !== undefined && src.last_block !== null ? Math.max(0, src.head_block - src.last_block + 1) : null;
  const known = (v) => v !== null && v !== undefined;
  $("sum-source-detail").textContent = [
    src.problem,
    src.last_block !== null ? `read to block ${src.last_block}` + (behind !== null ? ` of ${src.head_block} (${behind} behind)` : "") : null,
    known(src.lag_seconds) ? `newest fill's block ${secs(src.lag_seconds)} old` : null,
    `last input ${ago(src.last_item_at)}`,
    known(src.last_contact_seconds) ? `node answered ${secs(src.last_contact_seconds)} ago` : null,
  ].filter(Boolean).join(" · ");
  box("sum-source-box", src.problem ? "bad" : cond === "running" || cond === "ended" ? "good" : "warn");
  const br = st.breaker; const paused = br.status === "paused";
  const hedgeAlert = S.alerts.find((a) => a.kind === "paused") || S.alerts.find((a) => a.kind === "broker_error");
  $("sum-hedging").textContent = paused ? "paused" : st.broker.error ? "broker error" : "active";
  $("sum-hedging-detail").textContent = hedgeAlert ? hedgeAlert.message : `${st.engine.hedges_placed} placed · ${st.engine.hedges_filled} filled · ${st.engine.hedges_failed} failed this run`;
  box("sum-hedging-box", hedgeAlert ? (hedgeAlert.severity === "critical" ? "bad" : "warn") : "good");
}

function renderBreakerHistory() {
  const ul = $("breaker-history");
  if (!S.history.length) { ul.innerHTML = '<li class="sub">no change yet</li>'; return; }
  ul.innerHTML = S.history.map((c) => `<li data-action="${esc(c.action)}"><b class="${esc(c.action)}">${esc(c.action)}</b> by <b>${esc(c.actor || "?")}</b>`
    + (c.remote ? ` <span class="sub">(${esc(c.remote)})</span>` : "")
    + ` · <span title="${esc(c.at)}">${esc(new Date(c.at).toLocaleString())} (${ago(c.at)})</span> — ${esc(c.reason || "no reason given")}</li>`).join("");
}

let faviconColor = null;
function renderFavicon() {
  const ready = S.health && S.health.status === "ready";
  const color = stale ? "#8593a3" : critical() || (S.health && !ready) ? "#f85149" : S.alerts.length ? "#d29922" : "#3fb950";
  if (color === faviconColor) return;
  faviconColor = color;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#0f1419"/><path d="M7 21l6-6 4 4 8-9" fill="none" stroke="${color}" stroke-width="3.2" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
  $("favicon").href = "data:image/svg+xml," + encodeURIComponent(svg);
}

function renderAlerts() {
  const ul = $("alerts");
  if (!S.alerts.length) { ul.innerHTML = '<li class="ok">No alerts</li>'; return; }
  ul.innerHTML = S.alerts.map((a) => `<li class="${esc(a.severity)}" data-kind="${esc(a.kind)}"><b>${esc(a.kind.replace("_", " "))}</b> — ${esc(a.message)}</li>`).join("");
}

function renderRisk() {
  const r = S.status && S.status.risk; if (!r) return;
  const states = Object.entries(r.states || {});
  $("risk-states").querySelector("tbody").innerHTML = states.map(([sym, st]) =>
    `<tr data-symbol="${esc(sym)}"><td>${sym === "*" ? "all" : esc(sym)}</td><td><span class="pill ${st.state === "active" ? "good" : st.state === "halted" ? "bad" : "warn"}">${esc(st.state)}</span></td><td>${esc(st.reason || "")}</td></tr>`).join("");
  $("risk-blocked").querySelector("tbody").innerHTML = (r.blocked || []).map((b) =>
    `<tr class="blocked" data-symbol="${esc(b.symbol)}"><td>${esc(b.symbol)}</td><td>${esc(b.side)}</td><td class="n">${esc(b.quantity)}</td><td class="n">${esc(b.notional)}</td><td>${esc(b.limit)}</td><td>${esc(b.reason)}</td><td>${ago(b.since)}</td></tr>`).join("") || '<tr><td colspan="7" class="sub">no blocked hedge</td></tr>';
  const rec = r.reconciliation;
  $("recon").textContent = rec ? `reconciliation: ${rec.status}` + (rec.at ? ` · ${ago(rec.at)}` : "") + (rec.detail ? ` · ${rec.detail}` : "") + (rec.skipped && rec.skipped.length ? ` · not compared (hedge in flight): ${rec.skipped.join(", ")}` : "") : "reconciliation: not run yet";
  $("recon-symbols").querySelector("tbody").innerHTML = ((rec && rec.symbols) || []).map((x) =>
    `<tr data-symbol="${esc(x.symbol)}"><td>${esc(x.symbol)}</td><td class="n">${esc(x.broker)}</td><td class="n">${esc(x.books)}</td><td class="n">${esc(x.difference)}</td><td><span class="pill ${x.mismatch ? "bad" : "good"}">${x.mismatch ? "mismatch" : "ok"}</span></td></tr>`).join("");
}

function renderExtended() {
  const x = S.status && S.status.extended_hours;
  $("extended-panel").hidden = !(x && x.active);
  if (!x || !x.active) return;
  const when = (t) => (t ? new Date(t).toLocaleString() : "–");
  $("extended-symbols").querySelector("tbody").innerHTML = Object.entries(x.symbols || {}).map(([sym, e]) =>
    `<tr data-symbol="${esc(sym)}"><td>${esc(sym)}</td><td><span class="pill ${e.session === "closed" ? "warn" : "good"}">${esc(e.session)}</span></td><td>${esc(when(e.until))}</td><td>${esc(e.next_session || "–")}</td><td>${e.session === "closed" ? esc(when(e.next_hedge_at)) : "now"}</td><td class="n">${esc(e.hedgeable_hours_per_week)}</td><td>${esc((e.enabled || []).join(", "))}</td></tr>`).join("");
  $("extended-limits").querySelector("tbody").innerHTML = (x.limits || []).map((o) =>
    `<tr data-cid="${esc(o.client_order_id)}"><td>${esc(o.client_order_id)}</td><td>${esc(o.symbol)}</td><td>${esc(o.side)}</td><td class="n">${esc(o.quantity)}</td><td class="n">${esc(o.limit_price)}</td><td>${esc(o.session)}</td><td>${esc(o.reference_source)} ${esc(o.reference_price)}</td><td>${esc(Math.round(o.age_seconds))} s</td></tr>`).join("") || '<tr><td colspan="8" class="sub">no live limit order</td></tr>';
}

function renderInventory() {
  const inv = S.inventory;
  $("inventory-panel").hidden = !inv;
  if (!inv) return;
  const pct = (v) => +Math.max(0, Math.min(100, Number(v) * 100)).toFixed(3);
  $("inventory").innerHTML = inv.assets.length ? inv.assets.map((a) => {
    const share = a.onchain_share === null ? null : pct(a.onchain_share);
    const lo = pct(a.band.lower), hi = pct(a.band.upper), target = pct(a.band.target);
    const out = share !== null && (share < lo || share > hi);
    const on = Number(a.onchain.available) + Number(a.onchain.inflight);
    const off = Number(a.offchain.available) + Number(a.offchain.inflight);
    const inflight = Number(a.onchain.inflight) || Number(a.offchain.inflight);
    const title = `onchain ${a.onchain.available} (+${a.onchain.inflight} in flight) · offchain ${a.offchain.available} (+${a.offchain.inflight} in flight) · band ${a.band.lower}–${a.band.upper}, target ${a.band.target}` + (a.active_operation ? ` · operation ${a.active_operation}` : "") + (a.would ? ` · would ${a.would} ${a.would_quantity}` : "") + (a.reason ? ` · ${a.reason}` : "");
    return `<div class="inv-row${out ? " out" : ""}" data-asset="${esc(a.asset)}" title="${esc(title)}">` +
      `<span class="inv-asset">${esc(a.asset)}</span>` +
      `<div class="inv-bar"><div class="inv-band" style="left:${lo}%;width:${+(hi - lo).toFixed(3)}%"></div>` +
      `<div class="inv-target" style="left:${target}%"></div>` +
      (share === null ? "" : `<div class="inv-fill" style="width:${share}%"></div>`) + `</div>` +
      `<span class="inv-share">${share === null ? "–" : share.toFixed(1) + "%"}</span>` +
      `<span class="sub">${fmtQty(on)} on / ${fmtQty(off)} off${inflight ? " · in flight" : ""}${a.active_operation ? " · " + esc(a.active_operation) : ""}</span></div>`;
  }).join("") : '<div class="sub">no inventory yet</div>';
}

function fmtQty(v) { return Number.isInteger(v) ? String(v) : v.toFixed(4).replace(/0+$/, ""); }

function renderPositions() {
  const rows = [...S.positions.values()].sort((a, b) => a.symbol.localeCompare(b.symbol));
  $("positions").tBodies[0].innerHTML = rows.length ? rows.map((p) => {
    const h = p.pending_hedge;
    const pending = h ? `<span class="${esc(h.side)}">${esc(h.side)}</span> ${esc(h.quantity)} <span class="pill warn">${esc(h.state)}</span>` : '<span class="sub">none</span>';
    return `<tr data-symbol="${esc(p.symbol)}"><td><b>${esc(p.symbol)}</b></td><td class="n ${signed(p.net)}">${esc(p.net)}</td>`
      + `<td class="n ${signed(p.unhedged)}">${esc(p.unhedged)}</td><td class="n">${usd(p.unhedged_usd)}</td><td>${pending}</td>`
      + `<td class="n">${dec(p.last_price, 2)}</td><td class="n ${signed(p.realized_pnl)}">${usd(p.realized_pnl)}</td></tr>`;
  }).join("") : '<tr><td colspan="7" class="empty">No positions yet</td></tr>';
}

// What extended-hours limits paid against the onchain fills (a cost is positive).
function slippageCell(symbol) {
  const all = S.pnl.limit_slippage || {};
  if (symbol === "TOTAL") {
    const rows = Object.values(all);
    return rows.length ? usd(String(rows.reduce((a, r) => a + num(r.usd), 0))) : "–";
  }
  const s = all[symbol];
  return s ? `${usd(s.usd)} <span class="sub">${s.bps === null ? "" : esc(s.bps) + " bps"}</span>` : "–";
}

function renderPnl() {
  const sum = S.pnl.summary;
  if (sum) {
    const t = sum.total;
    $("pnl-total").textContent = usd(t.realized_pnl);
    $("pnl-total").className = "big " + signed(t.realized_pnl);
    $("pnl-summary").tBodies[0].innerHTML = [...sum.symbols, t].map((s) =>
      `<tr${s.symbol === "TOTAL" ? ' class="total"' : ""}><td><b>${esc(s.symbol)}</b></td><td class="n ${signed(s.realized_pnl)}">${usd(s.realized_pnl)}</td>`
      + `<td class="n">${usd(s.volume_usd)}</td><td class="n">${s.trades_onchain} / ${s.trades_broker}</td>`
      + `<td class="n">${s.open_position === null ? "" : esc(s.open_position)}</td><td class="n">${s.average_cost === null ? "–" : dec(s.average_cost, 2)}</td>`
      + `<td class="n">${s.average_spread === null ? "–" : dec(s.average_spread, 4)}</td>`
      + `<td class="n">${slippageCell(s.symbol)}</td></tr>`).join("");
  }
  const svg = $("pnl-chart");
  const pts = S.pnl.series.map((p) => [Date.parse(p.time), num(p.cumulative_total)]);
  if (pts.length < 2) { svg.innerHTML = '<text x="300" y="100" text-anchor="middle">no realized P&L yet</text>'; return; }
  const W = 600, H = 200, P = 28;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]).concat([0]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs); if (x1 === x0) { x0 -= 1; x1 += 1; }
  let y0 = Math.min(...ys), y1 = Math.max(...ys); if (y1 === y0) { y0 -= 1; y1 += 1; }
  const X = (x) => P + (x - x0) / (x1 - x0) * (W - P - 6);
  const Y = (y) => H - 16 - (y - y0) / (y1 - y0) * (H - 28);
  let d = "";
  pts.forEach((p, i) => { d += (i ? (" L" + X(p[0]).toFixed(1) + " " + Y(pts[i - 1][1]).toFixed(1) + " L") : "M") + X(p[0]).toFixed(1) + " " + Y(p[1]).toFixed(1); });
  const last = pts[pts.length - 1][1];
  const color = last >= 0 ? "var(--good)" : "var(--bad)";
  svg.innerHTML = `<line x1="${P}" x2="${W}" y1="${Y(0)}" y2="${Y(0)}" stroke="var(--line)" stroke-dasharray="3 3"/>`
    + `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6" vector-effect="non-scaling-stroke"/>`
    + `<text x="2" y="12">${usd(y1)}</text><text x="2" y="${H - 18}">${usd(y0)}</text>`
    + `<text x="${P}" y="${H - 3}">${new Date(x0).toLocaleTimeString()}</text><text x="${W - 4}" y="${H - 3}" text-anchor="end">${new Date(x1).toLocaleTimeString()}</text>`;
}

function quantile(sorted, q) { if (!sorted.length) return null; return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]; }
function secs(s) { return s === null ? "–" : s < 1 ? (s * 1000).toFixed(0) + " ms" : s < 120 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min"; }

function bucketLabel(s) {
  if (s < 1) return Math.round(s * 1000) + "ms";
  if (s < 60) return s + "s";
  if (s < 3600) return s / 60 + "m";
  return s / 3600 + "h";
}

function renderLatency() {
  const L = S.latency; const svg = $("latency-chart");
  if (!L || !L.count) { svg.innerHTML = '<text x="300" y="90" text-anchor="middle">no hedge has closed yet</text>'; $("latency-stats").textContent = ""; return; }
  const sorted = L.recent.slice().sort((a, b) => a - b);
  $("latency-stats").textContent = `${L.count} fills hedged · p50 ${secs(quantile(sorted, 0.5))} · p95 ${secs(quantile(sorted, 0.95))} · max ${secs(sorted[sorted.length - 1])}`;
  const W = 600, H = 180, n = L.counts.length, bw = (W - 10) / n, max = Math.max(...L.counts, 1);
  let out = "";
  L.counts.forEach((c, i) => {
    const h = c / max * (H - 40), x = 5 + i * bw;
    const label = L.buckets[i] === null ? ">" + bucketLabel(L.buckets[i - 1]) : bucketLabel(L.buckets[i]);
    out += `<rect x="${x + 2}" y="${H - 22 - h}" width="${bw - 4}" height="${h}" fill="var(--accent)" opacity="${c ? 0.85 : 0.2}"><title>${label}: ${c}</title></rect>`;
    if (c) out += `<text x="${x + bw / 2}" y="${H - 26 - h}" text-anchor="middle">${c}</text>`;
    out += `<text x="${x + bw / 2}" y="${H - 8}" text-anchor="middle">${label}</text>`;
  });
  svg.innerHTML = out;
}

function renderHedges() {
  const rows = [...S.hedges.values()].sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, 200);
  $("hedges").tBodies[0].innerHTML = rows.length ? rows.map((h) => {
    const cls = h.state === "filled" ? "good" : h.open ? "warn" : "bad";
    return `<tr data-cid="${esc(h.client_order_id)}"${h.stuck ? ' class="stuck"' : ""}><td class="mono" title="${esc(h.client_order_id)}">${esc(short(h.client_order_id))}</td>`
      + `<td>${esc(h.symbol)}</td><td class="${esc(h.side)}">${esc(h.side)}</td><td class="n">${esc(h.quantity)}</td><td class="n">${esc(h.filled_quantity)}</td>`
      + `<td class="n">${h.average_price ? dec(h.average_price, 2) : "–"}</td><td><span class="pill ${cls}" title="${esc(h.reason || "")}">${esc(h.state)}${h.stuck ? " · stuck" : ""}</span></td><td>${ago(h.updated_at)}</td></tr>`;
  }).join("") : '<tr><td colspan="8" class="empty">No hedge orders yet</td></tr>';
}

function coverage(f) {
  const amt = Number(f.amount) || 1;
  let hedged = 0, reserved = 0, netted = 0;
  f.hedges.forEach((h) => { if (h.kind === "hedged") hedged += Number(h.quantity); else reserved += Number(h.quantity); });
  f.netted.forEach((n) => { netted += Number(n.quantity); });
  const pct = (v) => Math.max(0, Math.min(100, v / amt * 100)).toFixed(1);
  const label = Number(f.open) === 0 && reserved === 0 ? "covered" : reserved > 0 ? "hedging" : "open " + f.open;
  return `<span class="bar" title="hedged ${hedged} · pending ${reserved} · netted ${netted} · open ${f.open}"><span class="h" style="width:${pct(hedged)}%"></span><span class="r" style="width:${pct(reserved)}%"></span><span class="t" style="width:${pct(netted)}%"></span></span> <span class="sub">${esc(label)}</span>`;
}

function detail(f) {
  const rows = f.hedges.map((h) => `<tr><td>${h.kind === "hedged" ? "hedged by" : "pending in"}</td><td class="mono">${esc(h.client_order_id)}</td><td class="${esc(h.side || "")}">${esc(h.side || "")}</td>`
    + `<td class="n">${esc(h.quantity)}</td><td class="n">${h.price ? "@ " + dec(h.price, 4) : ""}</td><td>${esc(h.state || "")}</td><td>${h.latency_seconds === null ? "" : "after " + secs(h.latency_seconds)}</td></tr>`)
    .concat(f.netted.map((n) => `<tr><td>netted against</td><td class="mono">${esc(short(n.against))}</td><td></td><td class="n">${esc(n.quantity)}</td><td></td><td></td><td></td></tr>`));
  if (Number(f.open) !== 0) rows.push(`<tr><td>still open</td><td></td><td></td><td class="n">${esc(f.open)}</td><td></td><td></td><td></td></tr>`);
  return `<div class="mono">tx ${esc(f.tx_hash)} · log ${esc(f.log_index)} · block ${esc(f.block_number)} (${esc(f.block_timestamp)})</div>`
    + (rows.length ? `<table class="hedge-detail">${rows.join("")}</table>` : "<div>not hedged yet</div>");
}

function renderFills() {
  const fills = [...S.fills.values()].sort((a, b) => b.recorded_at.localeCompare(a.recorded_at) || b.block_number - a.block_number || b.log_index - a.log_index).slice(0, 300);
  const body = $("fills").tBodies[0];
  if (!fills.length) { body.innerHTML = '<tr><td colspan="9" class="empty">Waiting for fills…</td></tr>'; return; }
  body.innerHTML = fills.map((f) => {
    const open = S.expanded.has(f.trade_id);
    const fresh = S.fresh.has(f.trade_id) ? " new" : "";
    return `<tr class="fill${fresh}" data-trade-id="${esc(f.trade_id)}" aria-expanded="${open}"><td>${ago(f.recorded_at)}</td><td><b>${esc(f.symbol)}</b></td>`
      + `<td class="${esc(f.direction)}">${esc(f.direction)}</td><td class="n">${esc(f.amount)}</td><td class="n">${dec(f.price, 2)}</td><td class="n">${usd(f.notional)}</td>`
      + `<td>${esc(f.block_number)}</td><td>${coverage(f)}</td><td class="mono">${esc(short(f.tx_hash))}:${esc(f.log_index)}</td></tr>`
      + (open ? `<tr class="detail" data-detail-for="${esc(f.trade_id)}"><td colspan="9">${detail(f)}</td></tr>` : "");
  }).join("");
  S.fresh.clear();
}

// -- interactions -------------------------------------------------------------------

$("fills").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr.fill"); if (!tr) return;
  const id = tr.dataset.tradeId;
  if (S.expanded.has(id)) S.expanded.delete(id); else S.expanded.add(id);
  schedule();
});

$("token-input").value = sessionStorage.getItem("st0x-token") || "";
$("breaker-btn").addEventListener("click", async () => {
  const btn = $("breaker-btn"), msg = $("breaker-msg");
  const token = $("token-input").value.trim();
  const action = btn.dataset.action || "pause";
  btn.disabled = true; msg.textContent = "";
  try {
    const res = await fetch("/api/breaker", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ action, reason: $("breaker-reason").value.trim() || undefined }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { msg.textContent = body.error || `refused (${res.status})`; msg.className = "sub neg"; return; }
    sessionStorage.setItem("st0x-token", token);
    if (S.status) S.status.breaker = body;
    msg.textContent = action === "pause" ? "hedging paused" : "hedging resumed"; msg.className = "sub";
    schedule();
  } catch (err) {
    msg.textContent = "request failed: " + err; msg.className = "sub neg";
  } finally { btn.disabled = false; }
});

$("risk-btn").addEventListener("click", async () => {
  const msg = $("risk-msg");
  const token = $("token-input").value.trim();
  const body = { action: "set-state", symbol: $("risk-symbol").value.trim() || "all", state: $("risk-state").value, reason: $("breaker-reason").value.trim() };
  msg.textContent = "";
  try {
    const res = await fetch("/api/breaker", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) { msg.textContent = answer.error || `refused (${res.status})`; msg.className = "sub neg"; return; }
    sessionStorage.setItem("st0x-token", token);
    if (S.status) S.status.risk = answer;
    msg.textContent = `${body.symbol}: ${body.state}`; msg.className = "sub";
    schedule();
  } catch (err) {
    msg.textContent = "request failed: " + err; msg.className = "sub neg";
  }
});

setInterval(() => { heartbeat(); updateStale(); schedule(); }, 5000); // pings; keeps "n seconds ago" fresh
connect();
