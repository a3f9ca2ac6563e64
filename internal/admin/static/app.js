// The dashboard polls /api/v1/dashboard every second and redraws; no
// framework and no external resources.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function spark(points, field, cls) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark " + cls);
  svg.setAttribute("viewBox", "0 0 60 20");
  svg.setAttribute("preserveAspectRatio", "none");
  const vals = points.map((p) => p[field]);
  const max = Math.max(1e-9, ...vals);
  const pl = document.createElementNS(ns, "polyline");
  pl.setAttribute("points", vals.map((v, i) => `${60 - (vals.length - 1 - i)},${19 - (v / max) * 18}`).join(" "));
  pl.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(pl);
  const title = document.createElementNS(ns, "title");
  title.textContent = `${field}: max ${max.toFixed(2)} over the last ${vals.length} s`;
  svg.append(title);
  return svg;
}

const fmt = (n, d = 1) => (n || 0).toFixed(d);

// The EWMA latency is absent until the target answered once: a dash, not
// a 0 that would read as the fastest target.
const ewma = (t) => (t.latencyEwmaMs ? fmt(t.latencyEwmaMs, 2) : "-");

// Weight as a share of a healthy peer's; below 100 % only while anomaly
// mitigation dims the target, which is flagged next to it.
function weight(t) {
  const pct = `${+((t.weight ?? 1) * 100).toFixed(1)}%`;
  return t.anomalous ? [pct, " ", el("span", { class: "badge anomalous" }, "anomalous")] : [pct];
}

function ago(t) {
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

function renderGroups(groups) {
  const box = $("#groups");
  box.replaceChildren();
  if (!groups.length) box.append(el("p", { class: "muted" }, "no target groups"));
  for (const g of groups) {
    const counts = {};
    for (const t of g.targets) counts[t.state] = (counts[t.state] || 0) + 1;
    const summary = Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ") || "no targets";
    box.append(el("h3", { "data-group": g.name }, `${g.name} `,
      el("span", { class: "muted" }, `${g.protocol} ${g.protocolVersion} · `),
      el("span", { class: "algorithm", title: "balancing algorithm" }, g.algorithm),
      el("span", { class: "muted" }, ` · ${summary}`)));
    const tbody = el("tbody");
    for (const t of g.targets) {
      const last = t.lastError ? `${t.lastErrorCode}: ${t.lastError || ""}`.replace(/: $/, "") : "";
      tbody.append(el("tr", { class: "target", "data-group": g.name, "data-target": t.address, "data-state": t.state },
        el("td", {}, t.address),
        el("td", { class: "state" }, el("span", { class: `badge state-${t.state}` }, t.state)),
        el("td", { class: "reason" }, t.reason || ""),
        el("td", { class: "num inflight" }, t.inFlight),
        el("td", { class: "num ewma" }, ewma(t)),
        el("td", { class: "num weight" }, ...weight(t)),
        el("td", { class: "num rps" }, fmt(t.lastMinute.rps)),
        el("td", {}, spark(t.series || [], "rps", "rps")),
        el("td", { class: "num p99" }, fmt(t.lastMinute.p99Ms, 2)),
        el("td", {}, spark(t.series || [], "p99Ms", "p99")),
        el("td", { class: "lasterr muted" }, last)));
    }
    const head = el("thead", {}, el("tr", {}, ...["target", "state", "reason", "in flight", "EWMA ms", "weight", "RPS (1 min)", "RPS", "p99 ms (1 min)", "p99", "last error"].map((h) => el("th", {}, h))));
    box.append(el("table", { class: "targets" }, head, tbody));
  }
}

function renderCodes(codes) {
  $("#codes tbody").replaceChildren(...codes.map((c) =>
    el("tr", { class: c.error ? "code-error" : "", "data-code": c.code }, el("td", {}, c.code), el("td", { class: "num" }, c.lastMinute), el("td", { class: "num" }, c.total))));
}

function renderCerts(certs) {
  $("#certs tbody").replaceChildren(...certs.map((c) => {
    const exp = c.notAfter ? `${c.notAfter.slice(0, 10)} (${c.daysLeft} days)` : c.error || "";
    return el("tr", { "data-arn": c.arn },
      el("td", {}, (c.dnsNames || [c.domainName]).join(", ")),
      el("td", {}, c.listeners.join(", ")),
      el("td", { class: c.daysLeft < 30 ? "expiring" : "" }, exp),
      el("td", { class: "muted" }, c.arn));
  }));
}

function render(d) {
  $("#version").textContent = d.version;
  const r = $("#ready");
  r.textContent = d.ready ? "ready" : "not ready";
  r.className = "badge " + (d.ready ? "ready" : "notready");
  $("#updated").textContent = "updated " + new Date(d.now).toLocaleTimeString();
  const rl = $("#reload");
  if (d.reload) {
    rl.textContent = `last load ${ago(d.reload.time)}: ${d.reload.ok ? "succeeded" : "failed: " + d.reload.error}`;
    rl.className = d.reload.ok ? "" : "err-text";
    rl.dataset.ok = d.reload.ok;
  }
  $("#listeners").replaceChildren(...d.listeners.map((l) => el("li", {}, `${l.protocol} ${l.port} on ${l.address} · ${l.rules} rules`)));
  $("#warnings").replaceChildren(...d.warnings.map((w) => el("li", {}, w)));
  renderGroups(d.targetGroups);
  renderCodes(d.codes);
  renderCerts(d.certificates);
}

async function poll() {
  try {
    const resp = await fetch("api/v1/dashboard", { cache: "no-store" });
    if (resp.ok) render(await resp.json());
    else $("#updated").textContent = `admin API answered ${resp.status}`;
  } catch (e) {
    $("#updated").textContent = "l7lb unreachable: " + e;
  }
  setTimeout(poll, 1000);
}

poll();
