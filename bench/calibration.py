"""Calibration of the intervals, measured: a simulation over ladder designs, and rolling-origin backtests on
the project's real CPU ladders (protocol and pass criteria: bench/PROTOCOL.md).

    python bench/calibration.py                     # -> bench/results/calibration_cpu.txt
    python bench/calibration.py --replicates 200    # a quicker, rougher look

(a) For each design, ladders are drawn from a known law with multiplicative noise and (optionally) a seed
effect shared across widths; each is fitted (seed labels given) and asked both questions at 2×, 7× and
30× the largest proxy. Coverage is counted against the truth (`expected`) and against a fresh run with
its own seed (`run`). (b) On the real ladders, every origin fits the k smallest widths and predicts the
larger ones; errors are set against two baselines.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import predictor  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TRUTH = {"E": 1.744, "A": 17.66, "alpha": 0.449}
LEVELS = (0.5, 0.8, 0.9, 0.95)
TARGETS = (2.0, 7.0, 30.0)
QUESTIONS = ("expected", "run")
METHODS = ("delta", "profile")


def law(n: np.ndarray | float) -> np.ndarray:
    return np.asarray(TRUTH["E"] + TRUTH["A"] * np.asarray(n, dtype=float) ** -TRUTH["alpha"])


@dataclass(frozen=True)
class Design:
    widths: int
    seeds: int
    sigma: float
    seed_effect: float  # as a multiple of sigma
    targets: tuple[float, ...] = TARGETS

    @property
    def label(self) -> str:
        return (
            f"{self.widths} widths × {self.seeds} seeds, σ {self.sigma:.2%}, "
            f"seed effect {self.seed_effect:g}σ"
        )


def simulate(design: Design, replicates: int, profiled: int, rng: np.random.Generator) -> dict[str, object]:
    """Per-replicate hits for (method, question, target, level) and the 90 % half-widths, over
    `replicates` ladders; the profile method answers the first `profiled` of them."""
    widths = np.geomspace(8, 48, design.widths)
    n = np.repeat(24 * widths**2, design.seeds)
    labels = np.tile(np.arange(design.seeds), design.widths)
    largest = float(n.max())
    hits: dict[tuple[str, str, float, float], list[bool]] = defaultdict(list)
    half: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for replicate in range(replicates):
        shift = rng.normal(0.0, design.seed_effect * design.sigma, design.seeds)
        y = law(n) * np.exp(shift[labels] + design.sigma * rng.standard_normal(len(n)))
        fit = predictor.fit(n, y, seeds=labels if design.seeds > 1 else None)
        methods = METHODS if replicate < profiled else METHODS[:1]
        for factor in design.targets:
            target = largest * factor
            truth = float(law(target))
            new_run = truth * np.exp(
                rng.normal(0.0, design.seed_effect * design.sigma) + design.sigma * rng.standard_normal()
            )
            for method, question, level in itertools.product(methods, QUESTIONS, LEVELS):
                observed = truth if question == "expected" else new_run
                p = fit.predict(target, level=level, interval=question, method=method)
                hits[(method, question, factor, level)].append(bool(p.lower <= observed <= p.upper))
                if level == 0.9:
                    half[(method, question, factor)].append(float((p.upper - p.lower) / 2 / p.mean))
    return {"hits": hits, "half": half}


def _rate(
    hits: dict[tuple[str, str, float, float], list[bool]],
    key_prefix: tuple[str, str],
    factors: tuple[float, ...],
    level: float,
    first: int | None = None,
) -> tuple[int, int]:
    """Hits and trials over the targets, for the first `first` replicates (all when None)."""
    got = [hits[(*key_prefix, f, level)][:first] for f in factors]
    return sum(sum(g) for g in got), sum(len(g) for g in got)


def simulation(replicates: int, profiled: int, seed: int) -> tuple[list[str], dict[str, float]]:
    designs = [
        Design(w, s, sigma, effect)
        for w, s, sigma, effect in itertools.product((4, 8), (1, 2, 4), (0.003, 0.01), (0.0, 0.5))
        if not (s == 1 and effect > 0)  # one seed: a seed effect is just more noise
    ]
    accuracy = Design(6, 4, 0.0081, 0.0, targets=(7.1,))
    rng = np.random.default_rng(seed)
    lines = [
        "(a) simulation: truth L = 1.744 + 17.66·N^(−0.449); widths 8…48 (N = 24 w²); targets at 2×, 7×, 30×",
        f"    delta method: {replicates} replicates per design; profile likelihood: the first {profiled} of "
        "them, with the delta method on the same ladders beside it (paired)",
        "    coverage at nominal "
        + ", ".join(f"{int(level * 100)}%" for level in LEVELS)
        + "; half-width: median of the 90% interval, relative to the prediction",
        "",
        f"    {'design':<45} {'method':<13} {'question':<9} "
        + " ".join(f"{int(level * 100):>5}%" for level in LEVELS)
        + "   half-width (2×/7×/30×)",
    ]
    # pooled[(method label, question, level)] = [hits, trials]; "delta" over every replicate, the paired
    # pair over the profiled ones.
    pooled: dict[tuple[str, str, float], list[int]] = defaultdict(lambda: [0, 0])
    hardest: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    rows = (("delta", "delta", None), ("delta/paired", "delta", profiled), ("profile", "profile", None))
    for design in designs:
        out = simulate(design, replicates, profiled, rng)
        hits, half = out["hits"], out["half"]
        assert isinstance(hits, dict) and isinstance(half, dict)
        for question in QUESTIONS:
            for label, method, first in rows:
                coverage = []
                for level in LEVELS:
                    hit, total = _rate(hits, (method, question), design.targets, level, first)
                    coverage.append(hit / total)
                    counts = pooled[(label, question, level)]
                    counts[0] += hit
                    counts[1] += total
                    if level == 0.9 and design.widths == 4 and design.seeds == 1:
                        worst = hardest[(label, question)]
                        worst[0] += hit
                        worst[1] += total
                widths = "/".join(
                    f"{statistics.median(half[(method, question, f)][:first]):.2%}" for f in design.targets
                )
                lines.append(
                    f"    {design.label:<45} {label:<13} {question:<9} "
                    + " ".join(f"{c:>6.1%}" for c in coverage)
                    + f"   {widths}"
                )
    lines.append("")
    summary: dict[str, float] = {}
    for label, _, _ in rows:
        for question in QUESTIONS:
            row = []
            errors = []
            for level in LEVELS:
                hit, total = pooled[(label, question, level)]
                row.append(f"{hit / total:.1%} ({hit}/{total})")
                summary[f"{label}:{question}@{level}"] = hit / total
                errors.append(abs(hit / total - level))
            summary[f"{label}:{question}:abs_error"] = float(np.mean(errors))
            hit, total = hardest[(label, question)]
            summary[f"{label}:{question}:hardest"] = hit / total
            lines.append(
                f"    pooled, {label:<13} {question:<9}: "
                + "; ".join(f"{int(level * 100)}% → {r}" for level, r in zip(LEVELS, row, strict=True))
                + f"; mean |coverage − nominal| {np.mean(errors):.2%}"
                + f"; 4 widths × 1 seed at 90% {hit / total:.1%}"
            )
    out = simulate(accuracy, replicates, profiled, rng)
    hits, half = out["hits"], out["half"]
    assert isinstance(hits, dict) and isinstance(half, dict)
    lines.append("")
    for label, method, first in rows:
        acc_half = statistics.median(half[(method, "expected", 7.1)][:first])
        summary[f"{label}:accuracy_half_width"] = acc_half
        expected_hit, trials = _rate(hits, (method, "expected"), (7.1,), 0.9, first)
        run_hit, _ = _rate(hits, (method, "run"), (7.1,), 0.9, first)
        lines.append(
            f"    the accuracy design ({accuracy.label}, 7.1×), {label}: expected-loss coverage at 90% "
            f"{expected_hit / trials:.1%}, one new run {run_hit / trials:.1%}; median half-width "
            f"{acc_half:.2%} (expected), {statistics.median(half[(method, 'run', 7.1)][:first]):.2%} (run)"
        )
    return lines, summary


def load_ladders(cache: Path) -> list[tuple[str, list[dict[str, object]]]]:
    """The ladders in the accuracy bench's run cache, one per spec (recipe), with their LR."""
    by_spec: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in cache.read_text().splitlines():
        row = json.loads(line)
        if row.get("status") == "succeeded" and row.get("val_loss") is not None:
            by_spec[str(row["spec_hash"])].append(row)
    return [(f"ladder at lr {rows[0].get('lr', 0.01)}", rows) for rows in by_spec.values() if len(rows) >= 20]


