"""Calibration amendment 2 (bench/PROTOCOL.md): the rolling-origin backtest of bench/calibration.py, part
(b), replicated on two fresh ladders of the accuracy recipe, with the fit in non-embedding N (the shipped
basis) and in total parameters side by side.

    python bench/backtest_replication.py            # -> bench/results/backtest_replication_cpu.txt
    python bench/backtest_replication.py --profile long   # amendment 3: one ladder trained 4× longer
    python bench/backtest_replication.py --profile width-lr   # amendment 4: each width at its own LR
    python bench/backtest_replication.py --profile depth4   # amendment 5: R3 at 4 layers (CompleteP)
    python bench/backtest_replication.py --profile knee   # amendment 6: the fixed-D slice of the kaplan law
    python bench/backtest_replication.py --profile knee-depth4   # amendment 7: the slice at 4 layers
    python bench/backtest_replication.py --profile knee-short4   # amendment 8: the product's slice
    python bench/backtest_replication.py --profile knee-lr4   # amendment 9: at 4 layers and η*/√2
    python bench/backtest_replication.py --profile knee-deep6   # amendment 10: the default law, 6 layers
    python bench/backtest_replication.py --profile slice-floor   # amendment 10's note: trains nothing
    python bench/backtest_replication.py --profile slice-power   # amendment 11's design: trains nothing
    python bench/backtest_replication.py --profile knee-seeds8   # amendment 11: R8's recipe, 8 seeds

Trained runs are appended to bench/results/backtest_replication_cpu.runs.jsonl, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import predictor  # noqa: E402
import trainer  # noqa: E402
from bench.accuracy import PROFILES, machine  # noqa: E402
from bench.calibration import BASES, backtests, load_ladders  # noqa: E402
from bench.horizon import PROFILES as HORIZON_PROFILES  # noqa: E402
from bench.tuning_runs import CachedTuner, bench_parser, default_jobs, fit_rows  # noqa: E402
from predictor.fitting import LACK_OF_FIT_P  # noqa: E402
from trainer.tuning import Point, Shape  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ETA_STAR = 0.0166  # the accuracy ladder's tuned η* (bench/results/accuracy_cpu.txt)
# (name, lr, fitted widths' seeds); the held-out widths 96 and 128 take the first three seeds.
LADDERS = (
    ("R1 at η* (lr 0.0166)", ETA_STAR, (10, 11, 12, 13)),
    ("R2 at η*/√2 (lr 0.0117)", 0.0117, (20, 21, 22, 23)),
)
# Calibration amendment 3: the same recipe trained 4× longer (6,000 steps, 6.1M tokens a run), so the far
# widths are no longer starved of tokens per parameter; same η*, fresh seeds.
LONG_STEPS = 6000
LONG_LADDERS = (("R3 at η* (lr 0.0166), 6,000 steps", ETA_STAR, (30, 31, 32, 33)),)
R1_FAR_MEDIAN = 0.0304  # R1's six errors at ≥ 4× in backtest_replication_cpu.txt (amendment 3, criterion E)
# Calibration amendment 4: each width at the LR the μP transfer check's fit gives it on this recipe
# (bench/results/mup_transfer_cpu.txt: slope +0.219 of log2 η* per doubling of width), fresh seeds.
WIDTH_LR_SLOPE = 0.219


def width_lr(width: int) -> float:
    """Amendment 4's LR at a width, to 3 significant digits like a sweep's η*."""
    return float(f"{ETA_STAR * (width / 16) ** WIDTH_LR_SLOPE:.3g}")


WIDTH_LR_LADDERS = (("R4 at η(w) = 0.0166 · (w/16)^0.219", width_lr, (40, 41, 42, 43)),)
# Calibration amendment 5: R3 exactly (steps, LR, seeds, so the batch order matches run for run) but 4 layers
# under CompleteP from the 2-layer base, whose η* at depth 4 on this recipe is 0.0159 (depth_cpu.txt, α = 1).
DEPTH4 = {"n_layers": 4, "parametrization": {"base_width": 16, "base_depth": 2, "depth_alpha": 1.0}}
DEPTH4_LADDERS = (("R5 at η* (lr 0.0166), 6,000 steps, 4 layers (CompleteP)", ETA_STAR, (30, 31, 32, 33)),)
R3_FAR_MEDIAN = (
    0.0988  # R3's six errors at ≥ 4× in backtest_replication_cpu-long.txt (amendment 5, criterion I)
)
# Calibration amendment 6: R3's recipe with fresh seeds, to test the fixed-D slice of the kaplan law.
KNEE_LADDERS = (("R6 at η* (lr 0.0166), 6,000 steps, seeds 50-53", ETA_STAR, (50, 51, 52, 53)),)
# Calibration amendment 7: R5's recipe (4 layers, CompleteP) with fresh seeds, the same slice analysis.
KNEE_DEPTH4_LADDERS = (
    ("R7 at η* (lr 0.0166), 6,000 steps, 4 layers (CompleteP), seeds 60-63", ETA_STAR, (60, 61, 62, 63)),
)
# Calibration amendment 8: R7's recipe (4 layers, CompleteP) at the accuracy recipe's 1,500 steps, fresh
# seeds; the product's kaplan_slice law beside the shipped one.
KNEE_SHORT4_LADDERS = (
    ("R8 at η* (lr 0.0166), 1,500 steps, 4 layers (CompleteP), seeds 70-73", ETA_STAR, (70, 71, 72, 73)),
)
# Calibration amendment 9: R8's recipe at R2's LR (η*/√2), fresh seeds; amendment 8's analysis.
KNEE_LR4_LADDERS = (
    ("R9 at η*/√2 (lr 0.0117), 1,500 steps, 4 layers (CompleteP), seeds 80-83", 0.0117, (80, 81, 82, 83)),
)
# Calibration amendment 10: R8's recipe at 6 layers (CompleteP from the same 2-layer base), fresh seeds; the
# slice is the law the default-law rule picks for it (4 layers or more, and a grid).
DEPTH6 = {**DEPTH4, "n_layers": 6}
KNEE_DEEP6_LADDERS = (
    ("R10 at η* (lr 0.0166), 1,500 steps, 6 layers (CompleteP), seeds 90-93", ETA_STAR, (90, 91, 92, 93)),
)
# Calibration amendment 11: R8's recipe (the product's: 4 layers, CompleteP, 1,500 steps, η*) with twice the
# seeds, 8 at the fitted widths and 6 at the held-out ones, so one ladder can decide criterion 3 more often.
SEEDS8_LADDERS = (
    (
        "R11 at η* (lr 0.0166), 1,500 steps, 4 layers (CompleteP), seeds 100-107",
        ETA_STAR,
        tuple(range(100, 108)),
    ),
)
SEEDS8_FAR = 6  # seeds at the held-out widths 96 and 128
POWER_DESIGNS = ((4, 3), (8, SEEDS8_FAR))  # (seeds at fitted widths, at held-out widths) in the power check
POWER_DRAWS = 300
# Every fresh ladder on record, in the order trained: (run cache, ladders, steps, spec overrides,
# seeds at the held-out widths).
ON_RECORD = (
    (RESULTS / "backtest_replication_cpu.runs.jsonl", LADDERS, None, None, 3),
    (RESULTS / "backtest_replication_cpu-long.runs.jsonl", LONG_LADDERS, LONG_STEPS, None, 3),
    (RESULTS / "backtest_replication_cpu-width-lr.runs.jsonl", WIDTH_LR_LADDERS, None, None, 3),
    (RESULTS / "backtest_replication_cpu-depth4.runs.jsonl", DEPTH4_LADDERS, LONG_STEPS, DEPTH4, 3),
    (RESULTS / "backtest_replication_cpu-knee.runs.jsonl", KNEE_LADDERS, LONG_STEPS, None, 3),
    (RESULTS / "backtest_replication_cpu-knee-depth4.runs.jsonl", KNEE_DEPTH4_LADDERS, LONG_STEPS, DEPTH4, 3),
    (RESULTS / "backtest_replication_cpu-knee-short4.runs.jsonl", KNEE_SHORT4_LADDERS, None, DEPTH4, 3),
    (RESULTS / "backtest_replication_cpu-knee-lr4.runs.jsonl", KNEE_LR4_LADDERS, None, DEPTH4, 3),
    (RESULTS / "backtest_replication_cpu-knee-deep6.runs.jsonl", KNEE_DEEP6_LADDERS, None, DEPTH6, 3),
    (RESULTS / "backtest_replication_cpu-knee-seeds8.runs.jsonl", SEEDS8_LADDERS, None, DEPTH4, SEEDS8_FAR),
)
NULL_DRAWS = 400  # simulated ladders per real ladder in the noise-floor check (amendment 5)
FLOOR_DRAWS = 1000  # the same for the slice's floor (amendment 10's note)


def train(
    tuner: CachedTuner,
    ladders: tuple[tuple[str, float | Callable[[int], float], tuple[int, ...]], ...] = LADDERS,
    steps: int | None = None,
    overrides: dict[str, Any] | None = None,
    far: int = 3,
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each (name, LR, seeds) ladder of the accuracy recipe (trained `steps` steps when given, with the
    top-level spec fields in `overrides` replaced); the LR is one value for every width, or a function of
    the width. The held-out widths take the first `far` seeds."""
    profile = PROFILES["cpu"]
    raw = {**profile.spec, **(overrides or {})}
    if steps is not None:
        raw = {**raw, "training": {**raw["training"], "steps": steps}}  # type: ignore[dict-item]
    spec = trainer.ArchitectureSpec.model_validate(raw)
    trained = []
    for name, lr, seeds in ladders:
        lr_at = lr if callable(lr) else (lambda _width, value=lr: value)
        # Every seed at the fitted widths, the first `far` at the held-out ones.
        plan = [(w, s) for w in profile.fit_widths for s in seeds]
        plan += [(w, s) for w in profile.holdout_widths for s in seeds[:far]]
        points = [Point(Shape(w, spec.n_layers), 0.0, s, lr_at(w)) for w, s in plan]
        rows = tuner.train(spec, points)
        # The tuner's rows name the LR and width; the rolling-origin backtest also needs each run's seed.
        trained.append((name, [{**row, "seed": p.seed} for p, row in zip(points, rows, strict=True)]))
    for name, rows in trained:
        failed = [r for r in rows if r["status"] != "succeeded"]
        if failed:
            raise SystemExit(f"{name}: {len(failed)} run(s) did not succeed; the protocol has no rule for it")
    return trained


