// The operator page: reads /api, follows /api/events, acts with the session's CSRF value.
// Every text from the server is set with textContent: nothing it sends is ever parsed as HTML.
"use strict";

const state = { csrf: null, scopes: [], sort: { key: "name", asc: true }, units: [], chart: null, events: null };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c === undefined || c === null ? "" : String(c)));
  return node;
}

const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");
const fmt = (v) => (v === null || v === undefined ? "-" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v));
const may = (scope) => state.scopes.includes(scope);

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.method && options.method !== "GET") {
    if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (response.status === 401) {
    showLogin();
    throw new Error("not logged in");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data));
  return data;
}

// -- login ------------------------------------------------------------------
function showLogin() {
  if (state.events) { state.events.close(); state.events = null; }
  $("app").hidden = true;
  $("banner").hidden = true;
  $("login").hidden = false;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const response = await fetch("/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: $("token").value }),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : "login failed");
    $("token").value = "";
    await start();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

async function logout() {
  await api("/logout", { method: "POST" }).catch(() => {});
  state.csrf = null;
  showLogin();
}

// -- the viable system ------------------------------------------------------
const SYSTEMS = {
  s5: ["S5 policy", ["proposals", "attention", "gap_open", "over_budget", "auto_approve_acquisition"]],
  s4: ["S4 intelligence", ["events", "demand_variety_bits", "system_variety_bits", "coverage", "gap", "detector", "forecast_next_hour", "trending_to_gap"]],
  s3: ["S3 control", ["units_running", "max_units", "rss_mib", "over_budget", "failed", "quarantined", "parked"]],
  s3_star: ["S3* audit", ["probes", "failures", "last_check"]],
  s2: ["S2 coordination", ["unit_restarts", "units_backing_off", "units_held", "calls_in_flight", "calls_queued", "calls_waited", "collisions", "dropped"]],
  s1: ["S1 operations", ["units", "tools", "calls", "errors", "units_spiking"]],
  algedonic: ["Algedonic channel", ["signals", "alerts_sent", "pending", "held_by_rate_limit", "folded"]],
};

function tone(word) {
  if (["failed", "quarantined", "attention"].includes(word)) return "bad";
  if (["degraded", "gap", "throttling", "backoff", "starting"].includes(word)) return "warn";
  return "";
}

function metricValue(key, value) {
  if (typeof value === "number" && key.endsWith("_bytes")) return `${(value / 1048576).toFixed(1)} MiB`;
  return fmt(value);
}

function metricsOf(metrics, preferred) {
  const keys = preferred.filter((k) => k in metrics);
  for (const k of Object.keys(metrics)) if (!keys.includes(k) && keys.length < 8) keys.push(k);
  return el("div", { class: "metrics" }, ...keys.map((k) => el("span", {}, `${k.replace(/_bytes$/, "").replace(/_/g, " ")} `, el("b", {}, metricValue(k, metrics[k])))));
}

function renderSystem(id, system) {
  const [title, preferred] = SYSTEMS[id];
  const box = $(`sys-${id}`);
  box.className = `${id === "algedonic" ? "algedonic" : "system"} ${tone(system.state)}` + (box.classList.contains("lit") ? " lit" : "");
  box.replaceChildren(
    el("h3", {}, title, " ", el("span", { class: `state ${system.state}` }, system.state)),
    metricsOf(system.metrics || {}, preferred),
  );
  box.dataset.state = system.state;
}

function renderUnitTree(unit, depth) {
  const s1 = unit.s1.metrics || {};
  const node = el("div", { class: depth ? "nested" : "unit", "data-unit": unit.name },
    el("div", {}, el("span", { class: "name" }, unit.name), " ",
      el("span", { class: `state ${unit.s3.state}` }, unit.s3.state), " ",
      el("span", { class: "muted" }, `${fmt(s1.calls)} calls, ${fmt(s1.errors)} errors`)),
  );
  if (unit.algedonic && unit.algedonic.state === "attention") node.append(el("div", { class: "state attention" }, "needs attention"));
  for (const inner of unit.units || []) node.append(renderUnitTree(inner, depth + 1));
  return node;
}

function renderVsm(status) {
  $("system-name").textContent = status.vsm.name;
  for (const id of Object.keys(SYSTEMS)) renderSystem(id, status.vsm[id]);
  $("units").replaceChildren(...status.vsm.units.map((u) => renderUnitTree(u, 0)));
}

// -- fleet -------------------------------------------------------------------
function sortValue(unit, key) {
  if (key === "errors") return unit.calls ? unit.errors / unit.calls : 0;
  const v = unit[key];
  return v === null || v === undefined ? "" : v;
}

function renderFleet() {
  const { key, asc } = state.sort;
  const rows = [...state.units].sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
  });
  for (const th of document.querySelectorAll("#fleet th[data-key]")) {
    th.classList.toggle("sorted", th.dataset.key === key);
    th.classList.toggle("asc", th.dataset.key === key && asc);
  }
  $("fleet").tBodies[0].replaceChildren(...rows.map((u) => {
    const actions = el("td", {});
    if (may("manage")) {
      actions.append(
        el("button", { class: "small secondary", onclick: () => act(`/api/servers/${encodeURIComponent(u.name)}/restart`, "POST") }, "Restart"), " ",
        el("button", { class: "small danger", onclick: () => confirm(`Remove ${u.name}?`) && act(`/api/servers/${encodeURIComponent(u.name)}`, "DELETE") }, "Remove"),
      );
    }
    return el("tr", { "data-unit": u.name },
      el("td", {}, u.name), el("td", {}, el("span", { class: `state ${u.state}` }, u.state)),
      el("td", { class: "detail" }, u.target), el("td", {}, u.tools), el("td", {}, u.calls),
      el("td", {}, u.calls ? `${((100 * u.errors) / u.calls).toFixed(1)}%` : "-"),
      el("td", {}, fmt(u.p50_ms)), el("td", {}, fmt(u.p99_ms)), el("td", {}, el("span", { class: `state ${u.breaker}` }, u.breaker)),
      el("td", {}, u.sandbox), el("td", {}, u.restarts),
      el("td", {}, u.pinned_tools === null ? "-" : `${u.pinned_tools} (${u.pinned_by})`),
      el("td", { class: "detail" }, u.quarantine || "-"), actions,
    );
  }));
}

