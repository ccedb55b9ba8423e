// levee's dashboard: a client of the admin API, with the token kept in this
// tab's sessionStorage only. Served by levee itself; no other server, no CDN.
"use strict";

const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (n) => {
  if (n === null || n === undefined) return "";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + " G";
  if (a >= 1e6) return (n / 1e6).toFixed(2) + " M";
  if (a >= 1e3) return (n / 1e3).toFixed(1) + " k";
  return Math.round(n).toString();
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem("levee-token");
  const headers = { Authorization: "Bearer " + token };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method: options.method || "GET", headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  if (r.status === 401) { logout("Your token was refused; log in again."); throw new ApiError(401, "unauthorized"); }
  const text = await r.text();
  const data = text ? (r.headers.get("content-type") || "").includes("json") ? JSON.parse(text) : text : null;
  if (!r.ok) throw new ApiError(r.status, (data && data.error && data.error.message) || r.statusText);
  return data;
}

function table(el, header, rows) {
  el.innerHTML = "<thead><tr>" + header.map((h) => `<th>${esc(h)}</th>`).join("") + "</tr></thead><tbody>" +
    (rows.length ? rows.join("") : `<tr><td colspan="${header.length}" class="hint">none</td></tr>`) + "</tbody>";
}

// ---- pages -----------------------------------------------------------------

const pages = { live: Live(), incidents: Incidents(), rules: Rules(), integrations: Integrations() };
let current = null;
let timer = null;

function show(name) {
  if (!sessionStorage.getItem("levee-token")) name = "login";
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== name;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  clearInterval(timer);
  current = pages[name];
  if (current) {
    current.refresh().catch(report);
    timer = setInterval(() => current.refresh().catch(report), current.every || 2000);
  }
}

function report(e) {
  if (!(e instanceof ApiError && e.status === 401)) console.error(e);
}

function logout(message) {
  sessionStorage.removeItem("levee-token");
  $("#nav").hidden = true;
  $("#logout").hidden = true;
  $("#node").textContent = "";
  $("#login-error").textContent = message || "";
  location.hash = "#login";
  show("login");
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("levee-token", $("#token").value.trim());
  try {
    const s = await api("/api/v1/status");
    $("#token").value = "";
    loggedIn(s);
    location.hash = "#live";
    show("live");
  } catch (e) {
    sessionStorage.removeItem("levee-token");
    $("#login-error").textContent = e.status === 401 ? "That token was refused." : "levee did not answer: " + e.message;
  }
});

function loggedIn(s) {
  $("#nav").hidden = false;
  $("#logout").hidden = false;
  $("#node").textContent = `${s.node_id} · ${s.mode} · levee ${s.version} · ${s.dpdk_version || ""}`;
}

$("#logout").addEventListener("click", () => logout());
window.addEventListener("hashchange", () => show(location.hash.slice(1) || "live"));

// ---- live ------------------------------------------------------------------

