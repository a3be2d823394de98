"""When candidates' losses compare, and in which unit: nats per token on one tokenizer and one corpus,
bits per byte across tokenizers of one prepared text, refused otherwise; and the recipe differences
under which they compare only approximately (warnings)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.errors import field_error, unprocessable
from app.fits import CurrentFit
from app.models import Architecture
from trainer import ArchitectureSpec

NATS_PER_TOKEN = "nats/token"
BITS_PER_BYTE = "bits/byte"
BITS_PER_BYTE_ADVICE = (
    "to compare designs on different tokenizers, prepare one source with each tokenizer (mupredict data "
    "prepare SOURCE --tokenizer …, the same --val-fraction) and train each design on its own: they are "
    "then ranked in bits per byte"
)


@dataclass(frozen=True)
class Unit:
    """The unit a comparison ranks in, and each candidate's factor from its nats per token into it."""

    name: str
    factors: list[float]
    note: str | None = None  # how the losses were converted, when they were


def common_unit(archs: list[Architecture], specs: list[ArchitectureSpec], currents: list[CurrentFit]) -> Unit:
    """Nats per token when the candidates share their tokens (one tokenizer, one corpus); else bits per
    byte when their ladders were trained on corpora prepared from one text (one text fingerprint, the
    validation documents the same) whose bytes per token are known; else a 422 that says which."""
    tokenizers = [f"{s.dataset.tokenizer}, vocabulary {s.vocab_size}" for s in specs]
    corpora = [(c.points.corpus_fingerprints or ["none"])[0][:12] for c in currents]
    if not _differences(archs, tokenizers) and not _differences(archs, corpora):
        return Unit(NATS_PER_TOKEN, [1.0] * len(archs))
    texts = {c.points.text_fingerprint for c in currents}
    ratios = [c.points.val_bytes_per_token for c in currents]
    if len(texts) == 1 and None not in texts and all(r for r in ratios):
        # bits per byte = (nats per token) / ln 2 / (bytes per token), over the validation split that
        # every candidate's corpus holds out from the same documents.
        known = [float(r) for r in ratios if r]
        per_candidate = "; ".join(
            f"{a.name} (id {a.id}): {r:.3f} bytes/token" for a, r in zip(archs, known, strict=True)
        )
        note = (
            f"ranked in bits per byte: the candidates use different tokenizers on one text (text "
            f"{next(iter(texts))!s:.12}), so each loss per token was divided by ln 2 and by its validation "
            f"split's bytes per token ({per_candidate}); equal token budgets hold different amounts of "
            "text"
        )
        return Unit(BITS_PER_BYTE, [1.0 / (math.log(2) * r) for r in known], note)
    checks = (
        (
            tokenizers,
            "use different tokenizers",
            "losses per token are not comparable; train them on the same tokenizer, or "
            + BITS_PER_BYTE_ADVICE,
        ),
        (
            corpora,
            "were trained on different corpora",
            "train them on the same data to compare them (corpora prepared from one text with different "
            "tokenizers compare in bits per byte)",
        ),
    )
    errors = []
    for values, what, fix in checks:
        if described := _differences(archs, values):
            errors.append(
                field_error("body", "architecture_ids", msg=f"the candidates {what} ({described}): {fix}")
            )
    raise unprocessable(*errors)


def recipe_differences(
    archs: list[Architecture], specs: list[ArchitectureSpec], currents: list[CurrentFit], grid: bool = False
) -> list[str]:
    """Recipe differences that leave the losses comparable only approximately: a warning each. Ranked
    on (N, D) grids (`grid`), each loss is at the D asked for, so the proxies' budgets do not matter."""
    contexts = [f"{s.context_length:,}" for s in specs]
    budgets = ["" if grid else f"{_proxy_tokens(s, c):,}" for s, c in zip(specs, currents, strict=True)]
    starts = [_start(c) for c in currents]
    checks = (
        (
            contexts,
            "context lengths",
            "a token's loss falls with the context before it, so the mean loss per token depends on the "
            "context length as well as the design; compare at one context length to rank the designs alone",
        ),
        (
            budgets,
            "token budgets per proxy run",
            "the loss at N also depends on how many tokens the proxies saw; train the ladders to the same "
            "budget (training.token_budget) to rank the designs alone",
        ),
        (
            starts,
            "how their ladders were built",
            "an upscaled rung has also trained through its narrower ancestors, so its loss is not that of a "
            "model trained from scratch for the same steps; build both ladders the same way to rank the "
            "designs alone",
        ),
    )
    return [
        f"the candidates differ in {what} ({described}): {why}"
        for values, what, why in checks
        if (described := _differences(archs, values))
    ]


def _differences(archs: list[Architecture], values: list[str]) -> str | None:
    """Each candidate's value, "name (id N): value; …", when they are not all the same (else None)."""
    if len(set(values)) < 2:
        return None
    return "; ".join(f"{a.name} (id {a.id}): {v}" for a, v in zip(archs, values, strict=True))


def _start(current: CurrentFit) -> str:
    recipe = current.points.recipe
    return "upscaled rung by rung" if recipe is not None and recipe.warm_start else "from scratch"


def _proxy_tokens(spec: ArchitectureSpec, current: CurrentFit) -> int:
    """Training tokens per run of the fitted ladder (its sweep's steps, which may override the spec's)."""
    assert current.points.recipe is not None  # a fit exists only for a ladder with a recipe
    return current.points.recipe.steps * spec.training.batch_tokens