# What a rolling-origin fit counts as N: the shipped basis, or total parameters (amendment 2). "≥ 4×" is
# measured in non-embedding N under either, so both bases are judged on the same predictions.
BASES = {"non-embedding": "n_params_non_embedding", "total": "n_params"}


def backtests(
    ladders: list[tuple[str, list[dict[str, object]]]], source: str, basis: str = "non-embedding"
) -> tuple[list[str], dict[str, float]]:
    """Rolling-origin backtests of `ladders` (name, result rows), the fit in `basis` parameters."""
    column = BASES[basis]
    lines = [
        f"(b) rolling-origin backtests on the real CPU ladders ({source})"
        + ("" if basis == "non-embedding" else f", fitted in {basis} parameters"),
        "    origin k: fit on the k smallest widths (every seed), predict every larger width",
        "",
    ]
    errors_far: list[float] = []
    signed_far: list[float] = []
    counts = {f"{q} ({m})": [0, 0] for m in METHODS for q in QUESTIONS}
    for name, rows in ladders:
        widths = sorted({int(r["width"]) for r in rows})  # type: ignore[call-overload]
        lines.append(f"    {name}: widths {widths}, {len(rows)} runs")
        lines.append(
            f"      {'fit on':<14} {'width':>5} {'×N':>6} {'measured':>9} {'predicted':>9} {'error':>7} "
            f"{'share of gain':>13} {'no-gain err':>11} {'power err':>9} {'expected':>8} {'runs':>6} "
            f"{'winkler':>8}"
        )
        for k in range(4, len(widths)):
            fitted = [r for r in rows if int(r["width"]) in widths[:k]]  # type: ignore[call-overload]
            n = np.array([float(r[column]) for r in fitted])  # type: ignore[arg-type]
            y = np.array([float(r["val_loss"]) for r in fitted])  # type: ignore[arg-type]
            seeds = np.array([int(r["seed"]) for r in fitted])  # type: ignore[call-overload]
            fit = predictor.fit(n, y, seeds=seeds)
            power = predictor.fit(n, y, law="power", seeds=seeds)
            top = n.max()
            top_mean = float(y[n == top].mean())
            top_non_embedding = max(float(r["n_params_non_embedding"]) for r in fitted)  # type: ignore[arg-type]
            for width in widths[k:]:
                held = [r for r in rows if int(r["width"]) == width]  # type: ignore[call-overload]
                target = float(held[0][column])  # type: ignore[arg-type]
                singles = np.array([float(r["val_loss"]) for r in held])  # type: ignore[arg-type]
                measured = float(singles.mean())
                expected = fit.predict(target, interval="expected")
                run = fit.predict(target, interval="run")
                error = (float(expected.mean) - measured) / measured
                gain = top_mean - float(expected.mean)
                share = abs(float(expected.mean) - measured) / gain if gain > 0 else float("nan")
                no_gain = (top_mean - measured) / measured
                power_err = (float(power.predict(target).mean) - measured) / measured
                covered = expected.lower <= measured <= expected.upper
                run_hits = int(np.sum((run.lower <= singles) & (singles <= run.upper)))
                for method in METHODS:
                    e = fit.predict(target, interval="expected", method=method)
                    r = fit.predict(target, interval="run", method=method)
                    counts[f"expected ({method})"][0] += int(e.lower <= measured <= e.upper)
                    counts[f"expected ({method})"][1] += 1
                    counts[f"run ({method})"][0] += int(np.sum((r.lower <= singles) & (singles <= r.upper)))
                    counts[f"run ({method})"][1] += len(singles)
                winkler = _winkler(float(expected.lower), float(expected.upper), measured, 0.9) / measured
                factor = float(held[0]["n_params_non_embedding"]) / top_non_embedding  # type: ignore[arg-type]
                if factor >= 4:
                    errors_far.append(abs(error))
                    signed_far.append(error)
                lines.append(
                    f"      {str(widths[:k][0]) + '…' + str(widths[k - 1]):<14} {width:>5} {factor:>6.1f} "
                    f"{measured:>9.4f} {float(expected.mean):>9.4f} {error:>+7.2%} {share:>13.2f} "
                    f"{no_gain:>+11.2%} {power_err:>+9.2%} {'yes' if covered else 'NO':>8} "
                    f"{run_hits}/{len(singles):<4} {winkler:>8.4f}"
                )
        lines.append("")
    summary = {
        "median_error_far": statistics.median(errors_far) if errors_far else float("nan"),
        "n_far": float(len(errors_far)),
        "negative_far": float(sum(e < 0 for e in signed_far)),
        "positive_far": float(sum(e > 0 for e in signed_far)),
    }
    for question, (hit, total) in counts.items():
        lines.append(f"    coverage at 90%, {question}: {hit}/{total} ({hit / max(total, 1):.0%})")
        summary[f"real_{question}"] = hit / max(total, 1)
    lines.append(
        f"    median |error| at ≥ 4× in N: {summary['median_error_far']:.2%} "
        f"over {len(errors_far)} predictions"
    )
    return lines, summary