function Live() {
  let charts = null;
  let classes = [];
  const palette = ["#1f6feb", "#2ea043", "#d29922", "#8957e5", "#db61a2", "#0ea5e9", "#f97316", "#64748b", "#14b8a6", "#a3a3a3", "#e11d48", "#65a30d"];

  function build(names) {
    classes = names;
    for (const id of ["#chart-pps", "#chart-bps"]) $(id).innerHTML = "";
    const width = Math.max(400, $("#chart-pps").clientWidth - 10);
    // The stack's top first: each class's area fills down to zero, and the
    // ones drawn after it (lower in the stack) stay visible on top.
    const stackOrder = names.map((c, i) => [c, i]).reverse();
    const series = (unit) => [
      {},
      ...stackOrder.map(([c, i]) => ({ label: c, stroke: palette[i % palette.length], fill: palette[i % palette.length] + "99", width: 1, value: (u, v) => fmt(v) + unit })),
      { label: "outbound", stroke: "#111827", width: 2, dash: [6, 4], value: (u, v) => fmt(v) + unit },
      { label: "dropped", stroke: "#c62828", width: 2, value: (u, v) => fmt(v) + unit },
    ];
    const opts = (unit) => ({ width, height: 240, series: series(unit), axes: [{}, { values: (u, ticks) => ticks.map((t) => fmt(t)), size: 80 }], scales: { x: { time: true } }, legend: { live: true } });
    charts = {
      pps: new uPlot(opts("pps"), [[]], $("#chart-pps")),
      bps: new uPlot(opts("bps"), [[]], $("#chart-bps")),
    };
  }

  async function refresh() {
    const [status, traffic] = await Promise.all([api("/api/v1/status"), api("/api/v1/traffic?seconds=300")]);
    loggedIn(status);
    const points = traffic.points || [];
    const names = [...new Set(points.flatMap((p) => Object.keys(p.inbound.classes || {})))].sort();
    if (!charts || names.join() !== classes.join()) build(names);
    // Stacked: each class drawn on top of the ones before it.
    const xs = points.map((p) => p.at_ms / 1000);
    for (const [key, idx] of [["pps", 0], ["bps", 1]]) {
      const running = xs.map(() => 0);
      const stacked = names.map((c) => points.map((p, i) => (running[i] += ((p.inbound.classes || {})[c] || [0, 0])[idx])));
      const data = [xs, ...stacked.reverse()];
      data.push(points.map((p) => (key === "pps" ? p.outbound.pps : p.outbound.bps)));
      data.push(points.map((p) => (key === "pps" ? p.inbound.dropped_pps + p.outbound.dropped_pps : p.inbound.dropped_bps + p.outbound.dropped_bps)));
      charts[key].setData(data);
    }
    // For the browser tests: the newest point drawn and the highest stack.
    if (xs.length) {
      document.body.dataset.lastPoint = String(xs[xs.length - 1]);
      document.body.dataset.peakPps = String(Math.max(0, ...points.map((p) => p.inbound.pps)));
    }
    const r = status.rates || { inbound: {}, outbound: {} };
    $("#live-cards").innerHTML = [
      ["inbound", fmt(r.inbound.pps) + "pps", fmt(r.inbound.bps) + "bps"],
      ["outbound", fmt(r.outbound.pps) + "pps", fmt(r.outbound.bps) + "bps"],
      ["dropped", fmt((r.inbound.dropped_pps || 0) + (r.outbound.dropped_pps || 0)) + "pps", ""],
      ["open incidents", status.open_incidents, ""],
      ["active rules", (status.rules || {}).active || 0, `${(status.rules || {}).staged || 0} staged`],
      ["uptime", status.uptime_seconds + " s", status.window_reports_dropped ? status.window_reports_dropped + " reports dropped" : ""],
    ].map(([k, v, s]) => `<div class="card"><span>${esc(k)}</span><b>${esc(v)}</b><span>${esc(s)}</span></div>`).join("");
    table($("#ports"), ["Port", "Role", "Driver", "Link", "RX pps", "TX pps", "Missed", "Errors"], status.ports.map((p) =>
      `<tr><td>${esc(p.name)}</td><td>${esc(p.role)}</td><td>${esc(p.driver)}</td><td class="${p.link_up ? "ok" : "bad"}">${p.link_up ? "up" : "down"}</td>` +
      `<td>${fmt(p.rx_pps)}</td><td>${fmt(p.tx_pps)}</td><td>${esc(p.rx_missed)}</td><td>${(p.rx_errors || 0) + (p.tx_errors || 0)}</td></tr>`));
    const d = status.defences || {};
    table($("#defences"), ["SYN challenges", "Verified (challenge / handshake)", "Failed answers", "Out-of-state drops", "Grace passes", "Known-source passes", "Table refusals"], [
      `<tr><td>${fmt(d.challenges || 0)}${d.challenges_unsent ? ` (${fmt(d.challenges_unsent)} unsent)` : ""}</td><td>${fmt(d.verified || 0)} / ${fmt(d.handshakes || 0)}</td>` +
      `<td>${fmt(d.failed || 0)}</td><td>${fmt(d.out_of_state || 0)}</td><td>${fmt(d.grace_passes || 0)}</td><td>${fmt(d.known_passes || 0)}</td>` +
      `<td>${fmt((d.verified_refused || 0) + (d.connections_refused || 0))}</td></tr>`]);
    table($("#workers"), ["lcore", "RX packets", "Dropped", "Busy", "Cycles/burst p50", "p99"], status.workers.map((w) =>
      `<tr><td>${esc(w.lcore)}</td><td>${fmt(w.rx_packets)}</td><td>${fmt(w.dropped_packets)}</td><td>${Math.round((w.busy_ratio || 0) * 100)}%</td>` +
      `<td>${esc(w.cycles_per_burst && w.cycles_per_burst.p50)}</td><td>${esc(w.cycles_per_burst && w.cycles_per_burst.p99)}</td></tr>`));
  }
  return { refresh, every: 1000 };
}

