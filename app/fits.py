"""Scaling-law fits per architecture, cached in the `fits` table and keyed by the data they were fitted on.

A fit is computed when a run finishes (by the worker) or on the first read after that; predictions load
the cached fit and never refit per request. The stored key is a hash of the exact (run, N, loss, seed)
points and of the fit method, so a new finished run invalidates the cache by changing the key. Which runs
a fit pools (one recipe, one corpus, one trainer version) is decided here too; app/prediction_service.py
keeps each process's memo of the current fits and answers from them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import predictor
from app.models import Architecture, Fit, Run, RunRole, RunStatus, Sweep, SweepRun
from predictor.quality import Quality, assess
from predictor.shape import ShapeTest, shape_test
from trainer.horizon import plan_horizons
from trainer.shapes import Shape, ladder_shapes
from trainer.spec import ArchitectureSpec

DEFAULT_LAW = "mu_scaling"
# The law in (N, D) that token-horizon grids are fitted with: Kaplan et al. 2020's form, chosen over the
# additive chinchilla law by the rule bench/PROTOCOL.md fixed before its test (token horizons, amendment
# 3): on fresh seeds it predicted the held-out (N, D) points to a median 0.97 % against chinchilla's
# 1.84 % (bench/results/horizon_cpu-long-r.txt).
GRID_LAW: Final = "kaplan"
MIN_BUDGETS = 3  # distinct token budgets an (N, D) fit needs: a D exponent and how the N term bends with D
# The fixed-D slice of GRID_LAW, (A·N^−α + C)^γ, fitted to a whole-run ladder with γ from the architecture's
# own token-horizon grid. Fitted in total parameters: on the CPU ladders on record it extrapolated in total
# parameters and not in non-embedding N (bench/PROTOCOL.md, calibration amendments 6-8).
SLICE_LAW: Final = "kaplan_slice"
# The law asked for by default: SLICE_LAW wherever the architecture's grid pins γ, DEFAULT_LAW elsewhere.
# Fixed before a held-out ladder tested it (bench/PROTOCOL.md, calibration amendment 10): the slice was the
# better law on all ten CPU ladders on record, R10 included (1.43 % against 4.01 % at ≥ 4×). Reopened by
# amendment 11, whose R11 missed 1 % beyond noise, it stands: the slice beat DEFAULT_LAW there too (1.29 %
# against 4.56 %), as on all eleven ladders, and no third law has been tested. DEFAULT_LAW
# keeps its name: it is what a ladder without a grid is fitted with, and what workers fit as runs finish.
AUTO_LAW: Final = "auto"
# Two-layer models leave the N trend as they widen (Kaplan et al. 2020, §3.2, Figure 6); on the CPU
# ladders the slice extrapolated both fresh 4-layer ladders and missed both fresh 2-layer 6,000-step ones.
SHALLOW = 2
SHALLOW_SLICE = (
    "the ladder is at most 2 layers deep: two-layer models leave the N trend as they widen (Kaplan et al. "
    "2020, §3.2), and the slice law missed such ladders trained 6,000 steps by 2–3 % at ≥ 4× where it met "
    "1 % on 4-layer ones (bench/PROTOCOL.md, calibration amendments 6–8): prefer proxies of 4 layers or more"
)


def is_grid_law(law: str) -> bool:
    return predictor.LAWS[law].in_tokens


K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class LadderRecipe:
    """What a fit pools: the runs at the latest sweep's LR and steps, at its depths (the spec's depth,
    unless the sweep was a ladder over depth: trainer/shapes.py). Tuning runs (other LRs) and earlier
    ladders at another LR are never mixed into one fit.

    An (N, D) grid (`token_budgets` set) pools instead the branches of the latest token-horizon sweep's
    recipe: its LR, the spec's depth and the branches' shared warmup (trainer/horizon.py), whatever
    their budget; `steps` is then the longest budget's. A warm-started ladder (`warm_start`) pools its
    own sweep's rungs: upscaled runs are another recipe than runs trained from scratch, never mixed."""

    sweep_id: int
    lr: float
    lr_source: str
    steps: int
    depth: int  # the spec's n_layers
    depths: tuple[int, ...]  # the depths a whole-run ladder pools (the spec's alone, unless a depth sweep)
    aspect_ratio: float | None = None  # a ladder along width / depth: only those (width, depth) pairs
    widths: tuple[int, ...] = ()  # the sweep's widths (what an aspect-ratio ladder's pairs are made of)
    token_budgets: tuple[int, ...] | None = None
    warmup_steps: int | None = None
    warm_start: str | None = None  # "upscale": the sweep's own rungs, each widened from the one before

    @property
    def grid(self) -> bool:
        return self.token_budgets is not None

    @property
    def pairs(self) -> list[Shape] | None:
        """An aspect-ratio ladder's (width, depth) pairs, the one place they are derived (None otherwise)."""
        if self.aspect_ratio is None:
            return None
        return ladder_shapes(self.widths, [], self.aspect_ratio)


