/* Submit: edit a spec as JSON, see the server's validation errors inline as you type, create the
   architecture and (optionally) launch its proxy sweep, then open its page. */
"use strict";

(() => {
  const { el } = MU;
  const textarea = document.getElementById("spec-json");
  const errors = document.getElementById("spec-errors");
  const check = document.getElementById("spec-check");
  const status = document.getElementById("submit-status");
  const examples = JSON.parse(document.getElementById("examples").textContent);
  let pending = null;
  let generation = 0; // answers to older edits are dropped

  function showErrors(items) {
    textarea.classList.toggle("invalid", items.length > 0);
    errors.replaceChildren(...items.map(([where, message]) => el("li", {}, el("code", {}, where), `: ${message}`)));
  }

  /** The textarea as an object, or null after showing where the JSON is broken. */
  function parseSpec() {
    try {
      const spec = JSON.parse(textarea.value);
      if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
        showErrors([["spec", "must be a JSON object, e.g. {\"name\": \"my-arch\"}"]]);
        return null;
      }
      return spec;
    } catch (err) {
      const position = /position (\d+)/.exec(err.message);
      let where = "JSON";
      if (position) {
        const before = textarea.value.slice(0, Number(position[1])).split("\n");
        where = `line ${before.length}, column ${before[before.length - 1].length + 1}`;
      }
      showErrors([[where, err.message]]);
      return null;
    }
  }

  function showCheck(result) {
    const existing = result.architecture_id
      ? el("p", { class: "notice" }, "Already registered as ",
        el("a", { href: `/architectures/${result.architecture_id}` }, `#${result.architecture_id}`),
        " (same spec, whatever the name): creating it again returns that one.")
      : el("p", { class: "notice ok" }, "Valid spec.");
    check.replaceChildren(existing,
      el("dl", { class: "facts" }, el("dt", {}, "spec hash"), el("dd", { class: "mono" }, result.spec_hash.slice(0, 16))),
      el("h2", { style: "margin-top:1rem" }, "Proxy ladder"),
      el("table", { id: "proxy-sizes" },
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Width"), el("th", { class: "num" }, "N (non-embedding)"),
          el("th", { class: "num" }, "Parameters"), el("th", { class: "num" }, "FLOPs"), el("th", { class: "num" }, "Time"))),
        el("tbody", {}, result.proxies.map((p) => el("tr", {},
          el("td", { class: "num" }, p.width), el("td", { class: "num" }, MU.fmtN(p.n_params_non_embedding)),
          el("td", { class: "num" }, MU.fmtN(p.n_params)), el("td", { class: "num" }, p.flops.toExponential(2)),
          el("td", { class: "num" }, p.seconds == null ? "—" : MU.fmtDuration(p.seconds)))))),
      el("p", { id: "ladder-cost", class: "muted small-print" },
        `The ladder: ${result.ladder_flops.toExponential(2)} training FLOPs per seed` +
        (result.ladder_seconds == null
          ? "; its time is estimated once some run has finished on a worker."
          : `, about ${MU.fmtDuration(result.ladder_seconds)} per seed on one worker (from ${result.throughput_basis}; ` +
            "a rough guide: small proxies use a device less well).")));
  }

  /** Ask the server to validate; true when the spec is valid. */
  async function validate() {
    const mine = ++generation;
    const spec = parseSpec();
    if (spec === null) {
      check.replaceChildren(el("p", { class: "muted" }, "Fix the JSON first."));
      return false;
    }
    try {
      const result = await MU.api("/v1/architectures/validate", { method: "POST", body: spec });
      if (mine === generation) {
        showErrors([]);
        showCheck(result);
      }
      return true;
    } catch (err) {
      if (mine !== generation) return false;
      if (err.status === 422 && Array.isArray(err.detail)) {
        showErrors(err.detail.map((e) => [MU.fieldPath(e.loc, "spec"), e.msg]));
        check.replaceChildren(el("p", { class: "muted" }, "Fix the errors on the left."));
      } else {
        showErrors([["server", err.message]]);
      }
      return false;
    }
  }

  textarea.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(validate, 500);
  });
  document.getElementById("validate").addEventListener("click", validate);

  const exampleSelect = document.getElementById("example");
  if (exampleSelect) {
    exampleSelect.addEventListener("change", () => {
      textarea.value = examples[exampleSelect.value];
      validate();
    });
  }

  document.getElementById("submit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearTimeout(pending);
    const button = document.getElementById("create");
    button.disabled = true;
    try {
      if (!(await validate())) return;
      const arch = await MU.api("/v1/architectures", { method: "POST", body: parseSpec() });
      let message = `Registered ${arch.name} as #${arch.id}.`;
      if (document.getElementById("launch-sweep").checked) {
        const sweep = await MU.api(`/v1/architectures/${arch.id}/sweeps`, { method: "POST", body: {} });
        message += ` Sweep #${sweep.id} queued ${sweep.runs.length} run(s).`;
      }
      MU.notice(status, "ok", message, " Opening its page…");
      location.assign(`/architectures/${arch.id}`);
    } catch (err) {
      MU.notice(status, "error", err.message);
    } finally {
      button.disabled = false;
    }
  });

  validate().finally(MU.ready);
})();
