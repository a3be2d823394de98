/* The LR tuning and the coordinate check on the architecture page: the tuning's status and transfer
   verdicts, the μTransfer figure (loss against LR per width, η* with its interval), the η* table, and
   the coordinate-check figures. Used by architecture.js through `MUTuning`. */
"use strict";

const MUTuning = (() => {
  const { el } = MU;
  let shown = null; // the tuning drawn last, redrawn when the loss scale is switched

  function tuningStatus(arch, tuning) {
    const box = document.getElementById("tuning-status");
    const specLr = `the spec's lr = ${MU.fmtLr(arch.spec.training.lr)}`;
    const sweepLr = document.getElementById("sweep-lr");
    document.getElementById("tuning-id").textContent = tuning ? `#${tuning.id}` : "";
    if (!tuning) {
      sweepLr.textContent = `Trains at ${specLr}: the LR was never tuned.`;
      MU.notice(box, "warn", `The learning rate was never tuned: sweeps train at ${specLr}, and predictions ` +
        "will warn that the ladder's LR is untuned. Tune it with the form on the right.");
      return;
    }
    const level = `${Math.round(tuning.level * 100)} %`;
    const base = `width ${tuning.params.base_width}, depth ${tuning.params.base_depth}`;
    document.getElementById("lr-stars-level").textContent = `${level} interval`;
    if (tuning.status === "succeeded") {
      const rule = tuning.horizon_rule;
      sweepLr.replaceChildren("Trains at ", el("strong", {}, `η* = ${MU.fmtLr(tuning.ladder_lr)}`),
        rule && rule.applied
          ? ` at ${rule.base_steps} steps, moved along η* ∝ steps^${MU.fmtSigned(rule.exponent)} for other ` +
            "horizons (a token-horizon sweep: for the log-midpoint of its budgets)."
          : ", the tuned LR: new sweeps default to it.");
      MU.notice(box, "ok", el("strong", {}, `η* = ${MU.fmtLr(tuning.lr_star)}`),
        ` [${MU.fmtLr(tuning.lower)}, ${MU.fmtLr(tuning.upper)}] (${level}) at ${base}; new sweeps train at ` +
        `${MU.fmtLr(tuning.ladder_lr)}.`);
      return;
    }
    sweepLr.textContent = `Trains at ${specLr} (or an earlier tuning's η*) until tuning #${tuning.id} succeeds.`;
    if (tuning.status === "failed") {
      MU.notice(box, "warn", `LR tuning #${tuning.id} failed: ${tuning.error || "no reason given"}.`);
      return;
    }
    const { runs } = tuning;
    const total = runs.queued + runs.running + runs.succeeded + runs.failed + runs.diverged + runs.cancelled;
    const share = total ? (total - runs.queued - runs.running) / total : 0;
    MU.notice(box, "", `LR tuning ${tuning.status} at ${base}: `,
      el("span", { class: "progress" }, el("span", { style: `width:${(share * 100).toFixed(1)}%` })),
      ` ${MU.runCounts(runs)} (the grid grows until each minimum is bracketed).`);
  }

  /** The transfer check along each axis: verdict, slope of log2 η* per doubling with its interval, why. */
  function transferFacts(tuning) {
    if (!tuning) return [];
    const level = `${Math.round(tuning.level * 100)} %`;
    return Object.values(tuning.transfer).map((t) => {
      const ratio = t.curvature_ratio;
      const last = t.sizes[t.sizes.length - 1];
      const unit = t.axis === "horizon" ? " steps" : "";
      return el("div", { class: "verdict", "data-axis": t.axis },
        el("p", {},
          el("span", { class: `badge ${t.verdict === "transfers" ? "ok" : "warn"}` }, t.verdict),
          ` across ${t.axis} ${t.sizes.join(", ")}${unit}: log₂ η* moves ${MU.fmtSigned(t.slope)} per doubling, ` +
          `${level} interval [${MU.fmtSigned(t.lower)}, ${MU.fmtSigned(t.upper)}]`,
          ratio == null ? "." : `; the basin is ×${ratio.toPrecision(3)} as sharp at ${t.axis} ${last} as at ` +
            `${t.sizes[0]}${ratio > 1 ? " (sharpening)" : ""}.`),
        el("p", { class: "muted small-print" }, t.reason));
    });
  }

  /** The μTransfer figure: loss against LR per shape, ± seed sd, η* with its interval, × where all diverged.
      `relative` draws each curve's loss above its own best, so basins far apart in loss can be compared. */
  async function drawLrCurves(div, shapes, axis, relative) {
    const curves = shapes.map((c) => {
      const shown = c.curve.filter((p) => p.loss_mean != null);
      const offset = relative && shown.length ? Math.min(...shown.map((p) => p.loss_mean)) : 0;
      return { ...c, shown: shown.map((p) => ({ ...p, loss: p.loss_mean - offset })) };
    });
    const measured = curves.flatMap((c) => c.shown);
    if (!measured.length) {
      MU.plotMessage(div, "No tuning run has finished yet.");
      return 0;
    }
    const low = Math.min(...measured.map((p) => p.loss - (p.loss_sd || 0)));
    const high = Math.max(...measured.map((p) => p.loss + (p.loss_sd || 0)));
    const pad = 0.08 * (high - low) || 0.01 * high;
    const top = high + 2 * pad; // where a learning rate at which every seed diverged is marked
    let lost = 0;
    const data = [];
    const lines = [];
    curves.forEach((c, i) => {
      const color = MU.color(i);
      const name = `${axis} ${c[axis]}`;
      const { shown } = c;
      const diverged = c.curve.filter((p) => p.loss_mean == null && (p.diverged || p.failed));
      lost += diverged.length;
      data.push({
        name, legendgroup: name, type: "scatter", mode: "lines+markers",
        x: shown.map((p) => p.lr), y: shown.map((p) => p.loss),
        error_y: { type: "data", array: shown.map((p) => p.loss_sd || 0), visible: true, thickness: 1, width: 3 },
        text: shown.map((p) => `${p.n} seed(s)${p.diverged + p.failed ? `, ${p.diverged + p.failed} lost` : ""}`),
        marker: { color, size: 7 }, line: { color, width: 1.5 },
        hovertemplate: `${name}<br>lr %{x:.3g}<br>loss %{y:.4f}<br>%{text}<extra></extra>`,
      });
      if (diverged.length) {
        data.push({
          name: `${name} · diverged`, legendgroup: name, showlegend: false, type: "scatter", mode: "markers",
          x: diverged.map((p) => p.lr), y: diverged.map(() => top),
          marker: { color, size: 10, symbol: "x-thin-open", line: { width: 2, color } },
          hovertemplate: `${name}<br>lr %{x:.3g}: every seed diverged or failed<extra></extra>`,
        });
      }
      if (c.lr_star == null) return;
      const best = Math.min(...shown.map((p) => p.loss));
      const interval = c.lower != null && c.upper != null;
      data.push({
        name: `${name} · η*`, legendgroup: name, showlegend: false, type: "scatter", mode: "markers",
        x: [c.lr_star], y: [best],
        error_x: interval
          ? { type: "data", symmetric: false, array: [c.upper - c.lr_star], arrayminus: [c.lr_star - c.lower],
              color, thickness: 2, width: 6 }
          : undefined,
        marker: { color, size: 13, symbol: "star", line: { width: 1, color: "#ffffff" } },
        hovertemplate: `${name}<br>η* ${MU.fmtLr(c.lr_star)}` +
          (interval ? ` [${MU.fmtLr(c.lower)}, ${MU.fmtLr(c.upper)}]` : "") + "<extra></extra>",
      });
      lines.push({ type: "line", xref: "x", yref: "paper", x0: c.lr_star, x1: c.lr_star, y0: 0, y1: 1,
        line: { color, width: 1, dash: "dash" } });
    });
    await MU.plot(div, data, {
      xaxis: { type: "log", title: { text: "learning rate" } },
      yaxis: { title: { text: relative ? "loss above the curve's best" : "mean validation loss" },
        range: [low - pad, top + pad] },
      shapes: lines, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      margin: { l: 60, r: 20, t: 30, b: 50 },
    });
    return lost;
  }

  function lrStarRow(c) {
    const state = c.state === "extend" ? "extending the grid"
      : c.state === "failed" ? `failed: ${c.reason || ""}` : `bracketed (${c.method})`;
    return el("tr", { "data-width": c.width, "data-depth": c.depth, "data-steps": c.steps },
      el("td", { class: "num" }, c.width), el("td", { class: "num" }, c.depth), el("td", { class: "num" }, c.steps),
      el("td", { class: "num" }, MU.fmtLr(c.lr_star)),
      el("td", { class: "num" }, c.lower == null ? "—" : `[${MU.fmtLr(c.lower)}, ${MU.fmtLr(c.upper)}]`),
      el("td", { class: "num" }, c.curvature == null ? "—" : c.curvature.toPrecision(3)),
      el("td", { title: c.note || null }, state, c.extensions ? ` · ${c.extensions} extension(s)` : ""),
    );
  }

  async function drawLrFigures(tuning) {
    const relative = document.getElementById("lr-relative").checked;
    let lost = await drawLrCurves(document.getElementById("lr-width-plot"), tuning.per_width, "width", relative);
    const depthPlot = document.getElementById("lr-depth-plot");
    if (tuning.per_depth.length > 1) lost += await drawLrCurves(depthPlot, tuning.per_depth, "depth", relative);
    else depthPlot.hidden = true;
    const horizonPlot = document.getElementById("lr-horizon-plot");
    horizonPlot.hidden = tuning.per_horizon.length < 2;
    if (!horizonPlot.hidden) lost += await drawLrCurves(horizonPlot, tuning.per_horizon, "steps", relative);
    document.getElementById("lr-note").textContent = "★ η* with its interval (dashed: η*); bars: ± sd over seeds" +
      (lost ? "; × at the top: every seed diverged or failed at that LR." : ".");
  }

  async function drawTuning(arch, tuning) {
    shown = tuning;
    tuningStatus(arch, tuning);
    document.getElementById("tuning-transfer").replaceChildren(...transferFacts(tuning));
    const body = document.getElementById("tuning-body");
    body.hidden = !tuning;
    if (!tuning) return;
    await drawLrFigures(tuning);
    const base = (c) => c.width === tuning.params.base_width && c.depth === tuning.params.base_depth &&
      c.steps === tuning.params.steps;
    const rows = [...tuning.per_width, ...tuning.per_depth.slice(1), ...tuning.per_horizon.filter((c) => !base(c))];
    document.querySelector("#lr-stars tbody").replaceChildren(...rows.map(lrStarRow));
  }

  /** One figure of the coordinate check: mean |x| of every module against the width (or depth), log-log. */
  async function drawCoordAxis(div, check) {
    await MU.plot(div, check.coordinates.map((c, i) => ({
      name: MU.plotText(c.name), type: "scatter", mode: "lines+markers", x: check.sizes, y: c.sizes,
      marker: { color: MU.color(i), size: 6 }, line: { color: MU.color(i), width: 1.5, dash: i >= 8 ? "dot" : "solid" },
      hovertemplate: `${MU.plotText(c.name)}<br>${check.axis} %{x}<br>mean |x| %{y:.3g}<br>` +
        `slope ${MU.fmtSigned(c.slope)}, Δx slope ${MU.fmtSigned(c.delta_slope)}<extra></extra>`,
    })), {
      xaxis: { type: "log", title: { text: check.axis }, tickvals: check.sizes, ticktext: check.sizes.map(String) },
      yaxis: { type: "log", title: { text: "mean |x| after the last step" }, exponentformat: "power", dtick: "D2" },
      legend: { orientation: "v", x: 1.02, y: 1, font: { size: 11 } }, margin: { l: 60, r: 10, t: 20, b: 50 },
    });
  }

  function coordFacts(check) {
    const axis = (a) => el("p", { class: "verdict", "data-axis": a.axis },
      el("span", { class: `badge ${a.verdict === "passes" ? "ok" : "warn"}` }, a.verdict),
      ` along ${a.axis} ${a.sizes.join(", ")}: the steepest coordinate, ${a.worst}, has |slope| ` +
      `${a.max_abs_slope.toFixed(3)} (of log₂ |x| or |Δx| per doubling; threshold ${a.threshold}).`);
    return [
      el("p", {}, `The check ${check.verdict} at lr = ${MU.fmtLr(check.lr)} (${check.lr_source === "tuned"
        ? "the tuned η*" : "the spec's lr"}), ${check.width.steps} steps, seeds ${check.width.seeds.join(", ")}.`),
      axis(check.width),
      ...(check.depth ? [axis(check.depth)] : []),
    ];
  }

  async function runCoordCheck(id) {
    const button = document.getElementById("coord-run");
    const status = document.getElementById("coord-status");
    button.disabled = true;
    MU.notice(status, "", "Running the coordinate check on the server (a few seconds)…");
    try {
      const check = await MU.api(`/v1/architectures/${id}/coord-check`);
      status.replaceChildren(...coordFacts(check));
      status.dataset.verdict = check.verdict;
      await drawCoordAxis(document.getElementById("coord-width-plot"), check.width);
      const depthPlot = document.getElementById("coord-depth-plot");
      if (check.depth) await drawCoordAxis(depthPlot, check.depth);
      else depthPlot.hidden = true;
    } catch (err) {
      MU.notice(status, "error", `No coordinate check: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  /** Redraw the last tuning's figures (the relative-loss switch changed). */
  async function redraw() {
    if (shown) await drawLrFigures(shown);
  }

  return { drawTuning, redraw, runCoordCheck };
})();
