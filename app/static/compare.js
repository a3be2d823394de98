/* Compare: the selected architectures' scaling curves on a log-N axis and their ranking at a target N.
   Per architecture the plot holds four traces: the prediction band, the fitted law, the measured
   proxies (error bars: the spread over seeds) and the prediction at the target N. */
"use strict";

(() => {
  const { el } = MU;
  const params = new URLSearchParams(location.search);
  const ids = [...new Set((params.get("ids") || "").split(",").map((s) => parseInt(s, 10)).filter((i) => i > 0))];
  const targetN = MU.parseN(params.get("n")) || Number(document.body.dataset.defaultN);
  const nInput = document.getElementById("target-n");
  const picker = document.getElementById("picker");
  const messages = document.getElementById("messages");
  const rankingBody = document.querySelector("#ranking tbody");
  const percent = Math.round(MU.LEVEL * 100);
  let ranked = []; // the candidates as last ranked, for the CSV download
  nInput.value = MU.fmtN(targetN);
  document.getElementById("target-label").textContent = `N = ${MU.fmtN(targetN)}`;

  async function fillPicker() {
    const archs = await MU.listAll("/v1/architectures", { limit: 200 });
    picker.replaceChildren(...archs.map((arch) => el("label", { class: "check" },
      el("input", { type: "checkbox", name: "ids", value: arch.id, checked: ids.includes(arch.id) }),
      MU.swatch(arch.id), arch.name, el("span", { class: "muted" }, `#${arch.id}`))));
    if (!archs.length) picker.replaceChildren(el("span", { class: "muted" }, "No architectures yet."));
  }

  document.getElementById("compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = [...picker.querySelectorAll("input:checked")].map((box) => box.value);
    const n = MU.parseN(nInput.value);
    nInput.classList.toggle("invalid", n === null);
    if (n === null || !chosen.length) return;
    location.assign(`/compare?ids=${chosen.join(",")}&n=${n}`);
  });

  /** Proxies grouped by width: mean N and loss, and the spread (min, max) of the loss over seeds. */
  function byWidth(points) {
    const groups = new Map();
    for (const p of points) {
      if (!groups.has(p.width)) groups.set(p.width, []);
      groups.get(p.width).push(p);
    }
    return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([width, group]) => {
      const losses = group.map((p) => p.loss);
      const mean = losses.reduce((s, x) => s + x, 0) / losses.length;
      return {
        width, seeds: group.length, mean,
        n: group.reduce((s, p) => s + p.n_params, 0) / group.length,
        below: mean - Math.min(...losses), above: Math.max(...losses) - mean,
      };
    });
  }

  function traces(arch, fit, candidate) {
    const color = MU.archColor(arch.id);
    const curve = fit.curve;
    const group = `a${arch.id}`;
    const label = MU.plotText(arch.name); // the name as text, never as Plotly markup
    const proxies = byWidth(fit.points);
    const out = [
      MU.bandTrace(curve, color, { name: `${label} · ${percent}% band`, legendgroup: group, showlegend: false }),
      {
        name: `${label} · fit`, legendgroup: group, type: "scatter", mode: "lines",
        x: curve.map((c) => c.n_params), y: curve.map((c) => c.mean), line: { color, width: 2 },
        hovertemplate: "N %{x:.3s}<br>fit %{y:.4f}<extra></extra>",
      },
      {
        name: `${label} · proxies`, legendgroup: group, type: "scatter", mode: "markers",
        x: proxies.map((p) => p.n), y: proxies.map((p) => p.mean),
        error_y: { type: "data", symmetric: false, array: proxies.map((p) => p.above),
                   arrayminus: proxies.map((p) => p.below), color, thickness: 1.5, width: 4 },
        text: proxies.map((p) => `width ${p.width}, ${p.seeds} seed(s)`),
        marker: { color, size: 8, line: { color: "#fff", width: 1 } },
        hovertemplate: "%{text}<br>N %{x:.3s}<br>loss %{y:.4f}<extra></extra>",
      },
    ];
    if (candidate) {
      out.push({
        name: `${label} · at N`, legendgroup: group, type: "scatter", mode: "markers",
        x: [targetN], y: [candidate.predicted_loss],
        error_y: { type: "data", symmetric: false, array: [candidate.upper - candidate.predicted_loss],
                   arrayminus: [candidate.predicted_loss - candidate.lower], color, thickness: 2, width: 8 },
        marker: { color, size: 13, symbol: "diamond", line: { color: "#1f2430", width: 1 } },
        // The name goes in the body: the <extra> box cuts it at 15 characters, even inside an entity.
        hovertemplate: `${label}<br>predicted at N %{x:.3s}: %{y:.4f}<extra></extra>`,
      });
    }
    return out;
  }

  function rankingRow(candidate) {
    const p = candidate.probability_best;
    return el("tr", { "data-architecture-id": candidate.architecture_id },
      el("td", { class: "num" }, candidate.rank),
      el("td", {}, MU.swatch(candidate.architecture_id), el("a", { href: `/architectures/${candidate.architecture_id}` }, candidate.name),
        candidate.warnings.length ? el("span", { title: candidate.warnings.join("\n") }, " ⚠") : null),
      el("td", { class: "num" }, MU.fmtLoss(candidate.predicted_loss)),
      el("td", { class: "num" }, MU.fmtInterval(candidate.lower, candidate.upper)),
      el("td", {}, el("span", { class: "bar", style: `width:${Math.round(p * 80)}px` }), `${(p * 100).toFixed(0)}%`),
      el("td", { class: "small-print" }, MU.fmtExtrapolation(candidate.extrapolation)),
    );
  }

  /** Ranked candidates at N (/v1/compare for two or more, a single prediction for one), their unit
      ("bits/byte" when the designs use different tokenizers on one prepared text) and the warnings. */
  async function rank(fitted) {
    if (fitted.length >= 2) {
      return MU.api("/v1/compare", {
        method: "POST",
        body: { architecture_ids: fitted.map((f) => f.arch.id), n_params: targetN, level: MU.LEVEL },
      });
    }
    const { arch } = fitted[0];
    const p = await MU.api("/v1/predictions", {
      method: "POST",
      body: { architecture_id: arch.id, n_params: targetN, level: MU.LEVEL, interval: "expected" },
    });
    return { unit: "nats/token", warnings: [], candidates: [{ rank: 1, architecture_id: arch.id, name: arch.name,
      predicted_loss: p.predicted_loss, lower: p.lower, upper: p.upper, probability_best: 1, unit_factor: 1,
      extrapolation_factor: p.extrapolation_factor, extrapolation: p.extrapolation, warnings: p.warnings }] };
  }

  /** A fit's points and curve (nats per token) in the ranking's unit. */
  function inUnit(fit, factor) {
    if (factor === 1) return fit;
    return { ...fit,
      points: fit.points.map((p) => ({ ...p, loss: p.loss * factor })),
      curve: fit.curve.map((c) => ({ ...c, mean: c.mean * factor, lower: c.lower * factor, upper: c.upper * factor })) };
  }

  async function load() {
    if (!ids.length) {
      MU.notice(messages, "", "Pick the architectures to compare, then press Compare.");
      return;
    }
    const archs = await Promise.all(ids.map((id) => MU.api(`/v1/architectures/${id}`)));
    const waiting = archs.filter((arch) => !MU.canFit(arch.runs));
    const all = await Promise.all(archs.filter((arch) => MU.canFit(arch.runs)).map(async (arch) => ({
      arch,
      fit: await MU.api(`/v1/architectures/${arch.id}/fit`, { query: { curve_to: targetN, level: MU.LEVEL } }),
    })));
    // A fit that fails the quality gate is neither ranked nor plotted (its band would flatten the rest).
    const refused = ({ fit }) => !fit.quality.ok && fit.quality.enforced;
    const fitted = all.filter((f) => !refused(f));
    const blocked = all.filter(refused);
    messages.replaceChildren(
      ...waiting.map((arch) => el("p", { class: "notice warn" },
        el("a", { href: `/architectures/${arch.id}` }, arch.name), `: not fitted yet — ${MU.notFittedReason(arch.runs)}.`)),
      ...blocked.map(({ arch, fit }) => el("p", { class: "notice warn" },
        el("a", { href: `/architectures/${arch.id}` }, arch.name),
        `: not ranked, no usable scaling trend — ${fit.quality.reasons.join("; ")}.`)),
    );
    if (!fitted.length) {
      rankingBody.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty" },
        all.length ? "Nothing with a usable scaling trend." : "Nothing fitted yet.")));
      return;
    }
    const result = await rank(fitted);
    const { candidates, unit } = result;
    const byId = new Map(candidates.map((c) => [c.architecture_id, c]));
    for (const f of fitted) f.fit = inUnit(f.fit, byId.get(f.arch.id)?.unit_factor ?? 1);
    for (const warning of result.warnings) messages.append(el("p", { class: "notice warn" }, warning));
    document.getElementById("loss-unit").textContent = unit === "bits/byte" ? "bits per byte" : "nats per token";
    rankingBody.replaceChildren(...candidates.map(rankingRow));
    ranked = candidates.map((c) => ({ ...c, unit }));
    const data = fitted.flatMap(({ arch, fit }) => traces(arch, fit, byId.get(arch.id)));
    // The y-axis shows the proxies and the fitted means (and the predictions); a band that leaves it is
    // marked where it does, with its extent in the hover, instead of stretching the axis.
    const range = MU.dataRange(fitted.flatMap(({ arch, fit }) => [
      ...fit.points.map((p) => p.loss), ...fit.curve.map((c) => c.mean),
      ...(byId.has(arch.id) ? [byId.get(arch.id).predicted_loss] : []),
    ]));
    for (const { arch, fit } of fitted) {
      const label = MU.plotText(arch.name);
      const candidate = byId.get(arch.id);
      const edges = [...fit.curve.map((c) => [c.n_params, c.lower, c.upper]),
        ...(candidate ? [[targetN, candidate.lower, candidate.upper]] : [])];
      const above = edges.filter((e) => e[2] > range[1]);
      const below = edges.filter((e) => e[1] < range[0]);
      for (const [side, off, y, symbol] of [["above", above, range[1], "triangle-up"], ["below", below, range[0], "triangle-down"]]) {
        if (!off.length) continue;
        const first = off[0];
        const extreme = side === "above" ? Math.max(...off.map((e) => e[2])) : Math.min(...off.map((e) => e[1]));
        data.push({
          name: `${label} · band off scale`, legendgroup: `a${arch.id}`, showlegend: false, type: "scatter",
          mode: "markers", x: [first[0]], y: [y], cliponaxis: false,
          marker: { color: MU.archColor(arch.id), size: 11, symbol },
          hovertemplate: `${label}: its ${percent}% band leaves the plot ${side} N %{x:.3s}, reaching ` +
            `${extreme.toFixed(3)}<extra></extra>`,
        });
      }
    }
    await Plotly.newPlot("compare-plot", data, MU.plotLayout({
      xaxis: { type: "log", title: { text: "non-embedding parameters N" }, exponentformat: "SI" },
      yaxis: { title: { text: `validation loss (${unit === "bits/byte" ? "bits per byte" : "nats per token"})` }, range },
      shapes: [{ type: "line", xref: "x", yref: "paper", x0: targetN, x1: targetN, y0: 0, y1: 1,
                 line: { color: "#5f6b7a", width: 1, dash: "dot" } }],
    }), MU.plotConfig);
  }

  document.getElementById("ranking-csv").addEventListener("click", () => {
    MU.downloadCsv(`mupredict-ranking-N${targetN}.csv`,
      ["rank", "architecture_id", "name", "n_params", "predicted_loss", "lower", "upper", "unit", "level",
        "probability_best", "extrapolation_factor", "warnings"],
      ranked.map((c) => ({ ...c, n_params: targetN, level: MU.LEVEL, warnings: c.warnings.join(" | ") })));
  });

  Promise.all([
    fillPicker(),
    load().catch((err) => MU.notice(messages, "error", `Could not compare: ${err.message}`)),
  ]).catch((err) => MU.notice(messages, "error", `Could not list the architectures: ${err.message}`))
    .finally(MU.ready);
})();