def _winkler(lower: float, upper: float, observed: float, level: float) -> float:
    """The interval score (Winkler 1972; Gneiting & Raftery 2007, §6.2): width plus 2/α × any miss."""
    alpha = 1 - level
    return (upper - lower) + (2 / alpha) * max(lower - observed, 0.0, observed - upper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--profiled", type=int, default=200, help="replicates the profile method answers too")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=RESULTS / "calibration_cpu.txt")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sim_lines, sim = simulation(args.replicates, min(args.profiled, args.replicates), args.seed)
    cache = RESULTS / "accuracy_cpu.runs.jsonl"
    real_lines, real = backtests(load_ladders(cache), "bench/results/accuracy_cpu.runs.jsonl")
    checks = [
        (
            "1. pooled coverage at 90% within [87%, 93%], both questions (delta method)",
            all(0.87 <= sim[f"delta:{q}@0.9"] <= 0.93 for q in QUESTIONS),
            f"expected {sim['delta:expected@0.9']:.1%}, run {sim['delta:run@0.9']:.1%}",
        ),
        (
            "2. accuracy design: median half-width of the expected interval at 7× ≤ 1.8% (delta method)",
            sim["delta:accuracy_half_width"] <= 0.018,
            f"{sim['delta:accuracy_half_width']:.2%}",
        ),
        (
            "3. real ladders: median |error| at ≥ 4× ≤ 1%",
            real["median_error_far"] <= 0.01,
            f"{real['median_error_far']:.2%} over {int(real['n_far'])} predictions",
        ),
    ]
    # Amendment 1's decision rule: profile or delta as the default, on the paired ladders.
    rule = [
        (
            "(i) profile's pooled 90% coverage in [87%, 93%], both questions",
            all(0.87 <= sim[f"profile:{q}@0.9"] <= 0.93 for q in QUESTIONS),
            ", ".join(f"{q} {sim[f'profile:{q}@0.9']:.1%}" for q in QUESTIONS),
        ),
        (
            "(ii) mean |coverage − nominal| smaller than the delta method's",
            sum(sim[f"profile:{q}:abs_error"] for q in QUESTIONS)
            < sum(sim[f"delta/paired:{q}:abs_error"] for q in QUESTIONS),
            ", ".join(
                f"{q} {sim[f'profile:{q}:abs_error']:.2%} vs {sim[f'delta/paired:{q}:abs_error']:.2%}"
                for q in QUESTIONS
            ),
        ),
        (
            "(iii) 4 widths × 1 seed: 90% coverage at least as close to 90%, both questions",
            all(
                abs(sim[f"profile:{q}:hardest"] - 0.9) <= abs(sim[f"delta/paired:{q}:hardest"] - 0.9)
                for q in QUESTIONS
            ),
            ", ".join(
                f"{q} {sim[f'profile:{q}:hardest']:.1%} vs {sim[f'delta/paired:{q}:hardest']:.1%}"
                for q in QUESTIONS
            ),
        ),
        (
            "(iv) profile's median half-width at the accuracy design ≤ 1.8%",
            sim["profile:accuracy_half_width"] <= 0.018,
            f"{sim['profile:accuracy_half_width']:.2%}",
        ),
    ]
    choice = "profile" if all(ok for _, ok, _ in rule) else "delta"
    lines = [
        "calibration (python bench/calibration.py "
        f"--replicates {args.replicates} --profiled {args.profiled}), "
        f"measured {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        *sim_lines,
        "",
        *real_lines,
        "",
        "criteria (bench/PROTOCOL.md):",
        *[f"    {name}: {'PASS' if ok else 'FAIL'} ({figure})" for name, ok, figure in checks],
        "default method (amendment 1's rule, profile vs delta on the paired ladders):",
        *[f"    {name}: {'yes' if ok else 'no'} ({figure})" for name, ok, figure in rule],
        f"    → {choice}",
        f"wall time {time.perf_counter() - started:.0f} s",
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text, end="")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