# Part of every cached fit's key: a change to how predictor.fit estimates (or stores) a fit must not
# restore fits made the old way.
FIT_METHOD = "lsq+noise-model/2"
SEED_SPAN = 2**31  # seeds lie in [0, 2^31): seed · 2^31 + data seed labels the pair uniquely


@dataclass(frozen=True)
class Excluded:
    """A succeeded run of the ladder's recipe that the fit leaves out, and why."""

    run_id: int
    reason: str


@dataclass(frozen=True)
class FitPoints:
    run_ids: list[int]
    n_params: list[float]  # non-embedding parameters of each proxy
    losses: list[float]  # held-out validation loss
    widths: list[int]
    seeds: list[int]  # each run's initialisation seed
    corpus_fingerprints: list[str]  # one at most: a fit pools one corpus
    recipe: LadderRecipe | None
    code_version: str | None = None  # the trainer code every pooled run was trained by
    total_params: list[float] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)
    data_seeds: list[int] = field(default_factory=list)  # each run's batch-order seed
    tokens: list[float] = field(default_factory=list)  # each run's training tokens D ((N, D) grids)
    depths: list[int] = field(default_factory=list)  # each run's depth (blocks)
    # The corpus's text and validation bytes per token, when every pooled run knows them (a prepared
    # corpus): what puts the ladder's losses in bits per byte (answers.comparison).
    text_fingerprint: str | None = None
    val_bytes_per_token: float | None = None

    @property
    def distinct_sizes(self) -> int:
        """Distinct (width, depth): the ladder's sizes (one per width, or per depth at one width)."""
        return len(set(zip(self.widths, self.depths or [0] * len(self.widths), strict=True)))

    @property
    def seed_labels(self) -> list[int]:
        """One label per (init seed, data seed): runs that share both are replicates that pair (the
        noise model's seed effect, predictor.compare's pairing)."""
        return [seed * SEED_SPAN + order for seed, order in zip(self.seeds, self.data_seeds, strict=True)]

    @property
    def distinct_budgets(self) -> int:
        return len(set(self.tokens))

    def x(self, law: str) -> Any:
        """The fit's x: N, the (N, D) rows of a two-column law, or total parameters for the slice law."""
        if is_grid_law(law):
            return np.column_stack([self.n_params, self.tokens])
        if law == SLICE_LAW:
            return self.total_params
        return self.n_params

    def data_hash(self, law: str, *also: Any) -> str:
        """The cache key of a fit of these points (and of `also`: what else the fit read, e.g. a grid)."""
        fields: list[Any] = [FIT_METHOD, law, self.run_ids, self.n_params, self.losses, self.seed_labels]
        if self.tokens:
            fields.append(self.tokens)
        if law == SLICE_LAW:
            fields.append(self.total_params)
        fields += also
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


