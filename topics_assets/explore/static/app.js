// The Topics explorer: plain JavaScript, SVG and canvas; no library, nothing loaded from elsewhere.
// Data comes from the app's /api/ endpoints, or, in a report file, from the answers inlined in it
// (REPORT below, keyed like the requests).
"use strict";

const state = { maps: [], project: null, facet: null, generation: null, start: "", end: "", overlay: "topic" };
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#3b6fb6", "#d37295", "#8cd17d", "#b6992d", "#499894", "#e9a23b", "#86bcb6", "#a0cbe8",
  "#f1ce63", "#d4a6c8", "#79706e"];
const NO_MATCH = "no_match";
const NO_MATCH_COLOUR = "#c3c8d2";
const SVGNS = "http://www.w3.org/2000/svg";

// ----- small helpers ------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "style") el.style.cssText = v; // CSSOM, which the page's CSP allows (a style attribute it refuses)
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");
const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en"));

function query(params) {
  const q = new URLSearchParams();
  for (const k of Object.keys(params).sort()) if (params[k] !== null && params[k] !== undefined && params[k] !== "") q.set(k, params[k]);
  return q.toString();
}

// A report file (`topics report`) carries its answers in <script id="topics-report">: JSON, gzipped and
// base64-encoded (data-encoding="gzip+base64"), so 50,000 points fit in a few MB. Null in the app.
const REPORT = (() => {
  const el = document.getElementById("topics-report");
  if (!el) return null;
  if (el.dataset.encoding !== "gzip+base64") return Promise.resolve(JSON.parse(el.textContent));
  const bin = atob(el.textContent.trim());
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const text = new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
  return text.then(JSON.parse);
})();

// How a report names a request: the path and its non-empty params, sorted, as JSON (report.py writes the same).
function reportKey(path, params) {
  const items = Object.keys(params).sort().filter((k) => params[k] !== null && params[k] !== undefined && params[k] !== "")
    .map((k) => [k, String(params[k])]);
  return JSON.stringify([path, items]);
}

async function api(path, params) {
  if (REPORT) {
    const report = await REPORT;
    const hit = report.answers[reportKey(path, params || {})];
    if (hit === undefined) {
      if (path === "trace") throw new Error(`This report holds the pages of the ${report.info.traces_per_topic} closest traces per topic only; ` +
        "open this trace in `topics explore`.");
      throw new Error("not in this report (it was written for other filters): " + path + " " + query(params || {}));
    }
    return hit;
  }
  const key = path + "?" + query(params || {});
  const res = await fetch("api/" + key);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function scope(extra) {
  return Object.assign({ project: state.project, facet: state.facet, generation: state.generation,
    start: state.start, end: state.end }, extra || {});
}

function link(path, extra) {
  return "#" + path + "?" + query(Object.assign({ project: state.project, facet: state.facet,
    generation: state.generation, start: state.start, end: state.end }, extra || {}));
}

function colourOf(i, topics) {
  return topics[i] === NO_MATCH ? NO_MATCH_COLOUR : PALETTE[i % PALETTE.length];
}

// ----- filters ------------------------------------------------------------------------------
function currentMap() {
  return state.maps.find((m) => m.project === state.project && m.facet === state.facet);
}

function fillSelect(sel, values, current, label) {
  sel.replaceChildren(...values.map((v) => h("option", { value: v, selected: String(v) === String(current) }, label ? label(v) : v)));
}

function syncFilters() {
  const projects = [...new Set(state.maps.map((m) => m.project))];
  if (!projects.includes(state.project)) state.project = projects[0] || null;
  const facets = state.maps.filter((m) => m.project === state.project).map((m) => m.facet);
  if (!facets.includes(state.facet)) state.facet = facets[0] || null;
  const map = currentMap();
  const gens = map ? map.generations.map((g) => g.generation) : [];
  if (!gens.includes(Number(state.generation))) state.generation = gens[0] || null;
  state.generation = state.generation === null ? null : Number(state.generation);
  fillSelect(document.getElementById("f-project"), projects, state.project);
  fillSelect(document.getElementById("f-facet"), facets, state.facet);
  fillSelect(document.getElementById("f-generation"), gens, state.generation, (g) => {
    const info = map.generations.find((x) => x.generation === g);
    return `${g} (${info.n_topics} topics, ${(info.created_at || "").slice(0, 10)})`;
  });
  document.getElementById("f-start").value = state.start || "";
  document.getElementById("f-end").value = state.end || "";
}

function onFilter(name) {
  return (ev) => {
    state[name] = ev.target.value;
    if (name === "project") { state.facet = null; state.generation = null; }
    if (name === "facet") state.generation = null;
    syncFilters();
    location.hash = link("/");
  };
}

// ----- routing ------------------------------------------------------------------------------
async function render() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  const params = new URLSearchParams(qs || "");
  for (const k of ["project", "facet", "generation", "start", "end", "overlay"]) {
    if (params.has(k)) state[k] = params.get(k);
  }
  syncFilters();
  const view = document.getElementById("view");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (!state.maps.length) {
      view.replaceChildren(h("div", { class: "panel" }, h("h1", {}, "No topic maps yet"),
        h("p", {}, "Run the pipeline first (for example `topics demo`, or `topics run` once the gates are met).")));
    } else if (parts[0] === "topic") await topicView(view, parts[1]);
    else if (parts[0] === "trace") await traceView(view, params.get("trace_project") || state.project, parts[1]);
    else await overviewView(view);
  } catch (e) {
    view.replaceChildren(h("div", { class: "panel" }, h("h1", {}, "Could not load"), h("p", { class: "bad" }, e.message)));
  }
}

