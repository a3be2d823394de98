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


def simulate(design: Design, replicates: int, rng: np.random.Generator) -> dict[str, object]:
    """Coverage per (question, target, level) and the 90 % half-widths, over `replicates` ladders."""
    widths = np.geomspace(8, 48, design.widths)
    n = np.repeat(24 * widths**2, design.seeds)
    labels = np.tile(np.arange(design.seeds), design.widths)
    largest = float(n.max())
    hits: dict[tuple[str, float, float], int] = defaultdict(int)
    half: dict[tuple[str, float], list[float]] = defaultdict(list)
    for _ in range(replicates):
        shift = rng.normal(0.0, design.seed_effect * design.sigma, design.seeds)
        y = law(n) * np.exp(shift[labels] + design.sigma * rng.standard_normal(len(n)))
        fit = predictor.fit(n, y, seeds=labels if design.seeds > 1 else None)
        for factor in design.targets:
            target = largest * factor
            truth = float(law(target))
            new_run = truth * np.exp(
                rng.normal(0.0, design.seed_effect * design.sigma) + design.sigma * rng.standard_normal()
            )
            for question in QUESTIONS:
                observed = truth if question == "expected" else new_run
                for level in LEVELS:
                    p = fit.predict(target, level=level, interval=question)
                    hits[(question, factor, level)] += p.lower <= observed <= p.upper
                    if level == 0.9:
                        half[(question, factor)].append((p.upper - p.lower) / 2 / p.mean)
    return {"hits": hits, "half": half, "replicates": replicates}


def simulation(replicates: int, seed: int) -> tuple[list[str], dict[str, float]]:
    designs = [
        Design(w, s, sigma, effect)
        for w, s, sigma, effect in itertools.product((4, 8), (1, 2, 4), (0.003, 0.01), (0.0, 0.5))
        if not (s == 1 and effect > 0)  # one seed: a seed effect is just more noise
    ]
    accuracy = Design(6, 4, 0.0081, 0.0, targets=(7.1,))
    rng = np.random.default_rng(seed)
    lines = [
        "(a) simulation: truth L = 1.744 + 17.66·N^(−0.449); widths 8…48 (N = 24 w²); targets at 2×, 7×, 30×",
        f"    {replicates} replicates per design; coverage at nominal "
        + ", ".join(f"{int(level * 100)}%" for level in LEVELS)
        + "; half-width: median of the 90% interval, relative to the prediction",
        "",
        f"    {'design':<44} {'question':<9} "
        + " ".join(f"{int(level * 100):>5}%" for level in LEVELS)
        + "   half-width (2×/7×/30×)",
    ]
    pooled: dict[tuple[str, float], list[int]] = defaultdict(lambda: [0, 0])
    for design in designs:
        out = simulate(design, replicates, rng)
        hits, half = out["hits"], out["half"]
        assert isinstance(hits, dict) and isinstance(half, dict)
        total = replicates * len(design.targets)
        for question in QUESTIONS:
            coverage = [sum(hits[(question, f, lv)] for f in design.targets) / total for lv in LEVELS]
            for level in LEVELS:
                counts = pooled[(question, level)]
                counts[0] += sum(hits[(question, f, level)] for f in design.targets)
                counts[1] += total
            widths = "/".join(f"{statistics.median(half[(question, f)]):.2%}" for f in design.targets)
            lines.append(
                f"    {design.label:<44} {question:<9} "
                + " ".join(f"{c:>6.1%}" for c in coverage)
                + f"   {widths}"
            )
    lines.append("")
    summary: dict[str, float] = {}
    for question in QUESTIONS:
        row = []
        for level in LEVELS:
            hit, total = pooled[(question, level)]
            row.append(f"{hit / total:.1%} ({hit}/{total})")
            summary[f"{question}@{level}"] = hit / total
        lines.append(
            f"    pooled, {question:<9}: "
            + "; ".join(f"{int(level * 100)}% → {r}" for level, r in zip(LEVELS, row, strict=True))
        )
    out = simulate(accuracy, replicates, rng)
    hits, half = out["hits"], out["half"]
    assert isinstance(hits, dict) and isinstance(half, dict)
    acc_half = statistics.median(half[("expected", 7.1)])
    summary["accuracy_half_width"] = acc_half
    lines += [
        "",
        f"    the accuracy design ({accuracy.label}, 7.1×): expected-loss coverage at 90% "
        f"{hits[('expected', 7.1, 0.9)] / replicates:.1%}, "
        f"one new run {hits[('run', 7.1, 0.9)] / replicates:.1%}; "
        f"median half-width {acc_half:.2%} (expected), {statistics.median(half[('run', 7.1)]):.2%} (run)",
    ]
    return lines, summary