class NotEnoughRuns(Exception):
    """Too few finished proxy widths to fit; carries the counts for a 409 that says what to do."""

    def __init__(
        self,
        architecture_id: int,
        counts: dict[str, int],
        needed: int,
        usable: int | None = None,
        excluded: Sequence[Excluded] = (),
        also: str | None = None,
    ) -> None:
        self.architecture_id, self.counts, self.needed = architecture_id, counts, needed
        finished = counts.get("succeeded_widths", 0)
        # Finished runs the fit leaves out (another trainer version, corpus) are named: without them
        # "5 widths finished, 4 needed" would read as a contradiction.
        left_out = ""
        if excluded:
            named = "; ".join(f"run {e.run_id}: {e.reason}" for e in excluded[:3])
            more = f"; and {len(excluded) - 3} more" if len(excluded) > 3 else ""
            left_out = f" Left out of the fit: {named}{more}."
        usable_part = f"{usable} usable of " if usable is not None and usable < finished else ""
        # The id in the message: a comparison blocked by one candidate must say which.
        super().__init__(
            f"architecture {architecture_id}: {usable_part}{finished} proxy size(s) finished, "
            f"{needed} needed to fit ({counts.get('running', 0)} running, {counts.get('queued', 0)} queued, "
            f"{counts.get('failed', 0)} failed): launch or wait for a sweep "
            f"(POST /v1/architectures/{architecture_id}/sweeps).{left_out}"
            + (f" Also: {also}." if also else "")
        )


class NoScalingTrend(Exception):
    """The proxies were fitted, but the fit fails the quality gate (predictor.quality): not served."""

    def __init__(self, architecture_id: int, name: str, quality: Quality) -> None:
        self.architecture_id, self.name, self.quality = architecture_id, name, quality
        super().__init__(
            f"{name} (id {architecture_id}) has no usable scaling trend, so no prediction is served: "
            + "; ".join(quality.reasons)
            + ". "
            + NO_TREND_ADVICE.format(id=architecture_id)
        )


NO_TREND_ADVICE = (
    "What to do: train the proxies longer (a larger training.token_budget or steps), add wider proxies "
    "(proxy_widths further apart), or tune the LR (POST /v1/architectures/{id}/tuning, then sweep again)."
)


class FitFailed(Exception):
    """The proxies' results exist but no law could be fitted to them (e.g. losses that rise with N)."""


def ladder_recipe(session: Session, architecture_id: int, grid: bool = False) -> LadderRecipe | None:
    """The recipe of the architecture's most recently created sweep of whole runs (None before the
    first), or with `grid` of its latest token-horizon sweep (its branches are fitted in (N, D))."""
    rows = session.execute(
        select(
            Sweep.id,
            Sweep.lr,
            Sweep.lr_source,
            Sweep.steps,
            Sweep.token_budgets,
            Sweep.warm_start,
            Sweep.widths,
            Sweep.depths,
            Sweep.aspect_ratio,
            Architecture.spec,
        )
        .join(Architecture, Architecture.id == Sweep.architecture_id)
        .where(Sweep.architecture_id == architecture_id)
        .order_by(Sweep.id.desc())
    )
    for sweep_id, lr, source, steps, budgets, warm_start, widths, depths, ratio, spec in rows:
        if bool(budgets) != grid:
            continue
        n_layers = int(spec["n_layers"])
        recipe = LadderRecipe(
            sweep_id,
            float(lr),
            source,
            int(steps),
            n_layers,
            tuple(sorted(set(depths or [n_layers]))),
            aspect_ratio=ratio,
            widths=tuple(widths),
            warm_start=warm_start,
        )
        pairs = recipe.pairs
        if pairs is not None:
            recipe = dataclasses.replace(recipe, depths=tuple(sorted({d for _, d in pairs})))
        if not grid:
            return recipe
        plan = plan_horizons(ArchitectureSpec.model_validate(spec), list(budgets))
        return dataclasses.replace(recipe, token_budgets=tuple(budgets), warmup_steps=plan.warmup_steps)
    return None