// ----- overview: topics list, treemap, map ------------------------------------------------------
function sparkline(values, w = 90, hgt = 22) {
  const svg = h("svg:svg", { width: w, height: hgt, class: "spark" });
  if (!values.length) return svg;
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? w / (values.length - 1) : 0;
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(hgt - 2 - (v / max) * (hgt - 4)).toFixed(1)}`);
  svg.append(h("svg:polyline", { points: pts.join(" "), fill: "none", stroke: "#4e79a7", "stroke-width": 1.5 }));
  return svg;
}

async function overviewView(view) {
  // The map's points are asked for at once, beside the overview, not after it: the larger answer.
  // Their facet texts (most of the bytes) only after the map is drawn: the tooltips need them.
  const pointsAnswer = api("points", scope({ text: 0 }));
  pointsAnswer.catch(() => {}); // an error shows once, from the await below
  const ov = await api("overview", scope());
  const order = ov.topics.map((t) => t.topic_id);
  const colour = (id) => colourOf(order.indexOf(id), order);
  const rows = ov.topics.map((t) => h("tr", { class: "clickable", "data-topic": t.topic_id,
      on: { click: () => { location.hash = link("/topic/" + encodeURIComponent(t.topic_id)); } } },
    h("td", {}, h("span", { class: "swatch", style: `background:${colour(t.topic_id)}` }),
      h("a", { href: link("/topic/" + encodeURIComponent(t.topic_id)) }, t.name || t.topic_id),
      (t.flags || []).map((f) => h("span", { class: "flag flag-" + f, title: `trend alert on ${ov.flags_day}` }, f)),
      h("div", { class: "muted" }, t.topic_id + (t.parent_name ? ` · in ${t.parent_name}` : ""))),
    h("td", { class: "num" }, num(t.n)), h("td", { class: "num" }, pct(t.share)),
    h("td", {}, sparkline(t.daily)),
    h("td", { class: "num" + (t.failure_rate > 0.25 ? " bad" : "") }, pct(t.failure_rate))));
  rows.push(h("tr", { class: "clickable", "data-topic": NO_MATCH,
      on: { click: () => { location.hash = link("/topic/" + NO_MATCH); } } },
    h("td", {}, h("span", { class: "swatch", style: `background:${NO_MATCH_COLOUR}` }), h("span", { class: "muted" }, "no_match")),
    h("td", { class: "num" }, num(ov.no_match.n)), h("td", { class: "num" }, pct(ov.no_match.share)),
    h("td", {}, sparkline(ov.no_match.daily)), h("td", { class: "num" }, ov.no_match.n ? pct(ov.no_match.failed / ov.no_match.n) : "–")));
  const table = h("table", { id: "topics-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "topic"), h("th", { class: "num" }, "traces"), h("th", { class: "num" }, "share"),
      h("th", {}, `daily (${ov.days[0] || ""} – ${ov.days[ov.days.length - 1] || ""})`), h("th", { class: "num" }, "failure rate"))),
    h("tbody", {}, rows));
  const treemapSvg = h("svg:svg", { id: "treemap", width: "100%", height: 360, viewBox: "0 0 600 360", preserveAspectRatio: "none" });
  drawTreemap(treemapSvg, ov.topics, colour, 600, 360);
  const overlay = h("select", { id: "overlay", on: { change: (e) => { state.overlay = e.target.value; drawMap(); } } },
    ...[["topic", "colour by topic"], ["failure", "overlay: failure"], ["day", "overlay: day"]].map(([v, l]) =>
      h("option", { value: v, selected: state.overlay === v }, l)));
  const canvas = h("canvas", { id: "map" });
  view.replaceChildren(
    h("h1", {}, `${ov.project} / ${ov.facet}`),
    h("p", { class: "muted" }, `generation ${ov.generation}: ${num(ov.total)} traces labelled, ${ov.topics.length} topics, no_match ${pct(ov.no_match.share)}`),
    h("div", { class: "grid" },
      h("div", { class: "panel topics-panel" }, h("h2", {}, "Topics"), table),
      h("div", { class: "panel" }, h("h2", {}, "Treemap (sized by traces)"), treemapSvg)),
    h("div", { class: "panel" }, h("div", { class: "toolbar" }, h("h2", {}, "Map of the sampled facets"), overlay,
      h("span", { class: "muted", id: "map-count" }, "")), h("div", { class: "map-wrap" }, canvas), h("div", { class: "legend", id: "legend" })));
  mapData = null;
  const d = await pointsAnswer;
  mapData = d;
  drawMap();
  let texts;
  try { texts = await api("point_texts", scope()); } catch (e) { texts = { text: d.x.map(() => "(text not available: " + e.message + ")") }; }
  if (mapData === d && texts.text.length === d.x.length) {
    d.text = texts.text;
    const canvas = document.getElementById("map");
    if (canvas) canvas.dataset.texts = "1";
  }
}

// Squarified treemap (Bruls et al.): rows laid along the shorter side keep rectangles near-square.
function squarify(items, x, y, w, hgt) {
  const out = [];
  const total = items.reduce((s, it) => s + it.value, 0);
  if (!total) return out;
  const scale = (w * hgt) / total;
  let rest = items.map((it) => ({ ...it, area: it.value * scale }));
  while (rest.length) {
    const short = Math.min(w, hgt);
    let row = [rest[0]];
    let best = worst(row, short);
    let i = 1;
    while (i < rest.length) {
      const next = worst(row.concat([rest[i]]), short);
      if (next > best) break;
      row.push(rest[i]); best = next; i++;
    }
    const area = row.reduce((s, r) => s + r.area, 0);
    const thick = area / short;
    let off = 0;
    for (const r of row) {
      const len = r.area / thick;
      if (w >= hgt) out.push({ ...r, x, y: y + off, w: thick, h: len });
      else out.push({ ...r, x: x + off, y, w: len, h: thick });
      off += len;
    }
    if (w >= hgt) { x += thick; w -= thick; } else { y += thick; hgt -= thick; }
    rest = rest.slice(i);
  }
  return out;
}
function worst(row, short) {
  const s = row.reduce((a, r) => a + r.area, 0);
  const mx = Math.max(...row.map((r) => r.area)), mn = Math.min(...row.map((r) => r.area));
  return Math.max((short * short * mx) / (s * s), (s * s) / (short * short * mn));
}

function drawTreemap(svg, topics, colour, w, hgt) {
  const items = topics.filter((t) => t.n > 0).map((t) => ({ value: t.n, t }));
  for (const r of squarify(items, 0, 0, w, hgt)) {
    const g = h("svg:g", { "data-topic": r.t.topic_id, on: { click: () => { location.hash = link("/topic/" + encodeURIComponent(r.t.topic_id)); } } },
      h("svg:rect", { x: r.x, y: r.y, width: Math.max(0, r.w), height: Math.max(0, r.h), fill: colour(r.t.topic_id) },
        h("svg:title", {}, `${r.t.name}: ${r.t.n} traces (${pct(r.t.share)}), failure ${pct(r.t.failure_rate)}`)));
    if (r.w > 60 && r.h > 18) {
      g.append(h("svg:text", { x: r.x + 4, y: r.y + 14, fill: "#fff" }, (r.t.name || r.t.topic_id).slice(0, Math.floor(r.w / 6.5))));
      if (r.h > 32) g.append(h("svg:text", { x: r.x + 4, y: r.y + 28, fill: "#fff" }, pct(r.t.share)));
    }
    svg.append(g);
  }
}

// ----- the 2-D map (canvas) -------------------------------------------------------------------
let mapData = null;
let mapIndex = null;

function pointColours(d) {
  const n = d.x.length;
  const out = new Array(n);
  if (state.overlay === "failure") for (let i = 0; i < n; i++) out[i] = d.failed[i] ? "#d62728" : "#9fb3c8";
  else if (state.overlay === "day") {
    const last = Math.max(1, d.days.length - 1);
    for (let i = 0; i < n; i++) {
      const t = d.day[i] < 0 ? 0 : d.day[i] / last;
      out[i] = `rgb(${Math.round(40 + 200 * t)},${Math.round(90 + 60 * (1 - t))},${Math.round(220 - 180 * t)})`;
    }
  } else for (let i = 0; i < n; i++) out[i] = colourOf(d.topic[i], d.topics);
  return out;
}

function hexToRgb(c) {
  if (c.startsWith("rgb")) return c.match(/\d+/g).map(Number);
  const v = parseInt(c.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

function drawMap() {
  const canvas = document.getElementById("map");
  if (!canvas || !mapData) return;
  const d = mapData;
  const w = canvas.clientWidth || 800, hgt = canvas.clientHeight || 520;
  canvas.width = w; canvas.height = hgt;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, hgt);
  const px = img.data;
  for (let i = 0; i < px.length; i += 4) { px[i] = 251; px[i + 1] = 252; px[i + 2] = 253; px[i + 3] = 255; }
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < d.x.length; i++) {
    if (d.x[i] < minX) minX = d.x[i]; if (d.x[i] > maxX) maxX = d.x[i];
    if (d.y[i] < minY) minY = d.y[i]; if (d.y[i] > maxY) maxY = d.y[i];
  }
  const pad = 12;
  const sx = (w - 2 * pad) / Math.max(1e-9, maxX - minX), sy = (hgt - 2 * pad) / Math.max(1e-9, maxY - minY);
  const s = Math.min(sx, sy);
  const ox = pad + (w - 2 * pad - s * (maxX - minX)) / 2, oy = pad + (hgt - 2 * pad - s * (maxY - minY)) / 2;
  const colours = pointColours(d);
  const cache = new Map();
  const cell = 8, cols = Math.ceil(w / cell) + 1;
  const grid = new Map();
  const sxArr = new Float32Array(d.x.length), syArr = new Float32Array(d.x.length);
  // no_match first, so topics draw over it.
  const order = [...d.x.keys()].sort((a, b) => (d.topics[d.topic[a]] === NO_MATCH ? 0 : 1) - (d.topics[d.topic[b]] === NO_MATCH ? 0 : 1));
  let drawn = 0;
  for (const i of order) {
    const X = ox + (d.x[i] - minX) * s, Y = hgt - (oy + (d.y[i] - minY) * s);
    sxArr[i] = X; syArr[i] = Y;
    let rgb = cache.get(colours[i]);
    if (!rgb) { rgb = hexToRgb(colours[i]); cache.set(colours[i], rgb); }
    const x0 = Math.round(X) - 1, y0 = Math.round(Y) - 1;
    for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < 3; dx++) {
      const xx = x0 + dx, yy = y0 + dy;
      if (xx < 0 || yy < 0 || xx >= w || yy >= hgt) continue;
      const k = (yy * w + xx) * 4;
      px[k] = rgb[0]; px[k + 1] = rgb[1]; px[k + 2] = rgb[2]; px[k + 3] = 255;
    }
    const key = Math.floor(Y / cell) * cols + Math.floor(X / cell);
    if (!grid.has(key)) grid.set(key, []);
    grid.get(key).push(i);
    drawn++;
  }
  ctx.putImageData(img, 0, 0);
  mapIndex = { grid, cell, cols, sx: sxArr, sy: syArr };
  canvas.dataset.drawn = String(drawn);
  // When the first map appeared (benchmarks/bench_explore.py reads it): once per page load.
  if (!performance.getEntriesByName("topics:map-drawn").length) performance.mark("topics:map-drawn");
  document.getElementById("map-count").textContent = `${num(drawn)} points`;
  drawLegend(d, colours);
  canvas.onmousemove = (ev) => hover(ev, canvas);
  canvas.onmouseleave = () => { document.getElementById("tooltip").hidden = true; };
  canvas.onclick = (ev) => {
    const i = nearestPoint(ev, canvas);
    if (i >= 0) location.hash = link("/trace/" + encodeURIComponent(d.trace_id[i]));
  };
}

function drawLegend(d, colours) {
  const legend = document.getElementById("legend");
  if (state.overlay === "failure") {
    legend.replaceChildren(h("span", {}, h("span", { class: "swatch", style: "background:#d62728" }), "failed (error or abnormal end)"),
      h("span", {}, h("span", { class: "swatch", style: "background:#9fb3c8" }), "ok"));
  } else if (state.overlay === "day") {
    legend.replaceChildren(h("span", {}, `${d.days[0] || ""} (blue) → ${d.days[d.days.length - 1] || ""} (orange)`));
  } else {
    legend.replaceChildren(...d.topics.slice(0, 30).map((t, i) => h("span", {},
      h("span", { class: "swatch", style: `background:${colourOf(i, d.topics)}` }), d.names[i])));
  }
}

function nearestPoint(ev, canvas) {
  if (!mapIndex) return -1;
  const r = canvas.getBoundingClientRect();
  const X = ev.clientX - r.left, Y = ev.clientY - r.top;
  const { grid, cell, cols, sx, sy } = mapIndex;
  const cx = Math.floor(X / cell), cy = Math.floor(Y / cell);
  let best = -1, bestD = 36;
  for (let gy = cy - 1; gy <= cy + 1; gy++) for (let gx = cx - 1; gx <= cx + 1; gx++) {
    for (const i of grid.get(gy * cols + gx) || []) {
      const dd = (sx[i] - X) ** 2 + (sy[i] - Y) ** 2;
      if (dd < bestD) { bestD = dd; best = i; }
    }
  }
  return best;
}

function hover(ev, canvas) {
  const tip = document.getElementById("tooltip");
  const i = nearestPoint(ev, canvas);
  if (i < 0) { tip.hidden = true; return; }
  const d = mapData;
  tip.replaceChildren(h("div", {}, d.text ? d.text[i] : "…"), h("div", { class: "muted" },
    `${d.names[d.topic[i]]} · ${d.days[d.day[i]] || ""}${d.failed[i] ? " · failed" : ""}`));
  tip.style.left = ev.clientX + 14 + "px"; tip.style.top = ev.clientY + 14 + "px";
  tip.hidden = false;
}

// ----- a topic ------------------------------------------------------------------------------------
function bars(values, days, w = 600, hgt = 120) {
  const svg = h("svg:svg", { width: "100%", height: hgt, viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: "none", id: "trend" });
  const max = Math.max(1, ...values);
  const bw = w / Math.max(1, values.length);
  values.forEach((v, i) => svg.append(h("svg:rect", { x: i * bw + 1, y: hgt - (v / max) * (hgt - 14), width: Math.max(1, bw - 2),
    height: (v / max) * (hgt - 14), fill: "#4e79a7" }, h("svg:title", {}, `${days[i]}: ${v}`))));
  return svg;
}

async function topicView(view, topicId) {
  const d = await api("topic", scope({ topic_id: topicId }));
  const t = d.topic;
  const traces = d.traces.map((r) => h("tr", { class: "clickable", "data-trace": r.trace_id,
      on: { click: () => { location.hash = link("/trace/" + encodeURIComponent(r.trace_id)); } } },
    h("td", {}, h("a", { href: link("/trace/" + encodeURIComponent(r.trace_id)) }, r.trace_id)),
    h("td", {}, r.day), h("td", { class: "num" }, r.distance === null ? "–" : r.distance.toFixed(3)),
    h("td", {}, r.text || ""),
    h("td", { class: r.status === "error" || r.abnormal_end ? "bad" : "ok" }, r.status || "–", r.abnormal_end ? " (abnormal end)" : "")));
  view.replaceChildren(
    h("p", {}, h("a", { href: link("/") }, `← ${d.project} / ${d.facet}`)),
    h("h1", { id: "topic-name" }, t.name || t.topic_id),
    h("p", { class: "muted" }, `${t.topic_id} · generation ${d.generation} · ${num(t.n)} traces (${pct(t.share)}) · failure rate ${pct(t.failure_rate)}`),
    h("div", { class: "grid" },
      h("div", { class: "panel" }, h("h2", {}, "Description"), h("p", {}, t.description || "–"),
        h("h2", {}, "Keywords"), h("div", { class: "chips" }, (t.keywords || []).map((k) => h("span", {}, k))),
        h("h2", {}, "Examples"), h("ul", {}, (t.examples || []).map((e) => h("li", {}, e)))),
      h("div", { class: "panel" }, h("h2", {}, "Daily trend"), bars(t.daily || [], d.days),
        h("h2", {}, "Parent"),
        d.parent ? h("div", { id: "parent" },
          h("p", {}, h("strong", { id: "parent-name" }, d.parent.name || d.parent.parent_id),
            h("span", { class: "muted" }, ` ${d.parent.parent_id}`)),
          h("p", { class: "muted" }, d.parent.description || ""),
          h("ul", { id: "children" }, d.parent.children.map((c) => h("li", { "data-topic": c.topic_id },
            c.topic_id === t.topic_id ? h("strong", {}, c.name) : h("a", { href: link("/topic/" + encodeURIComponent(c.topic_id)) }, c.name),
            h("span", { class: "muted" }, ` ${c.topic_id} · ${num(c.size)}`)))))
          : h("p", { id: "parent", class: "muted" }, "none (this generation has no parents over its topics)"),
        h("h2", {}, "Nearest topics (centroid cosine)"),
        h("ul", { id: "nearest" }, d.nearest.map((n) => h("li", {}, h("a", { href: link("/topic/" + encodeURIComponent(n.topic_id)) }, n.name),
          h("span", { class: "muted" }, ` ${n.similarity.toFixed(3)}`)))))),
    h("div", { class: "panel" }, h("h2", {}, `Traces (${d.traces.length} shown, closest first)`),
      h("table", { id: "traces-table" }, h("thead", {}, h("tr", {}, h("th", {}, "trace"), h("th", {}, "day"), h("th", { class: "num" }, "distance"),
        h("th", {}, d.facet), h("th", {}, "outcome"))), h("tbody", {}, traces))));
}

// ----- a trace --------------------------------------------------------------------------------------
function kv(obj) {
  const dl = h("dl", { class: "kv" });
  for (const [k, v] of Object.entries(obj || {})) {
    if (v === null || v === undefined || (Array.isArray(v) && !v.length)) continue;
    dl.append(h("dt", {}, k), h("dd", {}, Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : String(v)));
  }
  return dl;
}

async function traceView(view, project, traceId) {
  const d = await api("trace", { project, trace_id: traceId });
  const tr = d.trace || {};
  const o = d.outcome;
  view.replaceChildren(
    h("p", {}, h("a", { href: link("/") }, `← ${state.project} / ${state.facet}`)),
    h("h1", { id: "trace-id" }, d.trace_id),
    h("p", { class: "muted" }, `${d.project} · ${tr.day || ""} · ${tr.format || ""} · ${tr.n_spans ?? "?"} spans, ${tr.n_messages ?? "?"} messages · ${num(tr.tokens_after)} tokens seen${tr.truncated ? " (capped)" : ""}`),
    h("div", { class: "grid" },
      h("div", { class: "panel" }, h("h2", {}, "Facets"), h("table", { id: "facets-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "facet"), h("th", {}, "text"), h("th", {}, "topic"))),
        h("tbody", {}, d.facets.map((f) => {
          const lab = d.labels.find((l) => l.facet === f.facet);
          return h("tr", {}, h("td", {}, f.facet), h("td", {}, f.text || "", h("div", { class: "muted" }, `${f.engine} · ${f.model}`)),
            h("td", {}, lab ? (lab.topic_id === NO_MATCH ? "no_match" :
              h("a", { href: link("/topic/" + encodeURIComponent(lab.topic_id), { facet: lab.facet, generation: lab.generation }) }, lab.topic_name || lab.topic_id)) : "–"));
        })))),
      h("div", { class: "panel", id: "outcome" }, h("h2", {}, "Outcome signals"),
        o ? h("div", {}, h("p", { class: o.status === "error" || o.abnormal_end ? "bad" : "ok" }, o.status + (o.abnormal_end ? " · abnormal end" : "")), kv(o))
          : h("p", { class: "muted" }, "none recorded"))),
    h("div", { class: "panel" }, h("h2", {}, "What the facet model saw (preprocessed, redacted)"),
      h("pre", { class: "text", id: "trace-text" }, tr.content || "(no preprocessed text)")));
}

// ----- start ----------------------------------------------------------------------------------------
function reportNotice(i) {
  for (const k of ["start", "end"]) {
    state[k] = i[k] || "";
    document.getElementById("f-" + k).disabled = true; // a report holds the counts of the range it was written for
  }
  document.getElementById("status").textContent = `report written ${(i.written_at || "").slice(0, 16).replace("T", " ")} UTC`;
  const note = h("p", { class: "report-note", id: "report-note" },
    `A report of ${i.n_maps} map generation(s)${i.start || i.end ? `, traces from ${i.start || "the start"} to ${i.end || "the end"}` : ""}. ` +
    `It lists the ${i.traces_per_topic} closest traces per topic (with their pages), map tooltips show ` +
    `the first ${i.point_text_chars} characters of a facet, trace pages the first ${i.trace_text_chars} of its text. ` +
    "`topics explore` shows everything.");
  document.querySelector("header").after(note);
}

async function start() {
  for (const k of ["project", "facet", "generation", "start", "end"]) {
    document.getElementById("f-" + k).addEventListener("change", onFilter(k));
  }
  if (REPORT) reportNotice((await REPORT).info);
  const res = await api("maps", {});
  state.maps = res.maps;
  window.addEventListener("hashchange", render);
  window.addEventListener("resize", () => drawMap());
  await render();
  document.body.dataset.ready = "1";
}
start().catch((e) => { document.getElementById("view").textContent = "Could not start: " + e.message; });