def on_record(count: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """The first `count` entries of ON_RECORD, read back from their run caches (never retrained here; an
    entry whose cache is absent is left out)."""
    ladders = []
    for cache, specs, steps, overrides, far in ON_RECORD[:count]:
        if cache.exists():
            ladders += train(CachedTuner(cache, "cpu", 1, cached_only=True), specs, steps, overrides, far)
    return ladders


def holdout_lines(ladders: list[tuple[str, list[dict[str, object]]]]) -> list[str]:
    """What the product's holdout check (predictor.hold_out_largest, shown with every fit) said at each
    origin with ≥ 5 widths, beside the errors that origin's fit then made at ≥ 4×: whether a miss of the
    check warned of the far misses. Reported, not judged: no criterion was written for it."""
    lines = [
        "    the product's holdout check at each origin (fit in non-embedding N, as shipped), beside that "
        "fit's errors at ≥ 4×:"
    ]
    for name, rows in ladders:
        widths = sorted({int(r["width"]) for r in rows})
        for k in range(5, len(widths)):
            fitted = [r for r in rows if int(r["width"]) in widths[:k]]
            n = np.array([float(r["n_params_non_embedding"]) for r in fitted])
            y = np.array([float(r["val_loss"]) for r in fitted])
            seeds = np.array([int(r["seed"]) for r in fitted])
            check = predictor.hold_out_largest(n, y, seeds=seeds)
            fit = predictor.fit(n, y, seeds=seeds)
            far = []
            for width in widths[k:]:
                held = [r for r in rows if int(r["width"]) == width]
                target = float(held[0]["n_params_non_embedding"])
                if target / n.max() >= 4:
                    measured = float(np.mean([float(r["val_loss"]) for r in held]))
                    far.append(f"{float(fit.predict(target).mean) / measured - 1:+.2%}")
            assert check is not None  # 5 widths leave 4 for a 3-parameter law
            lines.append(
                f"      {name}, fit on {widths[0]}…{widths[k - 1]}: check {check.error:+.2%} "
                f"({'inside' if check.inside else 'MISSED'}); errors at ≥ 4×: {', '.join(far) or 'none'}"
            )
    return lines


def report_head(
    profile: str, recipe: str, ladders: list[tuple[str, list[dict[str, Any]]]]
) -> tuple[list[str], dict[str, dict[str, float]]]:
    """A one-ladder report's heading and its rolling-origin backtests in every basis, with their summaries."""
    rows = ladders[0][1]
    counts = {w: sum(int(r["width"]) == w for r in rows) for w in sorted({int(r["width"]) for r in rows})}
    fitted, held = PROFILES["cpu"].fit_widths, PROFILES["cpu"].holdout_widths
    lines = [
        f"backtest on one fresh ladder (python bench/backtest_replication.py --profile {profile}), "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine()}",
        f"a fresh ladder of the accuracy recipe {recipe}: widths {fitted[0]}…{fitted[-1]} × "
        f"{counts[fitted[0]]} seeds, {' and '.join(map(str, held))} × {counts[held[0]]} seeds",
        "",
    ]
    summaries = {}
    for basis in BASES:
        part, summaries[basis] = backtests(ladders, f"the ladder {ladders[0][0]}", basis)
        lines += [*part, ""]
    return lines, summaries