def in_recipe(recipe: LadderRecipe) -> Any:
    if recipe.warm_start is not None:
        return Run.id.in_(select(SweepRun.run_id).where(SweepRun.sweep_id == recipe.sweep_id))
    if recipe.grid:
        return and_(
            Run.lr == recipe.lr,
            Run.depth == recipe.depth,
            Run.role == RunRole.branch,
            Run.warmup_steps == recipe.warmup_steps,
        )
    whole = and_(Run.lr == recipe.lr, Run.steps == recipe.steps, Run.role == RunRole.run)
    pairs = recipe.pairs
    if pairs is not None:
        return and_(whole, or_(*(and_(Run.width == w, Run.depth == d) for w, d in pairs)))
    return and_(whole, Run.depth.in_(recipe.depths))


def fit_points(session: Session, architecture_id: int, law: str = DEFAULT_LAW) -> FitPoints:
    """The ladder a fit pools: succeeded runs of the latest sweep's recipe, on one corpus, trained by one
    trainer version (those of the most recently finished run); every other run is listed with why. A
    law in (N, D) pools the latest token-horizon sweep's branches instead (LadderRecipe)."""
    recipe = ladder_recipe(session, architecture_id, grid=is_grid_law(law))
    if recipe is None:
        return FitPoints([], [], [], [], [], [], None)
    rows = session.execute(
        select(
            Run.id,
            Run.n_params_non_embedding,
            Run.val_loss,
            Run.width,
            Run.depth,
            Run.seed,
            Run.data_seed,
            Run.corpus_fingerprint,
            Run.text_fingerprint,
            Run.val_bytes_per_token,
            Run.code_version,
            Run.n_params,
            Run.flops,
            Run.tokens,
        )
        .where(Run.architecture_id == architecture_id, Run.status == RunStatus.succeeded, in_recipe(recipe))
        .order_by(Run.finished_at, Run.id)
    ).all()
    excluded = []
    usable = []
    for row in rows:
        if not row.n_params_non_embedding or row.val_loss is None or not math.isfinite(row.val_loss):
            excluded.append(Excluded(row.id, "no finite validation loss"))
        else:
            usable.append(row)
    corpus = usable[-1].corpus_fingerprint if usable else None
    code = usable[-1].code_version if usable else None
    kept = []
    for row in usable:
        if row.corpus_fingerprint != corpus:
            excluded.append(
                Excluded(
                    row.id,
                    f"trained on corpus {str(row.corpus_fingerprint)[:12]}, "
                    f"not the ladder's {str(corpus)[:12]}",
                )
            )
        elif row.code_version != code:
            excluded.append(
                Excluded(
                    row.id,
                    f"trained by {row.code_version}, not the ladder's {code}: retrain it (a new sweep)",
                )
            )
        else:
            kept.append(row)
    kept.sort(key=lambda r: r.id)
    texts = {(r.text_fingerprint, r.val_bytes_per_token) for r in kept}
    text, bytes_per_token = texts.pop() if len(texts) == 1 else (None, None)
    return FitPoints(
        run_ids=[r.id for r in kept],
        n_params=[float(r.n_params_non_embedding) for r in kept],
        losses=[float(r.val_loss) for r in kept],
        widths=[int(r.width) for r in kept],
        depths=[int(r.depth) for r in kept],
        seeds=[int(r.seed) for r in kept],
        data_seeds=[int(r.data_seed) for r in kept],
        corpus_fingerprints=[corpus] if kept and corpus else [],
        recipe=recipe,
        code_version=code if kept else None,
        total_params=[float(r.n_params or 0) for r in kept],
        flops=[float(r.flops or 0) for r in kept],
        excluded=sorted(excluded, key=lambda e: e.run_id),
        text_fingerprint=text if bytes_per_token else None,
        val_bytes_per_token=bytes_per_token if text else None,
        tokens=[float(r.tokens or 0) for r in kept] if recipe.grid else [],
    )