// ---- incidents -------------------------------------------------------------

function Incidents() {
  let selected = null;
  async function refresh() {
    const list = await api("/api/v1/incidents?limit=100");
    table($("#incident-list"), ["Incident", "Status", "Type", "Severity", "Target", "Peak pps", "Started", "Seconds"], list.incidents.map((i) =>
      `<tr class="clickable" data-id="${esc(i.incident_id)}"><td>${esc(i.incident_id)}</td><td class="${i.status === "open" ? "bad" : ""}">${esc(i.status)}</td>` +
      `<td>${esc(i.attack_type)}</td><td>${esc(i.severity)}</td><td>${esc(i.target)}</td><td>${fmt(i.peak_pps)}</td><td>${esc(i.started_at)}</td><td>${esc(i.duration_seconds)}</td></tr>`));
    for (const tr of document.querySelectorAll("#incident-list tr.clickable")) tr.onclick = () => { selected = tr.dataset.id; detail(); };
    if (selected) await detail();
  }
  async function detail() {
    const d = await api("/api/v1/incidents/" + encodeURIComponent(selected));
    const i = d.incident;
    const vectors = (i.vectors || []).map((v) => `${esc(v.attack_type)} (${fmt(v.peak_pps)} pps)`).join(", ");
    $("#incident-detail").innerHTML = `<div class="detail"><h3>${esc(i.incident_id)}: ${esc(i.attack_type)}</h3><dl>
      <dt>Status</dt><dd>${esc(i.status)}</dd><dt>Severity</dt><dd>${esc(i.severity)}</dd><dt>Target</dt><dd>${esc(i.target)}${i.carpet_bombing ? " (carpet bombing)" : ""}</dd>
      <dt>Peak</dt><dd>${fmt(i.peak_pps)}pps, ${fmt(i.peak_bps)}bps</dd><dt>Duration</dt><dd>${esc(i.duration_seconds)} s (${esc(i.started_at)} to ${esc(i.resolved_at || "now")})</dd>
      <dt>Vectors</dt><dd>${vectors}</dd><dt>Spoofing likely</dt><dd>${i.spoofing_likely ? "yes" : "no"}</dd>
      <dt>Attacker IPs</dt><dd><code>${(i.attacker_ips || []).map(esc).join(" ") || "none (spoofed or none heavy)"}</code></dd>
      <dt>Forensics</dt><dd>${i.forensic_pcap ? `<a href="#" id="pcap-link">download ${esc(i.incident_id)}.pcapng</a>` : "no capture"}</dd></dl>
      <h4>Timeline</h4><ul class="timeline">${d.events.map((e) => `<li><b>${esc(e.at)}</b> ${esc(e.event)}: ${esc(e.attack_type)}, ${esc(e.severity)}, peak ${fmt(e.peak_pps)}pps</li>`).join("")}</ul>
      <h4>Rules</h4><ul>${d.rules.map((r) => `<li>${esc(r.id)} ${esc(r.state)}: ${esc(describe(r.match))}</li>`).join("") || "<li>none</li>"}</ul></div>`;
    const link = $("#pcap-link");
    if (link) link.onclick = async (ev) => {
      ev.preventDefault();
      const r = await fetch(i.forensic_pcap, { headers: { Authorization: "Bearer " + sessionStorage.getItem("levee-token") } });
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement("a");
      a.href = url; a.download = i.incident_id + ".pcapng"; a.click();
      URL.revokeObjectURL(url);
    };
  }
  return { refresh, every: 2000 };
}

function describe(m) {
  if (m.kind === "block") return "block " + m.source;
  if (m.kind === "source_limit") return `${m.class} per source ${m.pps}/s`;
  let s = `to ${m.destination} proto ${m.protocol}`;
  if (m.src_port) s += ` sport ${m.src_port}`;
  if (m.dst_port) s += ` dport ${m.dst_port}`;
  if (m.tcp_flags) s += ` flags ${m.tcp_flags}`;
  if (m.non_first_fragments) s += " fragments";
  if (m.check === "syn_authentication") return s + " authenticate SYNs";
  if (m.check === "connection_state") return s + " drop out-of-state";
  return s + (m.rate_limit_pps ? ` limit ${m.rate_limit_pps}/s` : " drop");
}

