/* Home: every architecture, its runs, and its predicted loss at an editable target N, ranked. */
"use strict";

(() => {
  const { el } = MU;
  const nInput = document.getElementById("target-n");
  const tbody = document.querySelector("#architectures tbody");
  const messages = document.getElementById("messages");
  const params = new URLSearchParams(location.search);
  let targetN = MU.parseN(params.get("n")) || Number(document.body.dataset.defaultN);
  nInput.value = MU.fmtN(targetN);

  const BATCH = 200;  // POST /v1/predictions/batch takes at most this many ids

  /** Each architecture's prediction at N, or the reason there is none: one request per 200 candidates
   *  that can have a fit, not one per architecture. */
  async function predictionsFor(archs) {
    const results = new Map();
    const asked = [];
    for (const arch of archs) {
      if (arch.valid === false) results.set(arch.id, { reason: arch.error, failed: true });  // a spec that no longer loads
      else if (!MU.canFit(arch.runs)) results.set(arch.id, { reason: MU.notFittedReason(arch.runs) });
      else asked.push(arch.id);
    }
    for (let i = 0; i < asked.length; i += BATCH) {
      const ids = asked.slice(i, i + BATCH);
      try {
        const batch = await MU.api("/v1/predictions/batch", {
          method: "POST",
          body: { architecture_ids: ids, n_params: targetN, level: MU.LEVEL, interval: "expected" },
        });
        for (const item of batch.items) {
          results.set(item.architecture_id, item.prediction
            ? { prediction: item.prediction }
            : { reason: item.detail, failed: item.status !== 409 });
        }
      } catch (err) {
        for (const id of ids) results.set(id, { reason: err.message, failed: true });
      }
    }
    return archs.map((arch) => results.get(arch.id));
  }

  function row(arch, result, rank) {
    const p = result.prediction;
    const select = el("input", {
      type: "checkbox", class: "select", value: arch.id, "aria-label": `select ${arch.name}`,
      checked: Boolean(p), disabled: !p,
    });
    const cells = p
      ? [
          el("td", { class: "num" }, MU.fmtLoss(p.predicted_loss)),
          el("td", { class: "num" }, MU.fmtInterval(p.lower, p.upper)),
          el("td", { class: "num", title: [MU.fmtExtrapolation(p.extrapolation), ...p.warnings].join("\n") },
            MU.fmtFactor(p.extrapolation_factor), p.warnings.length ? " ⚠" : ""),
        ]
      : [el("td", { colspan: 3, class: result.failed ? "notice error" : "muted" }, result.reason)];
    return el("tr", { "data-architecture-id": arch.id },
      el("td", {}, select),
      el("td", { class: "num" }, rank ?? "—"),
      el("td", {}, MU.swatch(arch.id), el("a", { href: `/architectures/${arch.id}` }, arch.name), " ",
        el("span", { class: "muted mono" }, arch.spec_hash.slice(0, 8))),
      el("td", {}, MU.runCounts(arch.runs)),
      ...cells,
    );
  }

  async function load() {
    try {
      const archs = await MU.listAll("/v1/architectures", { limit: 200 });
      if (!archs.length) {
        tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "empty" },
          "No architectures yet. ", el("a", { href: "/submit" }, "Submit one"), ".")));
        return;
      }
      const results = await predictionsFor(archs);
      const order = archs.map((arch, i) => ({ arch, result: results[i] }));
      // Predicted first, lowest loss first; the rest keep their registration order.
      order.sort((a, b) => {
        const pa = a.result.prediction, pb = b.result.prediction;
        if (pa && pb) return pa.predicted_loss - pb.predicted_loss;
        return pa ? -1 : pb ? 1 : a.arch.id - b.arch.id;
      });
      tbody.replaceChildren(...order.map(({ arch, result }, i) => row(arch, result, result.prediction ? i + 1 : null)));
      tbody.dataset.n = String(targetN);
      messages.replaceChildren();
    } catch (err) {
      MU.notice(messages, "error", `Could not load the architectures: ${err.message}`);
    }
  }

  document.getElementById("target-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const n = MU.parseN(nInput.value);
    document.getElementById("target-help").hidden = n !== null;
    nInput.classList.toggle("invalid", n === null);
    if (n === null) return;
    targetN = n;
    history.replaceState(null, "", `?n=${n}`);
    await load();
  });

  document.getElementById("compare-selected").addEventListener("click", () => {
    const ids = [...tbody.querySelectorAll("input.select:checked")].map((box) => box.value);
    if (!ids.length) {
      MU.notice(messages, "warn", "Select at least one architecture with a prediction.");
      return;
    }
    location.assign(`/compare?ids=${ids.join(",")}&n=${targetN}`);
  });

  load().finally(MU.ready);
})();