def run_counts(session: Session, architecture_id: int, recipe: LadderRecipe | None = None) -> dict[str, int]:
    """Runs per status (and distinct succeeded widths): all of the architecture's, or one recipe's."""
    where = [Run.architecture_id == architecture_id]
    if recipe is not None:
        where.append(in_recipe(recipe))
    counts = {status.value: 0 for status in RunStatus}
    for status, n in session.execute(select(Run.status, func.count()).where(*where).group_by(Run.status)):
        counts[RunStatus(status).value] = int(n)
    sizes = (
        select(Run.width, Run.depth).where(*where, Run.status == RunStatus.succeeded).distinct().subquery()
    )
    counts["succeeded_widths"] = int(session.scalar(select(func.count()).select_from(sizes)) or 0)
    return counts


def refresh_fit(
    session: Session,
    architecture_id: int,
    min_widths: int,
    law: str = DEFAULT_LAW,
    points: FitPoints | None = None,
    grid: FitPoints | None = None,
) -> Fit | None:
    """The cached fit for the architecture's current results, computing and storing it if needed.

    None when fewer than `min_widths` proxy sizes (width, depth) have finished. `points` (the ladder's
    fit_points) and, for SLICE_LAW, `grid` (slice_grid's) are passed when the caller has read them already.
    """
    points = points or fit_points(session, architecture_id, law)
    if points.distinct_sizes < min_widths or (is_grid_law(law) and points.distinct_budgets < MIN_BUDGETS):
        return None
    options: dict[str, Any] = {}
    key = points.data_hash(law)
    if law == SLICE_LAW:
        if grid is None:
            grid = slice_grid(session, architecture_id, min_widths, points)
        options = slice_gamma(grid)
        key = points.data_hash(law, grid.run_ids, grid.total_params, grid.tokens, grid.losses)
    cached = session.scalar(
        select(Fit).where(Fit.architecture_id == architecture_id, Fit.law == law, Fit.data_hash == key)
    )
    if cached is not None:
        return cached
    try:
        if law == SLICE_LAW:
            options["x_label"] = "total parameters"
        result = predictor.fit(points.x(law), points.losses, law=law, seeds=points.seed_labels, **options)
    except ValueError as exc:
        raise FitFailed(
            f"architecture {architecture_id}: no {law} fit for the {len(points.run_ids)} finished run(s): "
            f"{exc}; check the runs (GET /v1/runs?architecture_id={architecture_id}) or add widths or seeds "
            "with a new sweep"
        ) from exc
    # End the read transaction first, so that storing the fit begins a fresh one whose first statement
    # is the write (on SQLite a deferred read transaction cannot wait to upgrade to a writer).
    session.rollback()
    fit = Fit(
        architecture_id=architecture_id,
        law=law,
        data_hash=key,
        run_ids=points.run_ids,
        result=result.to_dict(),
    )
    session.add(fit)
    try:
        session.commit()
    except IntegrityError:
        # Another process stored the same fit first (same data, same key): use theirs.
        session.rollback()
        return session.scalar(
            select(Fit).where(Fit.architecture_id == architecture_id, Fit.law == law, Fit.data_hash == key)
        )
    return fit