// ---- rules -----------------------------------------------------------------

function Rules() {
  const row = (r, buttons) => `<tr data-id="${esc(r.id)}"><td>${esc(r.id)}</td><td>${esc(r.incident_id)}</td><td>${esc(describe(r.match))}</td>` +
    `<td>${esc(r.expires_at)}</td><td>${esc(r.reason)}</td><td>${buttons}</td></tr>`;
  async function refresh() {
    const [staged, active] = await Promise.all([api("/api/v1/rules?state=staged"), api("/api/v1/rules?state=active")]);
    table($("#rules-staged"), ["Rule", "Incident", "Match", "Expires", "Reason", ""], staged.rules.map((r) =>
      row(r, `<button class="approve">Approve</button> <button class="danger delete">Delete</button>`)));
    table($("#rules-active"), ["Rule", "Incident", "Match", "Expires", "Reason", ""], active.rules.map((r) =>
      row(r, `<button class="danger delete">Delete</button>`)));
    for (const b of document.querySelectorAll("#rules button.approve")) b.onclick = () => act(b, "POST", "/approve", "approved");
    for (const b of document.querySelectorAll("#rules button.delete")) b.onclick = () => act(b, "DELETE", "", "deleted");
  }
  async function act(button, method, suffix, done) {
    const id = button.closest("tr").dataset.id;
    try {
      await api(`/api/v1/rules/${id}${suffix}`, { method });
      $("#rules-message").textContent = `Rule ${id} ${done}.`;
    } catch (e) {
      $("#rules-message").textContent = `Rule ${id}: ${e.message}`;
    }
    await refresh();
  }
  $("#block-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { kind: "block", source: f.get("source") };
    if (f.get("ttl_seconds")) body.ttl_seconds = Number(f.get("ttl_seconds"));
    if (f.get("reason")) body.reason = f.get("reason");
    try {
      const r = await api("/api/v1/rules", { method: "POST", body });
      $("#rules-message").textContent = `Rule ${r.id} blocks ${r.match.source}.`;
      ev.target.reset();
    } catch (e) {
      $("#rules-message").textContent = e.message;
    }
    await refresh();
  });
  return { refresh, every: 2000 };
}

// ---- integrations ----------------------------------------------------------

const FIELDS = {
  webhook: [["url", "URL", "text", "https://hooks.example.net/levee", true], ["secret", "Signing secret (empty: generated and shown once)", "password"],
    ["headers", "Extra headers (JSON object)", "text", '{"X-Team": "noc"}']],
  abuseipdb: [["api_key", "API key", "password", "", true], ["daily_quota", "Daily quota", "number", "1000"], ["base_url", "Base URL", "text", "https://api.abuseipdb.com"]],
  crowdsec: [["lapi_url", "LAPI URL", "text", "http://127.0.0.1:8080", true], ["machine_id", "Machine id (push)", "text", "levee"], ["password", "Machine password", "password"],
    ["ban_duration", "Ban duration (1h, 4h, 12h, 24h, 3d, 7d)", "text", "4h"], ["pull", "Pull decisions as a bouncer", "checkbox"], ["bouncer_key", "Bouncer key (pull)", "password"]],
  iptables: [["host_apply", "Apply on the host (none, iptables, nftables)", "text", "none"]],
  bgp: [["api", "GoBGP API (host:port)", "text", "127.0.0.1:50051", true], ["gobgp", "gobgp command", "text", "gobgp"],
    ["flowspec", "Announce FlowSpec rules too", "checkbox"], ["hold_down_seconds", "Hold-down after resolve (s)", "number", "300"],
    ["max_announcements", "At most this many routes", "number", "64"]],
};

