// The Lateen dashboard: polls lateend's /dashboard/api/* and draws the service graph, the
// services, one service's details and the proxies' sync status. Everything a proxy or a
// resource names is put in the page as text (never as HTML).
"use strict";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
let selectedHost = null;

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function fmt(n, digits) {
  return Number(n).toFixed(digits);
}

const COLUMN = 380, ROW = 80;

// Columns by distance from the callers nobody calls (outside traffic first); a workload
// without edges joins the column of another version of its app, else a last column.
function layout(nodes, edges) {
  const incoming = new Map(nodes.map((n) => [n.id, 0]));
  const linked = new Set();
  for (const e of edges) {
    incoming.set(e.target, (incoming.get(e.target) || 0) + 1);
    linked.add(e.source);
    linked.add(e.target);
  }
  const depth = new Map();
  const queue = nodes.filter((n) => linked.has(n.id) && !incoming.get(n.id)).map((n) => n.id);
  queue.forEach((id) => depth.set(id, 0));
  for (let i = 0; i < queue.length && i < 10000; i++) {
    const id = queue[i];
    for (const e of edges) {
      if (e.source === id && !depth.has(e.target)) {
        depth.set(e.target, depth.get(id) + 1);
        queue.push(e.target);
      }
    }
  }
  const last = Math.max(-1, ...depth.values()) + 1;
  for (const n of nodes) {
    if (depth.has(n.id)) continue;
    const sibling = nodes.find((m) => m.app && m.app === n.app && depth.has(m.id) && linked.has(m.id));
    depth.set(n.id, sibling ? depth.get(sibling.id) : last);
  }
  const columns = new Map();
  for (const n of nodes) {
    const d = depth.get(n.id);
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(n);
  }
  const position = new Map();
  for (const [d, column] of columns) {
    column.sort((a, b) => a.id.localeCompare(b.id));
    column.forEach((n, row) => position.set(n.id, { x: 20 + d * COLUMN, y: 30 + row * ROW }));
  }
  const rows = Math.max(1, ...[...columns.values()].map((c) => c.length));
  const width = COLUMN * (Math.max(0, ...columns.keys()) + 1) + 40;
  return { position, width, height: rows * ROW + 40 };
}

// One drawn edge per caller and callee: the series of several services (or of a service
// named two ways) between them add up; p99 is the worst of them.
function mergeEdges(edges) {
  const merged = new Map();
  for (const e of edges) {
    const key = `${e.source}\n${e.destination}`;
    const m = merged.get(key);
    if (!m) {
      merged.set(key, { ...e, target: e.destination, services: [e.service] });
      continue;
    }
    const rps = m.rps + e.rps;
    m.error_rate = rps > 0 ? (m.error_rate * m.rps + e.error_rate * e.rps) / rps : 0;
    m.rps = rps;
    if (e.p99_ms !== null && (m.p99_ms === null || e.p99_ms > m.p99_ms)) m.p99_ms = e.p99_ms;
    m.mtls = m.mtls || e.mtls;
    if (!m.services.includes(e.service)) m.services.push(e.service);
    m.service = m.services.join(" ");
  }
  return [...merged.values()];
}

function drawGraph(graph) {
  const svg = document.getElementById("graph");
  const edges = mergeEdges(graph.edges);
  const { position, width, height } = layout(graph.nodes, edges);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${Math.max(width, 600)} ${Math.max(height, 200)}`);
  svg.setAttribute("height", Math.max(height, 200));
  const defs = el("svg:defs", {},
    el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" },
      el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#7b8499" })));
  svg.append(defs);
  const W = 170, H = 44;
  for (const e of edges) {
    const a = position.get(e.source), b = position.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const classes = ["edge"];
    if (e.error_rate > 0) classes.push("errors");
    if (e.rps === 0) classes.push("idle");
    if (e.mtls) classes.push("mtls");
    const p99 = e.p99_ms === null ? "–" : `${fmt(e.p99_ms, 1)} ms`;
    const mid = (x1 + x2) / 2, midY = (y1 + y2) / 2;
    svg.append(el("svg:g", {
      class: classes.join(" "), "data-source": e.source, "data-target": e.target,
      "data-service": e.service, "data-rps": e.rps, "data-error-rate": e.error_rate,
      "data-p99-ms": e.p99_ms === null ? "" : e.p99_ms, "data-mtls": e.mtls,
    },
      el("svg:title", {}, `${e.source} → ${e.target} (${e.service})`),
      el("svg:path", { d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}` }),
      el("svg:text", { x: mid, y: midY - 6, "text-anchor": "middle" },
        `${fmt(e.rps, 2)} rps${e.mtls ? " · 🔒 mTLS" : ""}`),
      el("svg:text", { x: mid, y: midY + 8, "text-anchor": "middle", class: "sub" },
        `${fmt(e.error_rate * 100, 1)}% err · p99 ${p99}`)));
  }
  for (const n of graph.nodes) {
    const p = position.get(n.id);
    const service = n.app && n.namespace ? `${n.app}.${n.namespace}.svc.cluster.local` : (n.kind === "service" ? n.id : "");
    const classes = ["node", n.kind];
    if (service && service === selectedHost) classes.push("selected");
    const group = el("svg:g", { class: classes.join(" "), "data-id": n.id,
      "data-workload": n.workload, "data-namespace": n.namespace, "data-service": service,
      transform: `translate(${p.x},${p.y})` },
      el("svg:rect", { width: W, height: H }),
      el("svg:text", { x: 8, y: 18 }, n.workload),
      el("svg:text", { x: 8, y: 35, class: "sub" },
        n.kind === "workload" ? `${n.namespace} · ${n.app || "?"} ${n.version || ""}` : n.kind));
    if (service) group.addEventListener("click", () => openService(service));
    svg.append(group);
  }
  const note = document.getElementById("graph-note");
  const errors = Object.entries(graph.scrape_errors || {});
  note.textContent = graph.edges.length === 0
    ? "No traffic seen yet: rates appear after two scrapes of the proxies (every 2 s)."
    : "";
  if (errors.length) note.textContent += ` Scrape errors: ${errors.map(([p, e]) => `${p}: ${e}`).join("; ")}`;
  document.getElementById("window").textContent = `(rates over the last ${graph.window_seconds} s)`;
}