def slice_grid(session: Session, architecture_id: int, min_widths: int, ladder: FitPoints) -> FitPoints:
    """The token-horizon grid the slice law takes γ from: the architecture's own, on the ladder's corpus.
    Raises NotEnoughRuns (no grid yet, or too small) or FitFailed (a grid on another corpus)."""
    grid = fit_points(session, architecture_id, GRID_LAW)
    if grid.distinct_sizes < min_widths or grid.distinct_budgets < MIN_BUDGETS:
        counts = run_counts(session, architecture_id, grid.recipe) if grid.recipe else {}
        raise NotEnoughRuns(
            architecture_id,
            counts,
            min_widths,
            grid.distinct_sizes,
            grid.excluded,
            f"the {SLICE_LAW} law takes its outer power γ from the architecture's token-horizon grid, "
            f"which needs {min_widths} widths at {MIN_BUDGETS} budgets or more ({grid.distinct_budgets} "
            f"budget(s) finished): launch one (POST /v1/architectures/{architecture_id}/sweeps with "
            f"token_budgets), or ask without `law` for the {DEFAULT_LAW} fit",
        )
    if grid.corpus_fingerprints != ladder.corpus_fingerprints:
        raise FitFailed(
            f"architecture {architecture_id}: the token-horizon grid was trained on another corpus than the "
            f"ladder, so its γ is not this ladder's: rerun the grid on the ladder's corpus, or ask without "
            f"`law` for the {DEFAULT_LAW} fit"
        )
    return grid


def slice_gamma(grid: FitPoints) -> dict[str, Any]:
    """γ for the slice law, with its standard error and dof: the kaplan law fitted to the grid in total
    parameters, the basis the slice is fitted in (bench/backtest_replication.horizon_fit does the same).
    Memoised on the grid's points, so choosing a law and fitting with it solve the grid once."""
    return dict(
        _grid_gamma(tuple(grid.total_params), tuple(grid.tokens), tuple(grid.losses), tuple(grid.seed_labels))
    )


@functools.lru_cache(maxsize=256)
def _grid_gamma(
    total_params: tuple[float, ...],
    tokens: tuple[float, ...],
    losses: tuple[float, ...],
    seeds: tuple[Any, ...],
) -> tuple[tuple[str, Any], ...]:
    x = np.column_stack([total_params, tokens])
    try:
        fitted = predictor.fit(x, np.array(losses), law=GRID_LAW, seeds=np.array(seeds))
    except ValueError as exc:
        raise FitFailed(f"the token-horizon grid gives no γ for the {SLICE_LAW} law: {exc}") from exc
    sd = fitted.stderr["gamma"]
    if sd is None or fitted.at_bound["gamma"]:
        raise FitFailed(
            f"the token-horizon grid does not pin γ (gamma = {fitted.params['gamma']:.3g} at its bound): "
            "add budgets further apart to the grid"
        )
    return (("gamma", fitted.params["gamma"]), ("gamma_sd", sd), ("gamma_dof", fitted.sigma_dof))


# Where `auto`'s rule was decided, cited by every reason it gives.
AUTO_SOURCE: Final = "bench/PROTOCOL.md, calibration amendments 10-11"
# How `auto` explains choosing the slice (choose_law, and a comparison whose candidates all have grids).
AUTO_SLICE: Final = (
    f"auto: {SLICE_LAW}, as the architecture's token-horizon grid gives its γ; it extrapolated the CPU "
    f"ladders on record better than {DEFAULT_LAW} ({AUTO_SOURCE})"
)


def slice_unavailable(
    session: Session, architecture_id: int, min_widths: int, ladder: FitPoints | None = None
) -> str | None:
    """Why `auto` does not fit the slice law to the architecture's ladder (None when it does); `ladder`
    is its fit_points when the caller has read them already."""
    source = _slice_source(session, architecture_id, min_widths, ladder)
    return source if isinstance(source, str) else None


def _slice_source(
    session: Session, architecture_id: int, min_widths: int, ladder: FitPoints | None
) -> FitPoints | str:
    """The grid the slice law takes γ from (γ solved, so a grid that cannot pin it is refused here), or
    why `auto` does not fit the slice. The grid is returned so that fitting the slice reads it once."""
    try:
        if ladder is None:
            ladder = fit_points(session, architecture_id, SLICE_LAW)
        if len(set(ladder.depths)) > 1:
            # Over several depths E + A·N^−α comes with the shape test and shape-corrected answers; every
            # ladder the slice was backtested on had one depth.
            return "the ladder is over several depths, where E + A·N^−α corrects for shape (predictor.shape)"
        grid = slice_grid(session, architecture_id, min_widths, ladder)
        slice_gamma(grid)
    except NotEnoughRuns:
        return (
            f"the architecture has no token-horizon grid of {min_widths} widths at {MIN_BUDGETS} budgets or "
            "more (a sweep with token_budgets)"
        )
    except FitFailed as exc:
        return str(exc)
    return grid