def finish(out: Path, lines: list[str], tuner: CachedTuner, started: float) -> int:
    """Close a report with what was trained and how long it took; write and print it."""
    lines = [
        *lines,
        f"runs trained now: {tuner.trained} ({tuner.seconds:.0f} s); "
        f"wall time {time.perf_counter() - started:.0f} s",
    ]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def one_ladder(tuner: CachedTuner, out: Path, started: float, profile: str) -> int:
    """Amendment 3 (`long`: the 6,000-step ladder, criteria D and E) or 4 (`width-lr`: each width at its
    own LR, criteria F and G): the rolling-origin backtest on one fresh ladder."""
    long = profile == "long"
    ladders = train(tuner, LONG_LADDERS, LONG_STEPS) if long else train(tuner, WIDTH_LR_LADDERS)
    cpu = PROFILES["cpu"]
    recipe = (
        f"trained {LONG_STEPS} steps (4× longer)"
        if long
        else "each width at its own LR, "
        + ", ".join(f"{w}: {width_lr(w)}" for w in (*cpu.fit_widths, *cpu.holdout_widths))
    )
    lines, summaries = report_head(profile, recipe, ladders)
    shipped = summaries["non-embedding"]
    above = int(shipped["positive_far"])
    first = shipped["median_error_far"] <= 0.01
    second = shipped["median_error_far"] < R1_FAR_MEDIAN / 2 and above >= 2
    a, b, what = ("D", "E", "the fixed-budget") if long else ("F", "G", "the width-LR")
    lines += [
        f"criteria (bench/PROTOCOL.md, calibration amendment {3 if long else 4}):",
        f"    {a}. shipped basis: median |error| at ≥ 4× ≤ 1%: {'PASS' if first else 'FAIL'} "
        f"({shipped['median_error_far']:.2%} over {int(shipped['n_far'])} predictions)",
        f"    {b}. {what} hypothesis: median below half R1's ({R1_FAR_MEDIAN:.2%} / 2) and at least "
        f"2 of the far errors above the measured loss ({above}): {'HOLDS' if second else 'REJECTED'}",
    ]
    return finish(out, lines, tuner, started)