function drawServices(services) {
  const body = document.querySelector("#services tbody");
  body.replaceChildren(...services.map((s) => {
    const row = el("tr", { "data-host": s.host, class: s.host === selectedHost ? "selected" : "" },
      el("td", {}, s.host),
      el("td", {}, s.ports.map((p) => `${p.number}/${p.protocol || p.name}`).join(", ")),
      el("td", {}, s.endpoints));
    row.addEventListener("click", () => openService(s.host));
    return row;
  }));
}

function drawProxies(proxies) {
  const body = document.querySelector("#proxies tbody");
  const state = (s) => el("td", { class: `state-${s.replace(" ", "-")}` }, s);
  body.replaceChildren(...proxies.map((p) => el("tr", { "data-proxy": p.name },
    el("td", {}, p.name), el("td", {}, p.cluster), state(p.cds), state(p.lds), state(p.eds),
    state(p.rds), el("td", {}, p.version || p.user_agent))));
}

function list(items, render, empty) {
  return items.length ? el("ul", {}, ...items.map((i) => el("li", {}, ...render(i)))) : el("p", { class: "note" }, empty);
}

function resourceBlock(r) {
  return [`${r.kind} ${r.namespace}/${r.name}`, el("pre", {}, JSON.stringify(r.spec, null, 2))];
}

function drawDetails(d) {
  const box = document.getElementById("service-details");
  box.className = "";
  box.setAttribute("data-host", d.host);
  box.replaceChildren(
    el("h3", { class: "host" }, d.host),
    el("p", {}, `namespace ${d.namespace} · ports ${d.ports.map((p) => `${p.number}/${p.protocol || p.name}`).join(", ")}`),
    el("h3", {}, "Endpoints"),
    list(d.endpoints, (e) => [`${e.address} ${Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(",")}`], "none"),
    el("h3", {}, "Subsets"),
    el("div", { class: "subsets" }, list(d.subsets, (s) => [`${s.name} (${Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(",")}) · ${s.endpoints} endpoints · DestinationRule ${s.rule}`], "no subsets")),
    el("h3", {}, "Routes (VirtualServices)"),
    el("div", { class: "routes" }, list(d.routes, resourceBlock, "no VirtualService: default routing")),
    el("h3", {}, "Destination rules"),
    el("div", { class: "destination-rules" }, list(d.destination_rules, resourceBlock, "none")),
    el("h3", {}, "Policies"),
    el("div", { class: "policies" }, list(d.policies, resourceBlock, "no policy selects this service's workloads")),
    el("h3", {}, "Validation messages"),
    el("div", { class: "messages" }, list(d.messages, (m) => [el("span", { class: `msg-${m.level}` }, `${m.level}${m.code ? ` [${m.code}]` : ""} (${m.resource}) ${m.message}`)], "none")));
}

function openService(host) {
  if (location.hash !== `#service=${encodeURIComponent(host)}`) {
    location.hash = `service=${encodeURIComponent(host)}`;
  } else {
    refreshDetails();
  }
}

async function refreshDetails() {
  const match = /^#service=(.+)$/.exec(location.hash);
  selectedHost = match ? decodeURIComponent(match[1]) : null;
  if (!selectedHost) return;
  try {
    drawDetails(await getJson(`api/service?host=${encodeURIComponent(selectedHost)}`));
  } catch (e) {
    document.getElementById("service-details").textContent = String(e.message || e);
  }
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [graph, services, proxies] = await Promise.all([
      getJson("api/graph"), getJson("api/services"), getJson("api/proxies")]);
    drawGraph(graph);
    drawServices(services);
    drawProxies(proxies);
    await refreshDetails();
    status.textContent = `updated ${new Date().toLocaleTimeString()} · ${graph.nodes.length} workloads · ${graph.edges.length} edges · ${proxies.length} proxies`;
    status.setAttribute("data-updated", "true");
  } catch (e) {
    status.textContent = `lateend did not answer: ${e.message || e}`;
  }
}

window.addEventListener("hashchange", refresh);
refresh();
setInterval(refresh, POLL_MS);
