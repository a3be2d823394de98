/* Helpers shared by every dashboard page: calls to the /v1 API (with the optional bearer token),
   number formats, DOM building, messages and plot defaults. Page scripts use them through `MU`. */
"use strict";

const MU = (() => {
  const TOKEN_KEY = "mupredict.apiToken";
  const LEVEL = 0.9; // coverage of every interval the dashboard shows
  const COLORS = ["#2f5fd0", "#d0672f", "#1b7f4b", "#8e44ad", "#b42318", "#0e7c86", "#9a6700", "#5f6b7a"];
  const minWidths = Number(document.body.dataset.minWidths || 4);

  /** A non-2xx answer of the API; `message` is readable, `status` and `detail` are the server's. */
  class ApiError extends Error {
    constructor(status, detail) {
      super(describeDetail(detail) || `the server answered HTTP ${status}`);
      this.status = status;
      this.detail = detail;
    }
  }

  /** ["body", "training", "lr"] → "training.lr"; an error about the whole body gets `whole`. */
  function fieldPath(loc, whole = "request") {
    return (loc || []).filter((part) => part !== "body").join(".") || whole;
  }

  /** FastAPI's `detail`: a string, or a list of {loc, msg} validation errors. */
  function describeDetail(detail) {
    if (detail == null) return "";
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((e) => `${fieldPath(e.loc)}: ${e.msg}`).join("; ");
    return JSON.stringify(detail);
  }

  async function api(path, { method = "GET", body, query } = {}) {
    const headers = { Accept: "application/json" };
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let url = path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) if (value != null) params.set(key, value);
      url += `?${params}`;
    }
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    if (!response.ok) {
      const detail = data && typeof data === "object" ? data.detail : data;
      if (response.status === 401) {
        throw new ApiError(401, `${describeDetail(detail)} — paste the token in the "API token" field above`);
      }
      throw new ApiError(response.status, detail);
    }
    return data;
  }

  /** Every item of a paginated list endpoint, following `next_cursor`. */
  async function listAll(path, query = {}) {
    const items = [];
    let cursor = null;
    do {
      const page = await api(path, { query: { ...query, cursor } });
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child != null && child !== false) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** Replace a container's content with one message: kind is "error", "warn", "ok" or "" (neutral). */
  function notice(container, kind, ...content) {
    container.replaceChildren(el("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null }, ...content));
  }

  const UNITS = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]];

  /** 1.3e9 → "1.3B": parameter counts as researchers say them. */
  function fmtN(n) {
    for (const [scale, unit] of UNITS) if (Math.abs(n) >= scale) return `${+(n / scale).toPrecision(3)}${unit}`;
    return String(+Number(n).toPrecision(3));
  }

  /** "1e9", "1B", "350M", "1,000,000" → a positive number, or null. */
  function parseN(text) {
    const match = String(text ?? "").trim().replace(/[,_\s]/g, "").match(/^(\d+(?:\.\d*)?(?:e[+-]?\d+)?)([kmbt]?)$/i);
    if (!match) return null;
    const value = parseFloat(match[1]) * { "": 1, k: 1e3, m: 1e6, b: 1e9, t: 1e12 }[match[2].toLowerCase()];
    return Number.isFinite(value) && value > 0 ? value : null;
  }

  function fmtLoss(x, digits = 4) {
    return x == null || !Number.isFinite(x) ? "—" : x.toFixed(digits);
  }

  function fmtInterval(lower, upper) {
    return `[${fmtLoss(lower)}, ${fmtLoss(upper)}]`;
  }

  /** "3 done · 1 running · 2 queued" (+ failures when there are any). */
  function runCounts(runs) {
    const parts = [`${runs.succeeded} done`, `${runs.running} running`, `${runs.queued} queued`];
    const failed = runs.failed + runs.diverged;
    if (failed) parts.push(`${failed} failed`);
    return parts.join(" · ");
  }

  function canFit(runs) {
    return runs.succeeded_widths >= minWidths;
  }

  /** Why an architecture has no prediction yet, and what to do about it. */
  function notFittedReason(runs) {
    const waiting = runs.running + runs.queued;
    return `${runs.succeeded_widths} of ${minWidths} proxy sizes finished — ` +
      (waiting ? `${waiting} run(s) still queued or running` : "launch a sweep to fit");
  }

  function color(index) {
    return COLORS[index % COLORS.length];
  }

  /** An architecture's colour, from its id: the same on every page and in every comparison. */
  function archColor(id) {
    return COLORS[(id - 1) % COLORS.length];
  }

  /** A small square in the architecture's colour, beside its name in tables. */
  function swatch(id) {
    return el("span", { class: "swatch", style: `background:${archColor(id)}`, "aria-hidden": "true" });
  }

  /** A fit's prediction band as one filled trace: along the curve's upper edge, back along its lower. */
  function bandTrace(curve, color, extra) {
    const x = curve.map((c) => c.n_params);
    return {
      type: "scatter", mode: "lines", hoverinfo: "skip", fill: "toself",
      fillcolor: translucent(color, 0.15), line: { width: 0 },
      x: [...x, ...[...x].reverse()],
      y: [...curve.map((c) => c.upper), ...curve.map((c) => c.lower).reverse()],
      ...extra,
    };
  }

  /** The y-range that shows the measured losses and fitted means: a band far wider than the data
      (a poorly constrained fit, a far target) no longer squashes every other curve flat. */
  function dataRange(values, pad = 0.08) {
    const finite = values.filter((v) => Number.isFinite(v));
    const [lo, hi] = [Math.min(...finite), Math.max(...finite)];
    const margin = Math.max((hi - lo) * pad, 1e-3);
    return [lo - margin, hi + margin];
  }

  /** Rows as a CSV file the browser downloads (quoted where needed). */
  function downloadCsv(filename, columns, rows) {
    const cell = (v) => {
      const s = v == null ? "" : String(v);
      return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    const text = [columns.join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
    const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
  }

  /** "#2f5fd0" → "rgba(47,95,208,a)", for prediction bands. */
  function translucent(hex, alpha) {
    const v = parseInt(hex.slice(1), 16);
    return `rgba(${(v >> 16) & 255},${(v >> 8) & 255},${v & 255},${alpha})`;
  }

  /** A string from the API (an architecture's name, …) made safe to hand to Plotly, for a trace name,
      hover template or text, annotation or title. Plotly reads a pseudo-HTML in every text it draws: it
      renders <a href> as a live link, <b>, <i>, <br>, <sup>, <sub> and <span style> as formatting, so a
      name like `<a href="…">x</a>` would become a link in the legend. Plotly decodes
      numeric entities back into the plain characters, so escaping `&`, `<`, `>` makes it show the text as
      typed; `%` too, else `%{x}` in a name is filled in as a hover-template placeholder (names are
      templated too), and `$`, which would start LaTeX were MathJax ever loaded. */
  function plotText(value) {
    return String(value).replace(/[&<>%$]/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  const plotConfig = { displaylogo: false, responsive: true };

  function plotLayout(extra = {}) {
    return {
      margin: { l: 60, r: 20, t: 20, b: 50 },
      font: { family: "system-ui, sans-serif", size: 12, color: "#1f2430" },
      paper_bgcolor: "#ffffff",
      plot_bgcolor: "#ffffff",
      legend: { orientation: "h", y: -0.2 },
      hovermode: "closest",
      ...extra,
    };
  }

  /** Seconds as m:ss, or h:mm:ss past an hour. */
  function fmtDuration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const [h, m, r] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
    const pad = (x) => String(x).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`;
  }

  /** 0.009933 → "0.00993": learning rates to 3 significant digits. */
  function fmtLr(lr) {
    return lr == null ? "—" : String(+lr.toPrecision(3));
  }

  function fmtSigned(x) {
    return x == null ? "—" : `${x < 0 ? "−" : "+"}${Math.abs(x).toFixed(3)}`;
  }

  /** Show a muted line instead of a plot (forgetting the plot, so that a later one starts afresh at full
      height: .plot:has(> p.muted) collapses the box). */
  function plotMessage(div, text) {
    Plotly.purge(div);
    div.replaceChildren(el("p", { class: "muted" }, text));
  }

  /** Draw a Plotly figure into a div that may hold a plotMessage. */
  async function plot(div, data, layout) {
    if (div.querySelector(":scope > p.muted")) div.replaceChildren();
    div.hidden = false;
    await Plotly.react(div, data, plotLayout(layout), plotConfig);
  }

  /** Pages set body[data-ready] once their first load finished, so tests (and people) know. */
  function ready() {
    document.body.dataset.ready = "true";
  }

  // The token field in the top bar: kept in this browser's localStorage, sent on every call.
  const tokenInput = document.getElementById("api-token");
  if (tokenInput) {
    tokenInput.value = localStorage.getItem(TOKEN_KEY) || "";
    tokenInput.addEventListener("input", () => {
      const token = tokenInput.value.trim();
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    });
  }

  /** 19073.5 → "19.1k×": how far past the largest proxy a prediction reaches. */
  function fmtFactor(factor) {
    return `${factor < 10 ? factor.toFixed(1) : fmtN(factor)}×`;
  }

  /** The extrapolation in every unit a plan is made in: "30× N · 32× params · 5.5× width · 31× FLOPs". */
  function fmtExtrapolation(e) {
    const parts = [[e.n_params, "N"], [e.total_params, "params"], [e.width, "width"], [e.flops, "FLOPs"]];
    return parts.filter(([v]) => v != null).map(([v, unit]) => `${fmtFactor(v)} ${unit}`).join(" · ");
  }

  return {
    fmtFactor, fmtExtrapolation, LEVEL, ApiError, api, listAll, el, notice, fmtN, parseN, fmtLoss, fmtInterval, runCounts, canFit,
    notFittedReason, color, archColor, swatch, bandTrace, dataRange, downloadCsv, translucent, plotConfig, plotLayout, ready, describeDetail, fieldPath, minWidths,
    fmtLr, fmtDuration, fmtSigned, plot, plotMessage, plotText,
  };
})();