def choose_law(
    session: Session, architecture_id: int, min_widths: int, law: str, ladder: FitPoints | None = None
) -> tuple[str, str, FitPoints | None]:
    """The ladder law to fit for a request's `law`, why, and the slice's grid when `auto` read it:
    AUTO_LAW resolves to SLICE_LAW where the architecture's token-horizon grid, on the ladder's corpus,
    pins γ, and to DEFAULT_LAW elsewhere."""
    if law != AUTO_LAW:
        return law, "asked", None
    source = _slice_source(session, architecture_id, min_widths, ladder)
    if not isinstance(source, str):
        return SLICE_LAW, AUTO_SLICE, source
    return (
        DEFAULT_LAW,
        f"auto: {DEFAULT_LAW}, as {source}; where a grid gives the ladder its γ, auto fits {SLICE_LAW}, "
        f"which extrapolated the CPU ladders on record better ({AUTO_SOURCE})",
        None,
    )


@dataclass(frozen=True)
class CurrentFit:
    """An architecture's fit for its current results, detached from any session."""

    fit_id: int
    run_ids: list[int]
    created_at: datetime
    stored: dict[str, Any]  # the fit row's JSON, as FitResult.to_dict() wrote it
    result: predictor.FitResult
    points: FitPoints
    quality: Quality  # the gate a fit passes before it is served (predictor.quality)
    shape: ShapeTest | None = None  # does shape matter at fixed N (a law in N over several depths)
    # The ladder's own extrapolation check: the law refitted without its largest size, scored there.
    holdout: predictor.HeldOut | None = None
    law_choice: str = "asked"  # why this law (choose_law): "asked", or how `auto` resolved


def current_fit(
    session: Session, architecture_id: int, min_widths: int, law: str = DEFAULT_LAW
) -> CurrentFit:
    """The fit to predict from, restored from its cached dict; raises NotEnoughRuns. `law` may be
    AUTO_LAW (choose_law)."""
    # Both ladder laws pool the same runs (fit_points distinguishes only a grid law), so `auto` reads
    # the ladder once, to choose its law and to fit it.
    points = fit_points(session, architecture_id, SLICE_LAW if law == AUTO_LAW else law)
    law, why, grid = choose_law(session, architecture_id, min_widths, law, points)
    fit = refresh_fit(session, architecture_id, min_widths, law, points, grid)
    if fit is None:
        counts = run_counts(session, architecture_id, points.recipe) if points.recipe else {}
        budgets = (
            f"an (N, D) fit needs the branches of a token-horizon sweep (POST …/sweeps with token_budgets) "
            f"at {MIN_BUDGETS} budgets or more; {points.distinct_budgets} finished"
            if is_grid_law(law)
            else None
        )
        raise NotEnoughRuns(
            architecture_id, counts, min_widths, points.distinct_sizes, points.excluded, budgets
        )
    result = predictor.FitResult.from_dict(fit.result)
    if law == SLICE_LAW and max(points.depths) <= SHALLOW:
        result.warnings.append(SHALLOW_SLICE)
    # The shape test is a few milliseconds of least squares on the fitted points: computed with the
    # fit's load, so it always matches the fit it is served beside.
    shape = None
    if law == DEFAULT_LAW and len(set(points.depths)) > 1:
        shape = shape_test(result, points.widths, points.depths)
    return CurrentFit(
        fit.id,
        list(fit.run_ids),
        fit.created_at,
        fit.result,
        result,
        points,
        assess(result),
        shape,
        holdout_check(points, law, result),
        why,
    )


