/* Token horizons on the architecture page: the (N, D) grid of a token-horizon sweep (loss against
   training tokens per width: the branches off each trunk, with the fitted law along D) and the
   compute-optimal frontier (the loss at each budget's N*, D*, with its band). Used by architecture.js
   through `MUHorizon`. */
"use strict";

const MUHorizon = (() => {
  const { el } = MU;
  const MIN_BUDGETS = 3; // app.fits.MIN_BUDGETS: an (N, D) fit needs three budgets

  /** Whether the finished branches can be fitted: asked only then (a 409 is logged by browsers). */
  function fittable(runs) {
    const done = runs.filter((run) => run.role === "branch" && run.status === "succeeded");
    return new Set(done.map((run) => run.width)).size >= MU.minWidths &&
      new Set(done.map((run) => run.steps)).size >= MIN_BUDGETS;
  }

  async function draw(id, runs) {
    const card = document.getElementById("horizons");
    const branches = runs.filter((run) => run.role === "branch");
    card.hidden = branches.length === 0;
    if (card.hidden) return;
    const status = document.getElementById("horizon-status");
    const body = document.getElementById("horizon-body");
    if (!fittable(runs)) {
      body.hidden = true;
      const done = branches.filter((run) => run.status === "succeeded").length;
      MU.notice(status, "warn", `Not fitted yet: ${done} of ${branches.length} branches finished ` +
        `(an (N, D) fit needs ${MU.minWidths} widths at ${MIN_BUDGETS} budgets or more).`);
      return;
    }
    let grid;
    try {
      grid = await MU.api(`/v1/architectures/${id}/grid`, { query: { level: MU.LEVEL } });
    } catch (err) {
      body.hidden = true;
      MU.notice(status, err.status === 409 ? "warn" : "error", `No (N, D) fit: ${err.message}`);
      return;
    }
    status.replaceChildren();
    if (!grid.quality.ok && grid.quality.enforced) {
      MU.notice(status, "warn", "Not served as a prediction: ", grid.quality.reasons.join("; "), ".");
    }
    const params = Object.entries(grid.parameters).map(([name, value]) => `${name} = ${value.toPrecision(4)}`);
    document.getElementById("horizon-facts").replaceChildren(
      el("dt", {}, "law"), el("dd", { class: "mono" }, `${grid.law}: ${params.join(", ")}`),
      el("dt", {}, "budgets"), el("dd", {}, grid.recipe.token_budgets.map((b) => MU.fmtN(b)).join(", ") + " tokens"),
      el("dt", {}, "points"), el("dd", {}, `${grid.points.length} branches`),
    );
    body.hidden = false;
    const widths = [...new Set(grid.points.map((p) => p.width))].sort((a, b) => a - b);
    const percent = Math.round(grid.level * 100);
    const traces = widths.flatMap((width, i) => {
      const color = MU.color(i);
      const points = grid.points.filter((p) => p.width === width);
      const curve = grid.curves.filter((c) => c.width === width);
      return [
        {
          name: `width ${width} · fit`, legendgroup: `w${width}`, type: "scatter", mode: "lines",
          x: curve.map((c) => c.tokens), y: curve.map((c) => c.mean), line: { color, width: 2 },
          hovertemplate: `width ${width}<br>D %{x:.3s}<br>fit %{y:.4f}<extra></extra>`,
        },
        {
          name: `width ${width} · branches`, legendgroup: `w${width}`, type: "scatter", mode: "markers",
          x: points.map((p) => p.tokens), y: points.map((p) => p.loss),
          text: points.map((p) => `run ${p.run_id}, seed ${p.seed}`),
          marker: { color, size: 7, line: { color: "#fff", width: 1 } },
          hovertemplate: `width ${width}, %{text}<br>D %{x:.3s}<br>loss %{y:.4f}<extra></extra>`,
        },
      ];
    });
    await Plotly.react("horizon-plot", traces, MU.plotLayout({
      xaxis: { type: "log", title: { text: "training tokens D" }, exponentformat: "SI" },
      yaxis: { title: { text: "validation loss" },
               range: MU.dataRange([...grid.points.map((p) => p.loss), ...grid.curves.map((c) => c.mean)]) },
      legend: { orientation: "v", x: 1.02, y: 1, font: { size: 11 } }, margin: { l: 60, r: 10, t: 20, b: 50 },
    }), MU.plotConfig);
    const frontier = grid.frontier;
    const color = MU.archColor(id);
    const band = MU.bandTrace(frontier.map((f) => ({ n_params: f.compute, upper: f.loss_upper, lower: f.loss_lower })),
      color, { name: `${percent}% band (expected loss)` });
    await Plotly.react("frontier-plot", [band, {
      name: "compute-optimal loss", type: "scatter", mode: "lines", line: { color, width: 2 },
      x: frontier.map((f) => f.compute), y: frontier.map((f) => f.loss),
      text: frontier.map((f) => `N* ${MU.fmtN(f.n_params)} [${MU.fmtN(f.n_params_lower)}, ${MU.fmtN(f.n_params_upper)}]` +
        `<br>D* ${MU.fmtN(f.tokens)} [${MU.fmtN(f.tokens_lower)}, ${MU.fmtN(f.tokens_upper)}]` +
        `<br>${f.tokens_per_parameter.toPrecision(3)} tokens/parameter`),
      hovertemplate: "C %{x:.3s} FLOPs<br>%{text}<br>loss %{y:.4f}<extra></extra>",
    }], MU.plotLayout({
      xaxis: { type: "log", title: { text: "training compute C = 6ND (FLOPs)" }, exponentformat: "SI" },
      yaxis: { title: { text: "validation loss at N*, D*" } },
      legend: { x: 0.55, y: 0.95, bgcolor: "rgba(255,255,255,0.8)" },
    }), MU.plotConfig);
  }

  return { draw };
})();
