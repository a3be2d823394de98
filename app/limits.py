"""The configured limits on what one request may ask the workers to train (HTTP 422 past them)."""

from __future__ import annotations

from app.settings import Settings
from app.views import field_error, unprocessable
from trainer import ArchitectureSpec


def check_sweep(
    spec: ArchitectureSpec, widths: list[int], seeds: list[int], steps: int, settings: Settings
) -> None:
    """Raise 422 with one field-level entry per violated limit; each message names the fix."""
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
    n_runs = len(set(widths)) * len(set(seeds))
    if n_runs > settings.max_runs_per_sweep:
        errors.append(
            field_error(
                "body",
                "seeds",
                msg=f"{n_runs} runs (widths × seeds) exceed the limit of {settings.max_runs_per_sweep} "
                "per sweep (MUPREDICT_MAX_RUNS_PER_SWEEP): split the sweep or use fewer seeds",
            )
        )
    tokens = steps * spec.training.batch_tokens
    if tokens > settings.max_tokens_per_run:
        errors.append(
            field_error(
                "body",
                "steps",
                msg=f"{steps} steps × {spec.training.batch_tokens} tokens per step = {tokens} tokens exceed "
                f"the per-run limit {settings.max_tokens_per_run} (MUPREDICT_MAX_TOKENS_PER_RUN): "
                "lower `steps`",
            )
        )
    if errors:
        raise unprocessable(*errors)
