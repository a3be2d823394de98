"""The configured limits on what one request may ask the workers to train (HTTP 422 past them)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from app.errors import field_error, unprocessable
from app.settings import BUILTIN, Settings
from trainer import ArchitectureSpec, CorpusAccess
from trainer.accounting import flops_per_token
from trainer.data import source_allowed
from trainer.spec import MAX_DEPTH, MAX_STEPS


def corpus_access(settings: Settings) -> CorpusAccess:
    """The data roots, corpus caps and corpus cache of these settings, as the trainer takes them."""
    cache = {"cache_dir": settings.cache_dir} if settings.cache_dir is not None else {}
    return CorpusAccess(
        roots=settings.data_roots,
        allow_builtin=settings.allows_builtin,
        max_bytes=settings.max_corpus_bytes,
        max_files=settings.max_corpus_files,
        **cache,
    )


def check_source(spec: ArchitectureSpec, settings: Settings) -> None:
    """422 unless spec.dataset.source lies inside the data roots. By the path's text and symlinks only,
    with one message whatever lies there: a missing path and an existing one must read the same. The
    workers check again with their own settings (trainer.data.load_corpus)."""
    if source_allowed(spec.dataset.source, corpus_access(settings)):
        return
    raise unprocessable(
        field_error(
            "body",
            "dataset",
            "source",
            msg=f"dataset.source must be inside the data roots ({_roots(settings)}) that MUPREDICT_DATA_DIRS "
            "allows: move the corpus under one of them, or ask the operator to add its folder",
        )
    )


def check_stored_source(architecture_id: int, spec: ArchitectureSpec, settings: Settings) -> None:
    """409 before queueing runs of a stored spec whose source the data roots no longer allow (it was
    registered under other settings): the workers would refuse every run of it."""
    if source_allowed(spec.dataset.source, corpus_access(settings)):
        return
    raise HTTPException(
        status.HTTP_409_CONFLICT,
        f"architecture {architecture_id}'s dataset.source is outside the data roots ({_roots(settings)}) "
        "that MUPREDICT_DATA_DIRS allows now: register the spec again with its corpus under one of them, "
        "or ask the operator to add its folder",
    )


def _roots(settings: Settings) -> str:
    access = corpus_access(settings)
    allowed = ([repr(BUILTIN)] if access.allow_builtin else []) + [str(root) for root in access.roots or ()]
    return ", ".join(allowed)


def _width_errors(spec: ArchitectureSpec, widths: list[int], settings: Settings) -> list[dict[str, Any]]:
    errors = []
    for width in sorted(set(widths)):
        if width > settings.max_width:
            errors.append(
                field_error(
                    "body",
                    "widths",
                    msg=f"width {width} exceeds the largest proxy width {settings.max_width} "
                    "(MUPREDICT_MAX_WIDTH): use smaller proxies",
                )
            )
            continue
        try:
            spec.validate_width(width)
        except ValueError as exc:
            errors.append(field_error("body", "widths", msg=str(exc)))
    return errors


def _token_errors(spec: ArchitectureSpec, steps: int, settings: Settings) -> list[dict[str, Any]]:
    tokens = steps * spec.training.batch_tokens
    if tokens <= settings.max_tokens_per_run:
        return []
    return [
        field_error(
            "body",
            "steps",
            msg=f"{steps} steps × {spec.training.batch_tokens} tokens per step = {tokens} tokens exceed "
            f"the per-run limit {settings.max_tokens_per_run} (MUPREDICT_MAX_TOKENS_PER_RUN): lower `steps`",
        )
    ]


def run_flops(spec: ArchitectureSpec, width: int, steps: int) -> float:
    """Estimated training FLOPs of one run: FLOPs per token (trainer.accounting) × steps × batch tokens."""
    return float(flops_per_token(spec, width)) * steps * spec.training.batch_tokens


def _flop_errors(
    shapes: list[tuple[str, float]], runs_per_shape: int, steps: int, settings: Settings, what: str
) -> list[dict[str, Any]]:
    """The per-run and the per-sweep limit on estimated compute, for (shape, FLOPs of one run) pairs."""
    errors = []
    label, most = max(shapes, key=lambda shape: shape[1])
    if most > settings.max_flops_per_run:
        errors.append(
            field_error(
                "body",
                "steps",
                msg=f"one run at {label} is estimated at {most:.3g} training FLOPs ({steps} steps), past the "
                f"per-run limit of {settings.max_flops_per_run:.3g} (MUPREDICT_MAX_FLOPS_PER_RUN): use "
                "smaller widths, fewer steps, or a spec with fewer layers or a shorter context",
            )
        )
    total = sum(flops for _, flops in shapes) * runs_per_shape
    if total > settings.max_flops_per_sweep:
        errors.append(
            field_error(
                "body",
                "steps",
                msg=f"the {what} is estimated at up to {total:.3g} training FLOPs, past the limit of "
                f"{settings.max_flops_per_sweep:.3g} per sweep (MUPREDICT_MAX_FLOPS_PER_SWEEP): use fewer "
                "or smaller widths, fewer seeds or fewer steps",
            )
        )
    return errors


def check_tuning(spec: ArchitectureSpec, params: dict[str, Any], settings: Settings) -> None:
    """Raise 422 for a tuning the workers must not be asked to run; each message names the fix."""
    base = params["base_width"]
    errors = []
    try:
        spec.validate_width(base)
    except ValueError as exc:
        errors.append(
            field_error(
                "body", "widths", msg=f"the base width cannot be built: {exc} (parametrization.base_width)"
            )
        )
    errors += _width_errors(spec, params["widths"], settings)
    for depth in params["depths"]:
        if not 1 <= depth <= MAX_DEPTH:
            errors.append(field_error("body", "depths", msg=f"depth {depth} must lie in [1, {MAX_DEPTH}]"))
    horizons = params.get("horizons", [])
    for steps in sorted({params["steps"], *horizons}):
        errors += _token_errors(spec, steps, settings)
    if any(h > MAX_STEPS for h in horizons):
        errors.append(
            field_error(
                "body",
                "token_budgets",
                msg=f"horizons {[h for h in horizons if h > MAX_STEPS]} steps are past the limit of "
                f"{MAX_STEPS} steps a run: lower the token budgets",
            )
        )
    shapes = 1 + len(params["widths"]) + len(params["depths"]) + len(horizons)
    per_curve = params["grid_points"] + 2 * params["max_extensions"]
    most = shapes * per_curve * len(params["seeds"])
    if not errors:  # every shape can be built: what may the tuning cost?
        steps = params["steps"]
        costs = [(f"width {w}", run_flops(spec, w, steps)) for w in [base, *params["widths"]]]
        costs += [
            (f"width {base}, depth {d}", run_flops(spec.at_depth(d), base, steps)) for d in params["depths"]
        ]
        costs += [(f"width {base}, {h} steps", run_flops(spec, base, h)) for h in horizons]
        errors += _flop_errors(costs, per_curve * len(params["seeds"]), steps, settings, "LR tuning")
    if most > settings.max_runs_per_tuning:
        errors.append(
            field_error(
                "body",
                "seeds",
                msg=f"up to {most} runs ({shapes} shapes × up to {per_curve} LRs × {len(params['seeds'])} "
                f"seeds) exceed the limit of {settings.max_runs_per_tuning} per tuning "
                "(MUPREDICT_MAX_RUNS_PER_TUNING): use fewer widths, depths, token budgets or seeds, or fewer "
                "max_extensions",
            )
        )
    if errors:
        raise unprocessable(*errors)


def check_sweep(
    spec: ArchitectureSpec,
    widths: list[int],
    seeds: list[int],
    steps: int,
    settings: Settings,
    cost_steps: int | None = None,
    shapes: list[tuple[int, int]] | None = None,
) -> None:
    """Raise 422 with one field-level entry per violated limit; each message names the fix. `steps` is
    one run's length; `cost_steps` the steps trained per (width, seed) when that differs (a token-
    horizon sweep's trunk and branches: trainer.horizon.HorizonPlan.cost_steps). `shapes`: the
    (width, depth) pairs of a ladder over depth (default: every width at the spec's depth)."""
    errors = _width_errors(spec, widths, settings)
    shapes = shapes or [(w, spec.n_layers) for w in sorted(set(widths))]
    n_runs = len(shapes) * len(set(seeds))
    if n_runs > settings.max_runs_per_sweep:
        errors.append(
            field_error(
                "body",
                "seeds",
                msg=f"{n_runs} runs (shapes × seeds) exceed the limit of {settings.max_runs_per_sweep} "
                "per sweep (MUPREDICT_MAX_RUNS_PER_SWEEP): split the sweep or use fewer seeds or depths",
            )
        )
    errors += _token_errors(spec, steps, settings)
    if not errors:  # every width can be built: what does the sweep cost?
        costs = [
            (
                f"width {w}" if d == spec.n_layers else f"width {w}, depth {d}",
                run_flops(spec.at_depth(d), w, cost_steps or steps),
            )
            for w, d in shapes
        ]
        errors += _flop_errors(costs, len(set(seeds)), steps, settings, f"sweep ({n_runs} runs)")
    if errors:
        raise unprocessable(*errors)