// -- variety -------------------------------------------------------------------
function renderVariety(v) {
  const now = v.now || {};
  $("variety-now").textContent = `now: demand ${fmt(now.demand_variety_bits)} bits, system ${fmt(now.system_variety_bits)} bits, coverage ${fmt(now.coverage)}, gap ${fmt(now.gap)} (${v.detector})`;
  $("variety-note").textContent = `Stored hours of demand (${v.history.length}), then the reading now. Gap thresholds: act at ${v.gap_upper}, clear below ${v.gap_lower}.`;
  const points = [...v.history];
  points.push({ at: Math.floor(Date.now() / 1000), demand_variety_bits: now.demand_variety_bits ?? 0, answered_variety_bits: null, coverage: now.coverage ?? 1, gap: now.gap ?? 0 });
  const data = [
    points.map((p) => p.at),
    points.map((p) => p.demand_variety_bits),
    points.map((p) => p.answered_variety_bits),
    points.map((p) => p.coverage),
    points.map((p) => p.gap),
    points.map(() => v.gap_upper),
    points.map(() => v.gap_lower),
  ];
  const width = Math.max(320, $("chart").clientWidth || 900);
  if (!state.chart) {
    state.chart = new uPlot({
      width, height: 260,
      scales: {
        // The stored hours shown (HISTORY_HOURS on the server) up to now, however few points there are.
        x: { time: true, range: () => [Math.floor(Date.now() / 1000) - 48 * 3600, Math.floor(Date.now() / 1000) + 60] },
        bits: { range: (u, min, max) => [0, Math.max(1, max || 0) * 1.1] },
        share: { range: [0, 2] },
      },
      axes: [{}, { scale: "bits", label: "bits" }, { scale: "share", side: 1, label: "coverage / gap", grid: { show: false } }],
      series: [
        {},
        { label: "demand variety (bits)", scale: "bits", stroke: "#2b6cb0", width: 2, points: { show: true } },
        { label: "answered variety (bits)", scale: "bits", stroke: "#1f8a4c", width: 2, points: { show: true } },
        { label: "coverage", scale: "share", stroke: "#805ad5", points: { show: true } },
        { label: "gap", scale: "share", stroke: "#e53e3e", width: 2, points: { show: true } },
        { label: "act at", scale: "share", stroke: "#e53e3e", dash: [6, 4] },
        { label: "clear below", scale: "share", stroke: "#b7791f", dash: [2, 4] },
      ],
    }, data, $("chart"));
  } else {
    state.chart.setData(data);
  }
}

