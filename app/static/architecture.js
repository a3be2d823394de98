/* Architecture: the spec, the runs with live progress (polled while any run or the LR tuning is queued
   or running), the LR tuning with its μTransfer figure, training-loss curves per width, the fit with its
   residuals and report, the coordinate check, and the sweep and tuning launchers. */
"use strict";

(() => {
  const { el } = MU;
  const id = Number(document.body.dataset.architectureId);
  const POLL_MS = 3000;
  const messages = document.getElementById("messages");
  const runsBody = document.querySelector("#runs tbody");
  const curves = new Map(); // run id → { progress, trace }: refetched only when a run moved on
  let fittedOn = null; // the finished runs the shown fit used, so a new one triggers a refresh
  let gridOn = null; // likewise the finished token-horizon branches the (N, D) fit used
  let shownArch = null; // the architecture as last loaded, for redrawing the fit in another law
  let timer = null;

  function progress(run) {
    const total = run.progress_total || run.steps;
    const share = total ? Math.min(1, run.progress_step / total) : 0;
    // While it trains: the latest heartbeat's throughput and the server's estimate of the time left.
    const live = run.status === "running"
      ? [run.tokens_per_second ? `${Math.round(run.tokens_per_second).toLocaleString("en")} tok/s` : null,
        run.eta_seconds != null ? `ETA ${MU.fmtDuration(run.eta_seconds)}` : null].filter(Boolean)
      : [];
    return el("td", { class: "nowrap" }, el("span", { class: "progress", title: `${run.progress_step} / ${total} steps` },
      el("span", { style: `width:${(share * 100).toFixed(1)}%` })), ` ${Math.round(share * 100)}%`,
      live.length ? el("span", { class: "muted run-speed" }, ` · ${live.join(" · ")}`) : "");
  }

  /** Cancels a queued or running run (a running one stops at its worker's next heartbeat). */
  function cancelButton(run) {
    const button = el("button", { type: "button", class: "secondary small", "data-cancel": run.id,
      title: "Cancel this run" }, "Cancel");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await MU.api(`/v1/runs/${run.id}`, { method: "DELETE" });
        await poll();
      } catch (err) {
        MU.notice(messages, "error", `Could not cancel run ${run.id}: ${err.message}`);
        button.disabled = false;
      }
    });
    return button;
  }

  /** A run's row; a failed run gets a second row with its error and a Retry button. */
  function runRows(run) {
    // A token-horizon sweep's trunk and branches say so beside their id, with their length in steps;
    // an upscaled run names the run it was widened from (its lineage, one link at a time).
    const role = run.role === "trunk" ? `trunk to ${run.stop_step} of ${run.steps} steps`
      : run.role === "branch" ? `branch of ${run.parent_run_id}, ${run.steps} steps`
      : run.role === "upscaled" ? `upscaled from run ${run.parent_run_id} (noise ${run.noise}), then ${run.steps} steps`
      : null;
    const row = el("tr", { "data-run-id": run.id },
      el("td", { class: "num" }, run.id, role ? el("div", { class: "muted small-print", title: role },
        run.role === "upscaled" ? `from ${run.parent_run_id}` : run.role) : null),
      el("td", { class: "num" }, run.width),
      el("td", { class: "num" }, run.depth),
      el("td", { class: "num" }, MU.fmtLr(run.lr)),
      el("td", { class: "num" }, run.seed),
      el("td", { class: "nowrap" }, el("span", { class: `badge ${run.status}`, title: run.error || null }, run.status),
        run.status === "queued" || run.status === "running" ? cancelButton(run) : ""),
      progress(run),
      el("td", { class: "num" }, MU.fmtLoss(run.final_train_loss ?? run.progress_loss)),
      el("td", { class: "num" }, MU.fmtLoss(run.val_loss)),
      el("td", { class: "num" }, run.n_params_non_embedding ? MU.fmtN(run.n_params_non_embedding) : "—"),
    );
    if (run.status !== "failed" && run.status !== "cancelled") return [row];
    const retry = el("button", { type: "button", class: "secondary small", "data-retry": run.id }, "Retry");
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        await MU.api(`/v1/runs/${run.id}/retry`, { method: "POST" });
        await poll();
      } catch (err) {
        MU.notice(messages, "error", `Could not retry run ${run.id}: ${err.message}`);
        retry.disabled = false;
      }
    });
    return [row, el("tr", { class: "run-error", "data-error-of": run.id },
      el("td", { colspan: 10 }, el("span", { class: "error-text" },
        run.status === "cancelled" ? "cancelled" : run.error || "failed (no error stored)"), " ", retry))];
  }

  async function drawCurves(runs) {
    const started = runs.filter((run) => run.progress_step > 0 || run.status === "succeeded");
    await Promise.all(started.map(async (run) => {
      const known = curves.get(run.id);
      if (known && known.progress === run.progress_step && known.status === run.status) return;
      const detail = await MU.api(`/v1/runs/${run.id}`);
      curves.set(run.id, { progress: run.progress_step, status: run.status, run: detail });
    }));
    const widths = [...new Set(started.map((run) => run.width))].sort((a, b) => a - b);
    const seeds = [...new Set(started.map((run) => run.seed))].sort((a, b) => a - b);
    // A tuning's runs differ in LR (and maybe depth) too: name those only when they vary.
    const varies = (key) => new Set(started.map((run) => run[key])).size > 1;
    const [depths, lrs] = [varies("depth"), varies("lr")];
    const data = started.map((run) => {
      const { loss_curve: curve } = curves.get(run.id).run;
      const shape = `${depths ? ` · depth ${run.depth}` : ""}${lrs ? ` · lr ${MU.fmtLr(run.lr)}` : ""}`;
      return {
        name: `width ${run.width}${shape} · seed ${run.seed}`, type: "scatter", mode: "lines",
        x: curve.map((p) => p.step), y: curve.map((p) => p.train_loss),
        // One colour per width; replicate seeds of a width differ by dash.
        line: { color: MU.color(widths.indexOf(run.width)), width: 1.5, dash: seeds.indexOf(run.seed) ? "dot" : "solid" },
      };
    });
    const div = document.getElementById("loss-plot");
    if (!data.length) {
      MU.plotMessage(div, "No run has started yet.");
      return;
    }
    await MU.plot(div, data, {
      xaxis: { title: { text: "step" } }, yaxis: { title: { text: "training loss" } },
      legend: { orientation: "v", x: 1.02, y: 1, font: { size: 11 } }, margin: { l: 60, r: 10, t: 20, b: 50 },
    });
  }

  let fitDraws = 0; // the latest drawFit: an earlier one answered late (another law) must not overwrite it

  async function drawFit(arch) {
    const draw = ++fitDraws;
    const status = document.getElementById("fit-status");
    const body = document.getElementById("fit-body");
    if (!MU.canFit(arch.runs)) {
      body.hidden = true;
      MU.notice(status, "warn", `Not fitted yet: ${MU.notFittedReason(arch.runs)}.`);
      return;
    }
    let fit;
    const law = document.getElementById("fit-law").value;
    try {
      fit = await MU.api(`/v1/architectures/${id}/fit`, { query: { level: MU.LEVEL, law } });
    } catch (err) {
      if (draw !== fitDraws) return;
      body.hidden = true;
      MU.notice(status, err.status === 409 ? "warn" : "error", `No fit: ${err.message}`);
      return;
    }
    if (draw !== fitDraws) return;
    status.replaceChildren();
    if (!fit.quality.ok && fit.quality.enforced) {
      // The fit exists but fails the gate: shown for diagnosis, never served as a prediction or ranked.
      MU.notice(status, "warn", "Not served as a prediction: no usable scaling trend. ",
        fit.quality.reasons.join("; "), ". Train the proxies longer, add wider proxies, or tune the LR.");
    } else if (!fit.success) {
      MU.notice(status, "warn", `The optimiser reported a problem: ${fit.message}`);
    }
    const params = Object.entries(fit.parameters).map(([name, value]) => {
      const se = fit.stderr[name];
      return `${name} = ${value.toPrecision(4)}${se == null ? "" : ` ± ${se.toPrecision(2)}`}`;
    });
    document.getElementById("fit-facts").replaceChildren(
      el("dt", {}, "law"), el("dd", { class: "mono" }, fit.law),
      ...(fit.law_choice === "asked" ? [] : [el("dt", {}, "why this law"), el("dd", { id: "fit-law-choice" }, fit.law_choice)]),
      el("dt", {}, "parameters"), el("dd", { class: "mono" }, params.join(", ")),
      el("dt", {}, "R²"), el("dd", {}, fit.r2 == null ? "—" : fit.r2.toFixed(5)),
      el("dt", {}, "points"), el("dd", {}, `${fit.n_points} runs, N ${MU.fmtN(fit.n_params_range[0])} – ${MU.fmtN(fit.n_params_range[1])}`),
      ...holdoutFacts(fit.holdout, fit.law),
    );
    document.getElementById("fit-report").textContent = fit.report;
    body.hidden = false;
    // The proxies' validation losses against N with the fitted law and its band (in this
    // architecture's colour, as on the compare page), the y-range from the data.
    const color = MU.archColor(id);
    const curve = fit.curve;
    await Plotly.react("fit-plot", [
      MU.bandTrace(curve, color, { name: `${Math.round(fit.level * 100)}% band (expected loss)` }),
      {
        name: `fitted law (${fit.law})`, type: "scatter", mode: "lines", line: { color, width: 2 },
        x: curve.map((c) => c.n_params), y: curve.map((c) => c.mean),
        hovertemplate: "N %{x:.3s}<br>fit %{y:.4f}<extra></extra>",
      },
      {
        name: "validation loss (runs)", type: "scatter", mode: "markers",
        x: fit.points.map((p) => p.n_params), y: fit.points.map((p) => p.loss),
        text: fit.points.map((p) => `run ${p.run_id}, width ${p.width}, depth ${p.depth}, seed ${p.seed}`),
        marker: { color, size: 8, line: { color: "#fff", width: 1 } },
        hovertemplate: "%{text}<br>N %{x:.3s}<br>loss %{y:.4f}<extra></extra>",
      },
    ], MU.plotLayout({
      xaxis: { type: "log", title: { text: "non-embedding parameters N" }, exponentformat: "SI" },
      yaxis: { title: { text: "validation loss" },
               range: MU.dataRange([...fit.points.map((p) => p.loss), ...curve.map((c) => c.mean)]) },
    }), MU.plotConfig);
    await Plotly.react("residual-plot", [{
      name: "residuals", type: "scatter", mode: "markers",
      x: fit.points.map((p) => p.n_params), y: fit.points.map((p) => p.residual),
      text: fit.points.map((p) => `run ${p.run_id}, width ${p.width}`),
      marker: { color: MU.color(0), size: 8 },
      hovertemplate: "%{text}<br>N %{x:.3s}<br>measured − fitted %{y:.2e}<extra></extra>",
    }], MU.plotLayout({
      xaxis: { type: "log", title: { text: "non-embedding parameters N" }, exponentformat: "SI" },
      yaxis: { title: { text: "measured − fitted loss" }, zeroline: true },
      showlegend: false,
    }), MU.plotConfig);
    await drawDepth(fit, color);
  }

  /** A ladder over depth: validation loss against depth, one line per width, with the fitted law at
   * each point's N (dashed) and the shape test's verdict (does shape matter at fixed N?). */
  async function drawDepth(fit, color) {
    const section = document.getElementById("depth-section");
    const depths = [...new Set(fit.points.map((p) => p.depth))];
    section.hidden = depths.length < 2;
    if (section.hidden) return;
    const shape = fit.shape;
    document.getElementById("shape-test").textContent = shape == null ? "" :
      `Does shape matter at fixed N? ${shape.reason}. Mean residual of L(N) by depth: ` +
      Object.entries(shape.residuals_by_depth).map(([d, r]) => `${d}: ${(100 * r).toFixed(2)}%`).join(", ") + ".";
    const widths = [...new Set(fit.points.map((p) => p.width))].sort((a, b) => a - b);
    const traces = widths.flatMap((width, i) => {
      const points = fit.points.filter((p) => p.width === width).sort((a, b) => a.depth - b.depth);
      const c = widths.length === 1 ? color : MU.color(i);
      return [
        {
          name: `width ${width}`, type: "scatter", mode: "markers", marker: { color: c, size: 8 },
          x: points.map((p) => p.depth), y: points.map((p) => p.loss),
          text: points.map((p) => `run ${p.run_id}, seed ${p.seed}, N ${MU.fmtN(p.n_params)}`),
          hovertemplate: "%{text}<br>depth %{x}<br>loss %{y:.4f}<extra></extra>",
        },
        {
          name: `fit, width ${width}`, type: "scatter", mode: "lines", line: { color: c, dash: "dash" },
          x: points.map((p) => p.depth), y: points.map((p) => p.predicted), showlegend: false,
          hovertemplate: "depth %{x}<br>fitted %{y:.4f}<extra></extra>",
        },
      ];
    });
    await Plotly.react("depth-plot", traces, MU.plotLayout({
      xaxis: { type: "log", title: { text: "depth (blocks)" }, tickvals: depths.sort((a, b) => a - b) },
      yaxis: { title: { text: "validation loss" } },
    }), MU.plotConfig);
  }

  async function refresh() {
    const [arch, runs] = await Promise.all([
      MU.api(`/v1/architectures/${id}`),
      MU.listAll("/v1/runs", { architecture_id: id, limit: 500 }),
    ]);
    shownArch = arch;
    document.getElementById("spec").textContent = JSON.stringify(arch.spec, null, 2);
    document.getElementById("run-counts").textContent = `— ${MU.runCounts(arch.runs)}`;
    const widthsInput = document.getElementById("sweep-widths");
    if (!widthsInput.value) widthsInput.value = arch.spec.proxy_widths.join(", ");
    document.getElementById("sweep-steps").placeholder = String(arch.spec.training.steps);
    document.getElementById("tune-steps").placeholder = String(arch.spec.training.steps);
    const base = arch.spec.parametrization.base_width;
    document.getElementById("tune-widths").placeholder = `${4 * base}, ${8 * base}`;
    const label = runs.length ? "Extend the sweep" : "Launch a sweep";
    document.getElementById("sweep-title").textContent = label;
    document.getElementById("sweep-submit").textContent = runs.length ? "Extend sweep" : "Launch sweep";
    runsBody.replaceChildren(...(runs.length
      ? runs.flatMap(runRows)
      : [el("tr", {}, el("td", { colspan: 10, class: "empty" }, "No runs yet: launch a sweep."))]));
    const finished = runs.filter((run) => run.status === "succeeded").map((run) => run.id).join(",");
    // Only an architecture that has a tuning is asked for one (a 404 is logged by every browser).
    const tuning = arch.tuning ? await MU.api(`/v1/architectures/${id}/tuning`) : null;
    await MUTuning.drawTuning(arch, tuning);
    await drawCurves(runs);
    const branchesDone = runs.filter((run) => run.role === "branch" && run.status === "succeeded").map((run) => run.id).join(",");
    if (branchesDone !== gridOn || !branchesDone) {
      gridOn = branchesDone;
      await MUHorizon.draw(id, runs);
    }
    offerSlice(runs);
    // The fit is refetched only when the set of finished runs changed; the "not yet" notice always.
    if (finished !== fittedOn || !MU.canFit(arch.runs)) {
      fittedOn = finished;
      await drawFit(arch);
    }
    const busy = (status) => status === "queued" || status === "running";
    return runs.some((run) => busy(run.status)) || (tuning != null && busy(tuning.status));
  }

  /** The slice law takes γ from the token-horizon grid: offered once the grid can be fitted (enough
   * widths at 3 budgets or more, as app.fits asks), so choosing it never meets a 409. */
  function offerSlice(runs) {
    const branches = runs.filter((run) => run.role === "branch" && run.status === "succeeded");
    const budgets = new Set(branches.map((run) => run.steps)).size;
    const widths = new Set(branches.map((run) => run.width)).size;
    const ready = budgets >= 3 && widths >= MU.minWidths;
    const select = document.getElementById("fit-law");
    select.querySelector("option[value=kaplan_slice]").disabled = !ready;
    if (!ready && select.value === "kaplan_slice") select.value = "mu_scaling";
    document.getElementById("fit-law-note").textContent = ready
      ? "the slice is fitted in total parameters and drawn against N"
      : "kaplan_slice needs a token-horizon grid (a sweep with token budgets) at 3 budgets or more";
  }

  /** Refresh now, and keep polling while any run or the tuning is queued or running. */
  async function poll() {
    clearTimeout(timer);
    try {
      const active = await refresh();
      if (active) timer = setTimeout(poll, POLL_MS);
    } catch (err) {
      MU.notice(messages, "error", `Could not load this architecture: ${err.message}`);
    }
  }

  function integers(text, what) {
    const items = text.split(/[\s,]+/).filter(Boolean);
    const values = items.map(Number);
    if (!values.length || values.some((v) => !Number.isInteger(v) || v < 0)) {
      throw new Error(`${what}: give whole numbers separated by commas`);
    }
    return values;
  }

  document.getElementById("sweep-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = document.getElementById("sweep-status");
    const button = document.getElementById("sweep-submit");
    try {
      const body = {
        widths: integers(document.getElementById("sweep-widths").value, "widths"),
        seeds: integers(document.getElementById("sweep-seeds").value, "seeds"),
      };
      const steps = document.getElementById("sweep-steps").value.trim();
      if (steps) body.steps = integers(steps, "steps")[0];
      const depths = document.getElementById("sweep-depths").value.trim();
      if (depths) body.depths = integers(depths, "depths");
      if (document.getElementById("sweep-upscale").checked) body.warm_start = "upscale";
      button.disabled = true;
      const sweep = await MU.api(`/v1/architectures/${id}/sweeps`, { method: "POST", body });
      MU.notice(status, "ok", `Sweep #${sweep.id}: ${sweep.runs.length} run(s), ${MU.runCounts(sweep.counts)}.`);
      await poll();
    } catch (err) {
      MU.notice(status, "error", err.message);
    } finally {
      button.disabled = false;
    }
  });

  document.getElementById("tune-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = document.getElementById("tune-status");
    const button = document.getElementById("tune-submit");
    try {
      const body = { seeds: integers(document.getElementById("tune-seeds").value, "seeds") };
      const widths = document.getElementById("tune-widths").value.trim();
      if (widths) body.widths = integers(widths, "widths");
      const steps = document.getElementById("tune-steps").value.trim();
      if (steps) body.steps = integers(steps, "steps")[0];
      const budgets = document.getElementById("tune-budgets").value.trim();
      if (budgets) body.token_budgets = integers(budgets, "token budgets");
      button.disabled = true;
      const tuning = await MU.api(`/v1/architectures/${id}/tuning`, { method: "POST", body });
      const shapes = tuning.per_width.length + Math.max(0, tuning.per_depth.length - 1) +
        Math.max(0, tuning.per_horizon.length - 1);
      MU.notice(status, "ok", `LR tuning #${tuning.id} (${tuning.status}): ${shapes} shape(s), ` +
        `${MU.runCounts(tuning.runs)}.`);
      await poll();
    } catch (err) {
      MU.notice(status, "error", err.message);
    } finally {
      button.disabled = false;
    }
  });

  document.getElementById("runs-csv").addEventListener("click", async () => {
    try {
      const runs = await MU.listAll("/v1/runs", { architecture_id: id, limit: 500 });
      MU.downloadCsv(`mupredict-architecture-${id}-runs.csv`,
        ["id", "width", "depth", "seed", "data_seed", "steps", "lr", "status", "attempts", "final_train_loss",
          "val_loss", "n_params_non_embedding", "tokens_per_second", "error", "created_at", "finished_at"], runs);
    } catch (err) {
      MU.notice(messages, "error", `Could not download the runs: ${err.message}`);
    }
  });

  document.getElementById("delete-arch").addEventListener("click", async (event) => {
    const name = document.body.dataset.architectureName;
    const question = `Delete ${name} (#${id}) with all its runs, sweeps, fits and tunings? This cannot be undone.`;
    if (!window.confirm(question)) return;
    event.target.disabled = true;
    try {
      await MU.api(`/v1/architectures/${id}`, { method: "DELETE" });
      window.location.assign("/");
    } catch (err) {
      MU.notice(messages, "error", `Could not delete: ${err.message}`);
      event.target.disabled = false;
    }
  });

  document.getElementById("fit-law").addEventListener("change", () => {
    if (shownArch) drawFit(shownArch).catch((err) => MU.notice(messages, "error", err.message));
  });

  document.getElementById("coord-run").addEventListener("click", () => MUTuning.runCoordCheck(id));
  document.getElementById("lr-relative").addEventListener("change", () => {
    MUTuning.redraw().catch((err) => MU.notice(messages, "error", err.message));
  });

  // The ladder's own extrapolation check: the law refitted without its largest size, scored there.
  function holdoutFacts(h, law) {
    if (!h) return [];
    const pct = (100 * h.error).toFixed(2);
    const counted = law === "kaplan_slice" ? "total parameters" : "N"; // the slice is fitted in total parameters
    const text = `largest size (${counted} ${MU.fmtN(h.n_params)}, ${h.runs} run(s)) from the rest: predicted ` +
      `${h.predicted.toFixed(4)} [${h.lower.toFixed(4)}, ${h.upper.toFixed(4)}], measured ` +
      `${h.measured.toFixed(4)} (${h.error >= 0 ? "+" : ""}${pct} %)`;
    return [
      el("dt", {}, "holdout check"),
      el("dd", { id: "holdout-check" }, text, " ",
        el("span", { class: h.inside ? "badge succeeded" : "badge warn" }, h.inside ? "inside" : "outside")),
    ];
  }

  poll().finally(MU.ready);
})();