def replicated(rows: list[dict[str, Any]], design: tuple[int, int]) -> list[dict[str, Any]]:
    """The ladder's widths with (seeds at the fitted widths, seeds at the held-out ones) runs each, as
    copies of its first run at each width under fresh seed labels: a design to redraw, not data."""
    held_out = PROFILES["cpu"].holdout_widths
    out = []
    for width in sorted({int(r["width"]) for r in rows}):
        first = next(r for r in rows if int(r["width"]) == width)
        count = design[1] if width in held_out else design[0]
        out += [{**first, "seed": 1000 + i} for i in range(count)]
    return out


def noise_floor(
    rows: list[dict[str, Any]],
    rng: np.random.Generator,
    gamma: float | None = None,
    draws: int = NULL_DRAWS,
    design: tuple[int, int] | None = None,
) -> dict[str, float]:
    """What criterion 3 can show on this ladder's design if the law were right (amendment 5): the law fitted
    on all its widths is taken as the truth, each run redrawn around it with independent log-normal noise
    at the ladder's pooled seed σ, and the rolling-origin backtest repeated `draws` times. With `gamma`
    the law is the slice in total parameters at that γ (amendment 10's note), else E + A·N^−α in
    non-embedding N; errors at ≥ 4× are counted in non-embedding N either way. With `design` (amendment
    11) the runs are redrawn on that many seeds per width instead of the ladder's own. Returns σ, the share
    of draws whose median |error| at ≥ 4× is ≤ 1 %, the median and 90th percentile of those medians, and
    the share whose far errors all share a sign."""
    sigma, errors = floor_errors(rows, rng, gamma, draws, design)
    medians = [float(np.median(np.abs(e))) for e in errors]
    one_signed = [all(x < 0 for x in e) or all(x > 0 for x in e) for e in errors]
    return {
        "sigma": sigma,
        "pass": float(np.mean(np.array(medians) <= 0.01)),
        "median": float(np.median(medians)),
        "q90": float(np.quantile(medians, 0.9)),
        "one_signed": float(np.mean(one_signed)),
    }


def floor_errors(
    rows: list[dict[str, Any]],
    rng: np.random.Generator,
    gamma: float | None = None,
    draws: int = NULL_DRAWS,
    design: tuple[int, int] | None = None,
) -> tuple[float, list[list[float]]]:
    """noise_floor's simulation: the ladder's pooled seed σ and, per draw, the signed errors at ≥ 4×
    (prediction / mean of the redrawn runs − 1), in the backtest's order."""
    truth = fit_rows(rows) if gamma is None else slice_fit(rows, {"gamma": gamma})
    if design is not None:
        rows = replicated(rows, design)
    n = np.array([float(r["n_params_non_embedding"]) for r in rows])
    x = n if gamma is None else np.array([float(r["n_params"]) for r in rows])
    seeds = np.array([int(r["seed"]) for r in rows])
    options: dict[str, Any] = {} if gamma is None else {"law": "kaplan_slice", "gamma": gamma}
    sigma = float(np.sqrt(truth.noise.pure_error))
    mean = np.asarray(truth.predict(x).mean, dtype=float)
    widths = np.unique(n)
    per_draw = []
    for _ in range(draws):
        drawn = mean * np.exp(sigma * rng.standard_normal(len(n)))
        errors = []
        for k in range(4, len(widths)):
            fitted = n <= widths[k - 1]
            far = widths[widths >= 4 * widths[k - 1]]
            if len(far) == 0:
                continue
            fit = predictor.fit(x[fitted], drawn[fitted], seeds=seeds[fitted], **options)
            for target in far:
                at = float(x[n == target][0])
                errors.append(float(fit.predict(at).mean) / float(drawn[n == target].mean()) - 1)
        per_draw.append(errors)
    return sigma, per_draw


def slice_power(out: Path, started: float) -> int:
    """Amendment 11's design check (`slice-power`; reads the run caches, trains nothing): on the two ladders
    on record of the product's recipe (R8, R9: 4 layers, 1,500 steps), how often an exact slice meets 1 %
    with 4 seeds (3 held out) and with 8 (6 held out)."""
    gamma = horizon_gamma()
    tuner = CachedTuner(out.with_suffix(".runs.jsonl"), "cpu", 1, cached_only=True)  # trains nothing
    lines = [
        f"amendment 11's design check (python bench/backtest_replication.py --profile slice-power), "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine()}",
        f"per ladder and design: the slice (γ {gamma:.4f}, total parameters) fitted on all the ladder's "
        f"widths taken as the truth, runs redrawn at its pooled seed σ on the design's seeds per width, the "
        f"rolling-origin backtest repeated {POWER_DRAWS} times",
        "",
    ]
    for name, rows in on_record(8)[-2:]:
        for design in POWER_DESIGNS:
            floor = noise_floor(rows, np.random.default_rng(7), gamma, POWER_DRAWS, design)
            lines.append(
                f"    {name[:3]} (σ {floor['sigma']:.2%} a run), {design[0]} seeds at widths 8…48, "
                f"{design[1]} at 96 and 128: ≤ 1% in {floor['pass']:.0%} of draws, "
                f"median {floor['median']:.2%}, 90th percentile {floor['q90']:.2%}"
            )
    return finish(out, lines, tuner, started)