// -- approvals, alerts, letters, decisions, audit ------------------------------------
function candidateRows(request) {
  const all = [request.candidate, ...(request.alternatives || [])].filter(Boolean);
  return el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Candidate"), el("th", {}, "Score"), el("th", {}, "Why"))),
    el("tbody", {}, ...all.map((c, i) => el("tr", {}, el("td", {}, `${i === 0 ? "▶ " : ""}${c.server} (${c.registry_type} ${c.identifier}@${c.version})`),
      el("td", {}, fmt(c.score)), el("td", { class: "detail" }, (c.reasons || []).join("; "))))));
}

function renderApprovals(list) {
  if (!list.length) { $("approvals").replaceChildren(el("p", { class: "empty" }, "nothing waits")); return; }
  $("approvals").replaceChildren(...list.map((a) => {
    const verdict = (a.request && a.request.verdict) || {};
    const box = el("div", { class: "approval", "data-approval": a.id },
      el("div", {}, el("b", {}, `#${a.id} `), a.question),
      el("div", { class: "hint" }, `asked ${when(a.asked_at)}; vetting: ${verdict.rule || "-"}: ${verdict.rationale || ""}`),
    );
    if (a.request && a.request.candidate) box.append(candidateRows(a.request));
    if (may("approve")) {
      box.append(el("div", { class: "actions" },
        el("button", { onclick: (e) => { e.target.disabled = true; act(`/api/approvals/${a.id}/approve`, "POST"); } }, "Approve"),
        el("button", { class: "danger", onclick: () => act(`/api/approvals/${a.id}/deny`, "POST", { reason: "denied from the operator page" }) }, "Deny"),
      ));
    }
    return box;
  }));
}

// A server wrote these texts: invisible and control characters are shown as escapes, never hidden.
const visible = (value) => (value === null || value === undefined ? "(none)" : typeof value === "string" ? value : JSON.stringify(value))
  .replace(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u00AD\u200B-\u200F\u202A-\u202E\u2060-\u206F\uFEFF\uE000-\uF8FF]/g,
    (c) => `\\u{${c.codePointAt(0).toString(16)}}`);

function renderQuarantines(list) {
  $("quarantines").replaceChildren(...list.map((q) => {
    const box = el("div", { class: "approval", "data-quarantine": q.unit },
      el("div", {}, el("b", {}, `${q.unit}: `), q.reason),
      el("div", { class: "hint" }, `quarantined ${when(q.since)}; pinned ${when(q.pinned_at)} (${q.pinned_by})`),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Tool"), el("th", {}, "Field"), el("th", {}, "Pinned"), el("th", {}, "Now"))),
        el("tbody", {}, ...q.changes.map((c) => el("tr", {}, el("td", {}, c.tool), el("td", {}, c.field),
          el("td", { class: "detail" }, visible(c.old)), el("td", { class: "detail" }, visible(c.new)))))),
    );
    if (may("approve")) {
      box.append(el("div", { class: "actions" },
        el("button", { onclick: () => act(`/api/servers/${encodeURIComponent(q.unit)}/approve-definitions`, "POST", { shown_digest: q.shown_digest }) }, "Approve these definitions")));
    }
    return box;
  }));
}

function renderAlerts(list) {
  $("alerts").tBodies[0].replaceChildren(...list.map((a) => el("tr", { "data-alert": a.id, "data-kind": a.kind },
    el("td", {}, a.id), el("td", {}, when(a.last_at)), el("td", {}, el("span", { class: `state ${a.severity}` }, a.severity)),
    el("td", {}, a.source), el("td", {}, a.kind), el("td", {}, a.count), el("td", { class: "detail" }, a.detail),
    el("td", {}, a.acknowledged ? `acknowledged by ${a.acknowledged.by}` :
      may("approve") ? el("button", { class: "small secondary", onclick: () => act(`/api/alerts/${a.id}/ack`, "POST") }, "Acknowledge") : ""),
  )));
}

function renderLetters(list) {
  $("letters").tBodies[0].replaceChildren(...list.map((d) => el("tr", { "data-letter": d.id },
    el("td", {}, d.id), el("td", {}, when(d.at)), el("td", {}, d.unit), el("td", {}, d.tool), el("td", {}, d.attempts),
    el("td", { class: "detail" }, d.error),
    el("td", {}, may("manage") ? el("button", { class: "small secondary", onclick: () => act(`/api/dead-letters/${d.id}/replay`, "POST") }, "Replay") : ""),
  )));
}