function Integrations() {
  let selected = null;
  function fields() {
    const kind = $("#integration-kind").value;
    $("#integration-fields").innerHTML = FIELDS[kind].map(([name, label, type, placeholder, required]) =>
      `<label>${esc(label)} <input name="${name}" type="${type}" placeholder="${esc(placeholder || "")}" ${required ? "required" : ""}></label>`).join("");
  }
  $("#integration-kind").addEventListener("change", fields);
  $("#add-integration").addEventListener("click", () => { $("#integration-form").hidden = false; $("#integration-secret").hidden = true; fields(); });
  $("#integration-cancel").addEventListener("click", () => { $("#integration-form").hidden = true; });
  $("#integration-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const kind = $("#integration-kind").value;
    const body = { kind, name: form.elements.name.value };
    try {
      for (const [name, , type] of FIELDS[kind]) {
        const el = form.elements[name];
        if (type === "checkbox") { if (el.checked) body[name] = true; continue; }
        if (el.value === "") continue;
        body[name] = type === "number" ? Number(el.value) : name === "headers" ? JSON.parse(el.value) : el.value;
      }
      if (kind === "crowdsec" && !body.machine_id) body.push = false;
      const created = await api("/api/v1/integrations", { method: "POST", body });
      form.hidden = true;
      form.reset();
      selected = created.id;
      const box = $("#integration-secret");
      if (created.secret) {
        box.innerHTML = `Signing secret of <b>${esc(created.name)}</b>, shown this once; receivers check <code>X-Levee-Signature</code> with it:<br><code id="shown-secret">${esc(created.secret)}</code>`;
        box.hidden = false;
      }
      $("#integration-message").textContent = `Integration ${created.name} added.`;
    } catch (e) {
      $("#integration-message").textContent = e instanceof SyntaxError ? "headers: not a JSON object" : e.message;
    }
    await refresh();
  });
  async function refresh() {
    const list = await api("/api/v1/integrations");
    table($("#integration-list"), ["Name", "Kind", "Enabled", "Origin", "Target", ""], list.integrations.map((i) =>
      `<tr data-id="${esc(i.id)}"><td>${esc(i.name)}</td><td>${esc(i.kind)}</td><td>${i.enabled ? "yes" : "no"}</td><td>${esc(i.origin)}</td>` +
      `<td>${esc(i.url || i.base_url || i.lapi_url || i.host_apply || "")}</td><td><button class="test">Test</button> <button class="secondary log">Deliveries</button>` +
      (i.origin === "api" ? ` <button class="danger remove">Delete</button>` : "") + `</td></tr>`));
    for (const b of document.querySelectorAll("#integration-list button.test")) b.onclick = async () => {
      const id = b.closest("tr").dataset.id;
      await api(`/api/v1/integrations/${id}/test`, { method: "POST" });
      selected = id;
      $("#integration-message").textContent = "Test delivery queued.";
      await log();
    };
    for (const b of document.querySelectorAll("#integration-list button.log")) b.onclick = () => { selected = b.closest("tr").dataset.id; log(); };
    for (const b of document.querySelectorAll("#integration-list button.remove")) b.onclick = async () => {
      await api(`/api/v1/integrations/${b.closest("tr").dataset.id}`, { method: "DELETE" });
      selected = null;
      $("#integration-detail").innerHTML = "";
      await refresh();
    };
    if (selected) await log();
  }
  async function log() {
    const d = await api(`/api/v1/integrations/${selected}/deliveries?limit=50`);
    $("#integration-detail").innerHTML = `<div class="detail"><h3>Delivery log</h3><table id="delivery-log"></table></div>`;
    table($("#delivery-log"), ["#", "Event", "Incident", "Subject", "State", "Attempts", "Status", "Result"], d.deliveries.map((x) => {
      const last = (x.log || [])[x.log.length - 1] || {};
      return `<tr><td>${esc(x.id)}</td><td>${esc(x.event)}</td><td>${esc(x.incident_id)}</td><td>${esc(x.subject)}</td>` +
        `<td class="${x.state === "delivered" ? "ok" : x.state === "failed" ? "bad" : ""}">${esc(x.state)}</td><td>${esc(x.attempts)}</td><td>${esc(x.last_status)}</td><td>${esc(last.result)}</td></tr>`;
    }));
  }
  return { refresh, every: 2000 };
}

// ---- start -----------------------------------------------------------------

if (sessionStorage.getItem("levee-token")) {
  api("/api/v1/status").then((s) => { loggedIn(s); show(location.hash.slice(1) || "live"); }).catch(() => logout());
} else {
  show("login");
}