def slice_floor(out: Path, started: float) -> int:
    """Amendment 10's note (`slice-floor`; reads the run caches, trains nothing): the slice's own noise
    floor on every ladder on record (R1-R11), beside each ladder's measured median |error| at ≥ 4×."""
    gamma = horizon_gamma()
    tuner = CachedTuner(out.with_suffix(".runs.jsonl"), "cpu", 1, cached_only=True)  # trains nothing
    ladders = on_record(len(ON_RECORD))
    lines = [
        f"the slice's noise floor (python bench/backtest_replication.py --profile slice-floor), "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine()}",
        f"per ladder: the slice (γ {gamma:.4f}, total parameters) fitted on all its widths taken as the "
        f"truth, runs redrawn at the ladder's pooled seed σ, the rolling-origin backtest repeated "
        f"{FLOOR_DRAWS} times; reported, not judged (computed after amendment 10's run)",
        "",
    ]
    rng = np.random.default_rng(2026)
    for name, rows in ladders:
        measured = float(np.median(np.abs(slice_backtest(name, rows, {"gamma": gamma})[1])))
        floor = noise_floor(rows, rng, gamma, FLOOR_DRAWS)
        lines.append(
            f"    {name}: σ {floor['sigma']:.2%} a run; measured {measured:.2%}; if the slice were exact: "
            f"≤ 1% in {floor['pass']:.0%} of draws, median {floor['median']:.2%}"
        )
    return finish(out, lines, tuner, started)


def depth_ladder(tuner: CachedTuner, out: Path, started: float) -> int:
    """Amendment 5 (`depth4`: R3 at 4 layers under CompleteP, criteria H and I), with the noise-floor
    simulation of every fresh ladder R1-R5."""
    ladders = train(tuner, DEPTH4_LADDERS, LONG_STEPS, DEPTH4)
    recipe = f"trained {LONG_STEPS} steps at 4 layers (CompleteP, base depth 2), R3's seeds"
    lines, summaries = report_head("depth4", recipe, ladders)
    whole = fit_rows(ladders[0][1]).noise
    assert whole.lack_of_fit_f is not None and whole.lack_of_fit_p is not None  # every width has replicates
    lines.append(
        f"    the law fitted on all eight widths of R5: lack of fit F = {whole.lack_of_fit_f:.2f} on "
        f"{whole.lack_of_fit_dof} and {whole.pure_dof} dof, p = {whole.lack_of_fit_p:.3g}"
    )
    lines += [
        "",
        "    noise floor: the rolling design redrawn from the law fitted on all its widths "
        f"({NULL_DRAWS} draws each, independent log-normal noise at the ladder's σ)",
    ]
    rng = np.random.default_rng(5)
    for name, ladder_rows in [*on_record(3), *ladders]:
        floor = noise_floor(ladder_rows, rng)
        lines.append(
            f"      {name}: σ {floor['sigma']:.2%} a run; median |error| at ≥ 4× ≤ 1% in {floor['pass']:.0%} "
            f"of draws; far errors all one sign in {floor['one_signed']:.0%}"
        )
    shipped = summaries["non-embedding"]
    first = shipped["median_error_far"] <= 0.01
    second = whole.lack_of_fit_p >= LACK_OF_FIT_P and shipped["median_error_far"] < R3_FAR_MEDIAN / 2
    lines += [
        "",
        "criteria (bench/PROTOCOL.md, calibration amendment 5):",
        f"    H. median |error| at ≥ 4× ≤ 1%: {'PASS' if first else 'FAIL'} "
        f"({shipped['median_error_far']:.2%} over {int(shipped['n_far'])} predictions, "
        f"{int(shipped['positive_far'])} above the measured loss)",
        f"    I. the two-layer hypothesis: lack of fit p ≥ {LACK_OF_FIT_P} ({whole.lack_of_fit_p:.3g}) "
        f"and the median below half R3's ({R3_FAR_MEDIAN:.2%} / 2): {'HOLDS' if second else 'REJECTED'}",
    ]
    return finish(out, lines, tuner, started)


def horizon_gamma() -> float:
    """Amendment 6's γ: the outer power of the kaplan law fitted, in total parameters, on the fitted runs of
    the horizon grid bench/results/horizon_cpu-long-r (its own recipe; no run of a backtest ladder)."""
    return float(horizon_fit().params["gamma"])


def horizon_fit() -> predictor.FitResult:
    """The kaplan fit behind `horizon_gamma`, whose γ, standard error and dof amendment 8's slice takes."""
    grid = HORIZON_PROFILES["cpu-long-r"]
    cache = RESULTS / "horizon_cpu-long-r.runs.jsonl"
    rows = [json.loads(line) for line in cache.read_text().splitlines() if line.strip()]
    rows = [
        r
        for r in rows
        if r["status"] == "succeeded" and r["width"] in grid.fit_widths and r["steps"] in grid.fit_steps
    ]
    x = np.array([[float(r["n_params"]), float(r["tokens"])] for r in rows])
    y = np.array([float(r["val_loss"]) for r in rows])
    return predictor.fit(x, y, law="kaplan", seeds=np.array([int(r["seed"]) for r in rows]))