function renderDecisions(list) {
  $("decisions").tBodies[0].replaceChildren(...list.map((d) => el("tr", {},
    el("td", {}, when(d.at)), el("td", {}, d.system), el("td", {}, d.subject), el("td", {}, el("span", { class: "state" }, d.choice)),
    el("td", {}, d.rule), el("td", { class: "detail" }, d.rationale))));
}

function renderFindings(list) {
  $("findings").tBodies[0].replaceChildren(...list.map((f) => el("tr", {},
    el("td", {}, when(f.at)), el("td", {}, f.unit), el("td", {}, f.check),
    el("td", {}, el("span", { class: `state ${f.ok ? "ok" : "failed"}` }, f.ok ? "ok" : "failed")), el("td", { class: "detail" }, f.detail))));
}

function renderAudit(list) {
  $("audit").tBodies[0].replaceChildren(...list.map((a) => el("tr", {},
    el("td", {}, when(a.at)), el("td", {}, a.actor), el("td", {}, a.via), el("td", {}, a.action),
    el("td", {}, a.target), el("td", {}, a.ok ? "yes" : "no"), el("td", { class: "detail" }, a.detail))));
}

// -- loading and acting ----------------------------------------------------------------
const loaders = {
  status: async () => { const s = await api("/api/status"); state.units = s.units; renderVsm(s); renderFleet(); },
  variety: async () => renderVariety(await api("/api/variety")),
  approvals: async () => renderApprovals(await api("/api/approvals")),
  quarantines: async () => renderQuarantines(await api("/api/quarantines")),
  alerts: async () => renderAlerts(await api("/api/alerts")),
  letters: async () => renderLetters(await api("/api/dead-letters")),
  decisions: async () => renderDecisions(await api("/api/decisions")),
  findings: async () => renderFindings(await api("/api/findings")),
  audit: async () => renderAudit(await api("/api/audit")),
};
const pending = new Map();

function refresh(name, delay = 150) {
  if (pending.has(name)) return;
  pending.set(name, setTimeout(() => {
    pending.delete(name);
    loaders[name]().catch((error) => console.warn(name, error.message));
  }, delay));
}

async function act(path, method, body) {
  try {
    const result = await api(path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    if (result.ok === false) alert(result.detail);
  } catch (error) {
    alert(error.message);
  }
  for (const name of Object.keys(loaders)) refresh(name, 0);
}

function light() {
  const box = $("sys-algedonic");
  box.classList.add("lit");
  clearTimeout(light.timer);
  light.timer = setTimeout(() => box.classList.remove("lit"), 5000);
}

function follow() {
  const source = new EventSource("/api/events");
  state.events = source;
  source.onopen = () => { $("banner").hidden = true; };
  source.onerror = () => {
    $("banner").textContent = "The gateway is unreachable: reconnecting…";
    $("banner").hidden = false;
  };
  const on = (kind, ...names) => source.addEventListener(kind, () => names.forEach((n) => refresh(n)));
  on("unit.state", "status");
  on("unit.ready", "status");
  on("unit.failed", "status");
  on("capability.changed", "status");
  on("status.stored", "status", "findings", "audit");
  on("calls.counted", "status");
  on("variety.read", "variety");
  on("proposal.made", "variety");
  on("decision.stored", "decisions", "approvals", "status");
  on("capability.changed", "quarantines");
  on("reset", ...Object.keys(loaders));
  on("missed", ...Object.keys(loaders));
  source.addEventListener("alert.raised", () => { light(); refresh("alerts", 0); refresh("status"); refresh("quarantines"); });
}

async function start() {
  const session = await api("/api/session");
  state.csrf = session.csrf;
  state.scopes = session.scopes;
  $("who").textContent = `${session.name} (${session.scopes.join(", ")})`;
  $("login").hidden = true;
  $("app").hidden = false;
  await Promise.all(Object.values(loaders).map((load) => load().catch((error) => console.warn(error.message))));
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  for (const th of document.querySelectorAll("#fleet th[data-key]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      state.sort = { key, asc: state.sort.key === key ? !state.sort.asc : true };
      renderFleet();
    });
  }
  start().catch(() => showLogin());
});