def load_ladders(cache: Path) -> list[tuple[str, list[dict[str, object]]]]:
    """The ladders in the accuracy bench's run cache, one per spec (recipe), with their LR."""
    by_spec: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in cache.read_text().splitlines():
        row = json.loads(line)
        if row.get("status") == "succeeded" and row.get("val_loss") is not None:
            by_spec[str(row["spec_hash"])].append(row)
    return [(f"ladder at lr {rows[0].get('lr', 0.01)}", rows) for rows in by_spec.values() if len(rows) >= 20]


def backtests(cache: Path) -> tuple[list[str], dict[str, float]]:
    lines = [
        "(b) rolling-origin backtests on the real CPU ladders (bench/results/accuracy_cpu.runs.jsonl)",
        "    origin k: fit on the k smallest widths (every seed), predict every larger width",
        "",
    ]
    errors_far: list[float] = []
    counts = {"expected": [0, 0], "run": [0, 0]}
    for name, rows in load_ladders(cache):
        widths = sorted({int(r["width"]) for r in rows})  # type: ignore[call-overload]
        lines.append(f"    {name}: widths {widths}, {len(rows)} runs")
        lines.append(
            f"      {'fit on':<14} {'width':>5} {'×N':>6} {'measured':>9} {'predicted':>9} {'error':>7} "
            f"{'share of gain':>13} {'no-gain err':>11} {'power err':>9} {'expected':>8} {'runs':>6} "
            f"{'winkler':>8}"
        )
        for k in range(4, len(widths)):
            fitted = [r for r in rows if int(r["width"]) in widths[:k]]  # type: ignore[call-overload]
            n = np.array([float(r["n_params_non_embedding"]) for r in fitted])  # type: ignore[arg-type]
            y = np.array([float(r["val_loss"]) for r in fitted])  # type: ignore[arg-type]
            seeds = np.array([int(r["seed"]) for r in fitted])  # type: ignore[call-overload]
            fit = predictor.fit(n, y, seeds=seeds)
            power = predictor.fit(n, y, law="power", seeds=seeds)
            top = n.max()
            top_mean = float(y[n == top].mean())
            for width in widths[k:]:
                held = [r for r in rows if int(r["width"]) == width]  # type: ignore[call-overload]
                target = float(held[0]["n_params_non_embedding"])  # type: ignore[arg-type]
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
                counts["expected"][0] += int(covered)
                counts["expected"][1] += 1
                counts["run"][0] += run_hits
                counts["run"][1] += len(singles)
                winkler = _winkler(expected.lower, expected.upper, measured, 0.9) / measured
                factor = target / top
                if factor >= 4:
                    errors_far.append(abs(error))
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
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=RESULTS / "calibration_cpu.txt")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sim_lines, sim = simulation(args.replicates, args.seed)
    real_lines, real = backtests(RESULTS / "accuracy_cpu.runs.jsonl")
    checks = [
        (
            "1. pooled coverage at 90% within [87%, 93%], both questions",
            all(0.87 <= sim[f"{q}@0.9"] <= 0.93 for q in QUESTIONS),
            f"expected {sim['expected@0.9']:.1%}, run {sim['run@0.9']:.1%}",
        ),
        (
            "2. accuracy design: median half-width of the expected interval at 7× ≤ 1.8%",
            sim["accuracy_half_width"] <= 0.018,
            f"{sim['accuracy_half_width']:.2%}",
        ),
        (
            "3. real ladders: median |error| at ≥ 4× ≤ 1%",
            real["median_error_far"] <= 0.01,
            f"{real['median_error_far']:.2%} over {int(real['n_far'])} predictions",
        ),
    ]
    lines = [
        f"calibration (python bench/calibration.py --replicates {args.replicates}), "
        f"measured {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        *sim_lines,
        "",
        *real_lines,
        "",
        "criteria (bench/PROTOCOL.md):",
        *[f"    {name}: {'PASS' if ok else 'FAIL'} ({figure})" for name, ok, figure in checks],
        f"wall time {time.perf_counter() - started:.0f} s",
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text, end="")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