def slice_gamma(grid: predictor.FitResult) -> dict[str, Any]:
    """The kaplan grid fit's γ with its standard error and dof, as predictor.fit's kaplan_slice options."""
    return {"gamma": grid.params["gamma"], "gamma_sd": grid.stderr["gamma"], "gamma_dof": grid.sigma_dof}


def slice_fit(rows: list[dict[str, Any]], gamma: dict[str, Any]) -> predictor.FitResult:
    """The fixed-D slice of Kaplan et al. 2020's L(N, D) (§4, Eq. (4.1)), L(N) = (A·N^−α + C)^γ at fixed γ,
    fitted to `rows` in total parameters by least squares on log loss: the predictor's kaplan_slice law.
    `gamma` holds predictor.fit's gamma (and for amendment 8 gamma_sd, gamma_dof). Amendments 6 and 7
    fitted it with their own 80-start scipy solve; this law reaches the same optimum (their reports
    regenerate identically)."""
    return predictor.fit(
        [float(r["n_params"]) for r in rows],
        [float(r["val_loss"]) for r in rows],
        "kaplan_slice",
        seeds=np.array([int(r["seed"]) for r in rows]),
        **gamma,
    )


def slice_backtest(
    name: str, rows: list[dict[str, Any]], gamma: dict[str, Any], intervals: bool = False
) -> tuple[list[str], list[float], list[bool]]:
    """The rolling-origin backtest of (b) with the slice in total parameters: its table, its signed errors
    at ≥ 4× in non-embedding N (the factor every criterion 3 test used), and with `intervals` (amendment
    8) whether its 90 % interval for the mean of the held-out runs covered each of those means."""
    if intervals:
        heading = f"predictor's kaplan_slice, γ {gamma['gamma']:.4f} ± {gamma['gamma_sd']:.4f}, total N"
    else:
        heading = f"the slice (A·N^−α + C)^γ, γ {gamma['gamma']:.4f}, in total parameters"
    lines = [f"    {name}: {heading}"]
    widths = sorted({int(r["width"]) for r in rows})
    far, covered = [], []
    for k in range(4, len(widths)):
        fit = slice_fit([r for r in rows if int(r["width"]) in widths[:k]], gamma)
        top = max(float(r["n_params_non_embedding"]) for r in rows if int(r["width"]) in widths[:k])
        for width in widths[k:]:
            held = [r for r in rows if int(r["width"]) == width]
            measured = float(np.mean([float(r["val_loss"]) for r in held]))
            pred = fit.predict(float(held[0]["n_params"]), interval="run", seeds=len(held))
            factor = float(held[0]["n_params_non_embedding"]) / top
            error = float(pred.mean) / measured - 1
            inside = float(pred.lower) <= measured <= float(pred.upper)
            if factor >= 4:
                far.append(error)
                covered.append(inside)
            line = (
                f"      fit on {widths[0]}…{widths[k - 1]:<4} width {width:>4} ×N {factor:>5.1f} "
                f"measured {measured:.4f} predicted {float(pred.mean):.4f}"
            )
            if intervals:
                line += f" [{float(pred.lower):.4f}, {float(pred.upper):.4f}]"
            lines.append(line + f" error {error:+.2%}" + ("" if inside or not intervals else " OUTSIDE"))
    summary = far_summary(far)
    if intervals:
        summary += f"; 90% intervals at ≥ 4× covering: {sum(covered)} of {len(covered)}"
    lines.append(f"      {summary}")
    return lines, far, covered


def far_summary(far: list[float]) -> str:
    """One line on a backtest's errors at ≥ 4×: their median size, count and how many lie above."""
    return (
        f"median |error| at ≥ 4× in N: {float(np.median(np.abs(far))):.2%} over {len(far)} predictions, "
        f"{sum(e > 0 for e in far)} above the measured loss"
    )


def slice_lack_of_fit(rows: list[dict[str, Any]], gamma: float) -> str:
    """The slice fitted on every width of a ladder, tested for lack of fit against the seed replicates the
    way the product tests its own law (predictor.noise, seeds as labels)."""
    noise = slice_fit(rows, {"gamma": gamma}).noise
    return f"all widths: lack of fit F = {noise.lack_of_fit_f:.2f}, p = {noise.lack_of_fit_p:.3g}"