def holdout_check(
    points: FitPoints, law: str, result: predictor.FitResult | None = None
) -> predictor.HeldOut | None:
    """The law refitted without the ladder's largest size predicts the mean of that size's runs
    (predictor.hold_out_largest): one extrapolation step whose answer is known. Like the shape test, a
    few milliseconds at load. None for an (N, D) grid, a ladder too short to spare its largest size, or
    smaller sizes the law cannot be fitted to."""
    if is_grid_law(law):
        return None
    # The slice law refits with the γ its full fit took (and that γ's uncertainty).
    gamma = (
        {} if result is None or result.gamma is None else {**gamma_options(result), "x_label": result.x_label}
    )
    try:
        return predictor.hold_out_largest(
            points.x(law), points.losses, law, seeds=points.seed_labels, **gamma
        )
    except ValueError:
        return None


def gamma_options(result: predictor.FitResult) -> dict[str, Any]:
    """A slice fit's γ as predictor.fit's options."""
    return {"gamma": result.gamma, "gamma_sd": result.gamma_sd, "gamma_dof": result.gamma_dof}


def holdout_warning(held: predictor.HeldOut | None) -> list[str]:
    """A warning for a prediction when the ladder's own holdout check missed (none when it held)."""
    if held is None or held.inside:
        return []
    return [
        f"the ladder's own check missed: refitted without its largest size (N {held.n:.3g}), the law "
        f"predicted {held.mean:.4f} [{held.lower:.4f}, {held.upper:.4f}] ({held.level:.0%}, the mean of "
        f"{held.runs} run(s)) and the runs measured {held.measured:.4f} ({held.error:+.2%}): the law may "
        "not extrapolate this ladder as far as asked; add larger proxies before trusting the interval"
    ]


def holdout_report(held: predictor.HeldOut | None) -> str:
    """The holdout check as a section of the fit report."""
    if held is None:
        return ""
    return "\n".join(
        [
            "",
            "[[Holdout check]] (the law refitted without the largest size, predicting the mean of its runs)",
            f"    largest size       = N {held.n:.4g}, {held.runs} run(s), "
            f"{held.extrapolation_factor:.3g}× the rest's largest",
            f"    predicted          = {held.mean:.4f} [{held.lower:.4f}, {held.upper:.4f}] "
            f"({held.level:.0%})",
            f"    measured           = {held.measured:.4f}: error {held.error:+.2%}, "
            + ("inside the interval" if held.inside else "OUTSIDE the interval"),
        ]
    )


def basis_report(law: str) -> str:
    """What the slice law's x is, as a section of the fit report (nothing for a law in N)."""
    if law != SLICE_LAW:
        return ""
    return "\n".join(
        [
            "",
            "[[Basis]]",
            "    x                  = total parameters (embeddings included); the holdout check's N counts "
            "them too",
            f"    gamma              = from the {GRID_LAW} law fitted to the token-horizon grid in total "
            "parameters",
        ]
    )


def proxies_report(points: FitPoints) -> str:
    """The fitted ladder in every unit a prediction's extrapolation is stated in (see `extrapolation`),
    as a section of the fit report: a target's ratios are read against its largest rung."""
    largest = max(range(len(points.n_params)), key=points.n_params.__getitem__)
    return "\n".join(
        [
            "",
            "[[Proxies]] (extrapolation ratios are taken against the largest)",
            f"    widths             = {', '.join(str(w) for w in sorted(set(points.widths)))}",
            f"    depths             = {', '.join(str(d) for d in sorted(set(points.depths)))}",
            f"    largest            = width {points.widths[largest]}, depth {points.depths[largest]}: "
            f"N {points.n_params[largest]:.4g} "
            f"non-embedding, {points.total_params[largest]:.4g} total parameters, "
            f"{points.flops[largest]:.4g} training FLOPs",
        ]
    )