def knee_ladder(tuner: CachedTuner, out: Path, started: float, profile: str) -> int:
    """Amendment 6 (`knee`: R6, R3's recipe with fresh seeds; criteria J and K) or 7 (`knee-depth4`: R7,
    R5's 4-layer recipe with fresh seeds; criteria L and M): the shipped backtest and the fixed-D slice of
    the kaplan law beside it, with the slice on the earlier ladders for reference."""
    depth4 = profile == "knee-depth4"
    if depth4:
        ladders = train(tuner, KNEE_DEPTH4_LADDERS, LONG_STEPS, DEPTH4)
        recipe = f"trained {LONG_STEPS} steps at 4 layers (R5's recipe), fresh seeds"
    else:
        ladders = train(tuner, KNEE_LADDERS, LONG_STEPS)
        recipe = f"trained {LONG_STEPS} steps (R3's recipe), fresh seeds"
    lines, summaries = report_head(profile, recipe, ladders)
    gamma = horizon_gamma()
    lines.append(
        f"(c) the fixed-D slice of the kaplan law, γ = {gamma:.4f} from the horizon grid "
        "(bench/results/horizon_cpu-long-r, total parameters)"
    )
    part, far, _ = slice_backtest(ladders[0][0], ladders[0][1], {"gamma": gamma})
    lines += [*part, f"      {slice_lack_of_fit(ladders[0][1], gamma)}"]
    lines += ["", "    for reference, not held out (the ladders on record before this one):"]
    for name, rows in on_record(5 if depth4 else 4):
        lines.append(f"      {name}: {far_summary(slice_backtest(name, rows, {'gamma': gamma})[1])}")
        lines.append(f"        {slice_lack_of_fit(rows, gamma)}")
    amendment, a, b = (7, "L", "M") if depth4 else (6, "J", "K")
    lines += slice_criteria(amendment, (a, b), summaries["non-embedding"], far, "the slice", "")
    return finish(out, lines, tuner, started)


def slice_criteria(
    amendment: int,
    letters: tuple[str, str],
    shipped: dict[str, float],
    far: list[float],
    what: str,
    note: str,
) -> list[str]:
    """Amendments 6-9's two criteria: the shipped law's median |error| at ≥ 4× ≤ 1 %, and the slice's ≤ 1 %
    and below the shipped law's (`note` is appended inside the slice's parentheses)."""
    candidate = float(np.median(np.abs(far)))
    first = shipped["median_error_far"] <= 0.01
    second = candidate <= 0.01 and candidate < shipped["median_error_far"]
    a, b = letters
    return [
        "",
        f"criteria (bench/PROTOCOL.md, calibration amendment {amendment}):",
        f"    {a}. shipped law: median |error| at ≥ 4× ≤ 1%: {'PASS' if first else 'FAIL'} "
        f"({shipped['median_error_far']:.2%} over {int(shipped['n_far'])} predictions, "
        f"{int(shipped['positive_far'])} above the measured loss)",
        f"    {b}. {what}: median |error| at ≥ 4× ≤ 1% and below the shipped law's: "
        f"{'HOLDS' if second else 'REJECTED'} ({candidate:.2%} over {len(far)} predictions{note})",
    ]


# Amendments 8-11: (ladders, spec overrides, recipe, ladders on record read for reference, amendment,
# criteria letters, seeds at the held-out widths). Each amendment reads the ladders trained before its own.
SHORT_PROFILES = {
    "knee-short4": (
        KNEE_SHORT4_LADDERS,
        DEPTH4,
        "trained 1,500 steps at 4 layers (R7's recipe, R1's steps), fresh seeds",
        6,
        (8, "N", "O"),
        3,
    ),
    "knee-lr4": (
        KNEE_LR4_LADDERS,
        DEPTH4,
        "trained 1,500 steps at 4 layers at η*/√2 (R8's recipe, R2's LR), fresh seeds",
        7,
        (9, "P", "Q"),
        3,
    ),
    "knee-deep6": (
        KNEE_DEEP6_LADDERS,
        DEPTH6,
        "trained 1,500 steps at 6 layers (R8's recipe, 6 layers under CompleteP), fresh seeds",
        8,
        (10, "S", "T"),
        3,
    ),
    "knee-seeds8": (
        SEEDS8_LADDERS,
        DEPTH4,
        "trained 1,500 steps at 4 layers (R8's recipe) with 8 seeds, fresh seeds",
        9,
        (11, "U", "V"),
        SEEDS8_FAR,
    ),
}


def seeds8_criteria(rows: list[dict[str, Any]], far: list[float], gamma: float, note: str) -> list[str]:
    """Amendment 11's criteria on R11: U, the product's slice meets 1 % (criterion 3 by the default law);
    V, its miss lies within the 90th percentile of an exact slice's on R11's own design and σ."""
    measured = float(np.median(np.abs(far)))
    floor = noise_floor(rows, np.random.default_rng(11), gamma, FLOOR_DRAWS)
    return [
        "",
        "criteria (bench/PROTOCOL.md, calibration amendment 11):",
        f"    U. (criterion 3) the product's slice: median |error| at ≥ 4× ≤ 1%: "
        f"{'PASS' if measured <= 0.01 else 'FAIL'} ({measured:.2%} over {len(far)} predictions, "
        f"{sum(e > 0 for e in far)} above the measured loss{note})",
        f"    V. within an exact slice's noise on this design (σ {floor['sigma']:.2%} a run, {FLOOR_DRAWS} "
        f"draws): median |error| ≤ the 90th percentile of the floor, {floor['q90']:.2%}: "
        f"{'HOLDS' if measured <= floor['q90'] else 'REJECTED'} (floor: ≤ 1% in {floor['pass']:.0%} of "
        f"draws, median {floor['median']:.2%})",
        f"      {slice_lack_of_fit(rows, gamma)} (reported, not judged)",
    ]


def short_depth_ladder(tuner: CachedTuner, out: Path, started: float, profile: str) -> int:
    """Amendment 8 (`knee-short4`: R8, R7's 4-layer recipe at 1,500 steps with fresh seeds; criteria N and
    O), 9 (`knee-lr4`: R9, R8's recipe at η*/√2; criteria P and Q) or 10 (`knee-deep6`: R10, R8's recipe at
    6 layers; criteria S and T): the shipped backtest and the product's kaplan_slice law beside it, with
    the earlier ladders for reference."""
    specs, overrides, recipe, record, (amendment, a, b), far_seeds = SHORT_PROFILES[profile]
    ladders = train(tuner, specs, None, overrides, far_seeds)
    lines, summaries = report_head(profile, recipe, ladders)
    grid = horizon_fit()
    lines.append(
        f"(c) predictor's kaplan_slice, γ = {grid.params['gamma']:.4f} ± {grid.stderr['gamma']:.4f} "
        f"({grid.sigma_dof} dof) from the horizon grid (bench/results/horizon_cpu-long-r, total parameters)"
    )
    gamma = slice_gamma(grid)
    part, far, covered = slice_backtest(ladders[0][0], ladders[0][1], gamma, intervals=True)
    lines += [*part, "", "    for reference, not held out (the ladders on record before this one):"]
    for name, rows in on_record(record):
        _, ref_far, ref_covered = slice_backtest(name, rows, gamma, intervals=True)
        lines.append(
            f"      {name}: {far_summary(ref_far)}; covering {sum(ref_covered)} of {len(ref_covered)}"
        )
    note = f"; reported, not judged: {sum(covered)} of {len(covered)} 90% intervals covered"
    if amendment == 11:
        lines += seeds8_criteria(ladders[0][1], far, grid.params["gamma"], note)
        return finish(out, lines, tuner, started)
    lines += slice_criteria(amendment, (a, b), summaries["non-embedding"], far, "the product's slice", note)
    if amendment == 10:
        lines.append(f"      {slice_lack_of_fit(ladders[0][1], gamma['gamma'])} (reported, not judged)")
    return finish(out, lines, tuner, started)


def main(argv: list[str] | None = None) -> int:
    profiles = ["cpu", "long", "width-lr", "depth4", "knee", "knee-depth4", *SHORT_PROFILES]
    profiles += ["slice-floor", "slice-power"]
    args = bench_parser(__doc__, profiles).parse_args(argv)
    suffix = "cpu" if args.profile == "cpu" else f"cpu-{args.profile}"
    out = args.out or RESULTS / f"backtest_replication_{suffix}.txt"
    started = time.perf_counter()
    if args.profile == "slice-floor":
        return slice_floor(out, started)
    if args.profile == "slice-power":
        return slice_power(out, started)
    tuner = CachedTuner(out.with_suffix(".runs.jsonl"), "cpu", args.jobs or default_jobs())
    if args.profile == "depth4":
        return depth_ladder(tuner, out, started)
    if args.profile in SHORT_PROFILES:
        return short_depth_ladder(tuner, out, started, args.profile)
    if args.profile in ("knee", "knee-depth4"):
        return knee_ladder(tuner, out, started, args.profile)
    if args.profile != "cpu":
        return one_ladder(tuner, out, started, args.profile)
    ladders = train(tuner)
    lines = [
        f"backtest replication (python bench/backtest_replication.py), {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine()}",
        "fresh ladders of the accuracy recipe (bench/accuracy.py, profile cpu): widths 8…48 × 4 seeds, "
        "96 and 128 × 3 seeds",
        "",
    ]
    summaries = {}
    for basis in BASES:
        part, summaries[basis] = backtests(ladders, "fresh ladders R1 and R2", basis)
        lines += [*part, ""]
    shipped, candidate = summaries["non-embedding"], summaries["total"]
    a = shipped["median_error_far"] <= 0.01
    b = candidate["median_error_far"] <= 0.01
    adopt = b and candidate["median_error_far"] < shipped["median_error_far"]
    for basis, summary in summaries.items():
        lines.append(
            f"    {basis}: {int(summary['negative_far'])} of {int(summary['n_far'])} predictions at ≥ 4× "
            "lie below the measured loss"
        )
    original = load_ladders(RESULTS / "accuracy_cpu.runs.jsonl")
    lines += ["", *holdout_lines([(f"original {name}", rows) for name, rows in original] + ladders)]
    # For reference only: the exploratory refit that chose the candidate (not held out).
    _, explored = backtests(load_ladders(RESULTS / "accuracy_cpu.runs.jsonl"), "", "total")
    lines += [
        f"    for reference, not held out: the original two ladders fitted in total parameters give "
        f"{explored['median_error_far']:.2%} (non-embedding: 1.51%, the pre-registered FAIL)",
        "",
        "criteria (bench/PROTOCOL.md, calibration amendment 2):",
        f"    A. shipped basis (non-embedding N): median |error| at ≥ 4× ≤ 1%: {'PASS' if a else 'FAIL'} "
        f"({shipped['median_error_far']:.2%} over {int(shipped['n_far'])} predictions)",
        f"    B. total parameters: median |error| at ≥ 4× ≤ 1%: {'PASS' if b else 'FAIL'} "
        f"({candidate['median_error_far']:.2%} over {int(candidate['n_far'])} predictions)",
        "    decision: "
        + (
            "fit in total parameters (B passes and beats A)"
            if adopt
            else "keep non-embedding N (the rule's condition for total parameters is not met)"
        ),
    ]
    return finish(out, lines, tuner, started)


if __name__ == "__main__":
    raise SystemExit(main())
