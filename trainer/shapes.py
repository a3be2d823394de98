"""The (width, depth) shapes a ladder trains, and the shape of a target asked by N and aspect ratio.

A ladder is a width sweep at one depth (the spec's n_layers), a depth sweep at one width, a (width,
depth) grid, or one depth per width along a declared aspect ratio width / depth (Kaplan et al. 2020,
§3.1, call it the aspect ratio d_model / n_layer). Every shape's N counts all of its layers
(trainer.accounting.count_params on spec.at_depth(depth)). Torch-free: the API validates with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainer.accounting import count_params
from trainer.spec import MAX_DEPTH, ArchitectureSpec

Shape = tuple[int, int]  # (width, depth)


def ladder_shapes(
    widths: Sequence[int], depths: Sequence[int], aspect_ratio: float | None = None
) -> list[Shape]:
    """Every (width, depth) of the grid, or with `aspect_ratio` each width at depth = width / ratio.
    Raises ValueError naming the fix: a depth out of [1, MAX_DEPTH], or a width the ratio does not
    divide into a whole depth."""
    for depth in depths:
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth {depth} must lie in [1, {MAX_DEPTH}]")
    if aspect_ratio is None:
        return sorted({(w, d) for w in widths for d in depths})
    if not aspect_ratio > 0:
        raise ValueError(f"aspect_ratio {aspect_ratio} must be positive (width / depth, e.g. 64)")
    shapes = []
    for width in sorted(set(widths)):
        exact = width / aspect_ratio
        if not 1 <= exact <= MAX_DEPTH or abs(exact - round(exact)) > 1e-9:  # (inf for a tiny ratio)
            fits = [w for w in sorted(set(widths)) if (w / aspect_ratio).is_integer()]
            raise ValueError(
                f"width {width} / aspect_ratio {aspect_ratio:g} = {exact:g} is not a whole depth in "
                f"[1, {MAX_DEPTH}]: give widths that are multiples of {aspect_ratio:g}"
                + (f" (of these, {fits} are)" if fits else "")
                + " or an aspect ratio that divides every width"
            )
        shapes.append((width, round(exact)))
    return shapes


def non_embedding(spec: ArchitectureSpec, width: int, depth: int) -> int:
    """N of the shape (every layer counted): what a fit in N is fitted and asked in."""
    return count_params(spec.at_depth(depth), width)[1]


def shape_for(spec: ArchitectureSpec, n_params: float, aspect_ratio: float) -> Shape | None:
    """The shape on the head-size grid whose N is nearest `n_params` with depth = round(width / ratio)
    (at least 1, at most MAX_DEPTH); None when no such shape reaches n_params."""
    if not aspect_ratio > 0:
        raise ValueError(f"aspect_ratio {aspect_ratio} must be positive (width / depth, e.g. 64)")

    def shape(k: int) -> Shape:
        width = k * spec.head_dim
        return width, round(min(MAX_DEPTH, max(1.0, width / aspect_ratio)))  # (inf for a tiny ratio)

    def n_of(k: int) -> int:
        return non_embedding(spec, *shape(k))

    low, high = 1, (1 << 20) // spec.head_dim
    if n_of(high) < n_params:
        return None
    while low < high:  # N grows with width along the ratio: the smallest multiple reaching the target
        mid = (low + high) // 2
        if n_of(mid) < n_params:
            low = mid + 1
        else:
            high = mid
    return min(
        (shape(k) for k in (max(1, low - 1), low)), key=lambda s: abs(non_embedding(spec, *s) - n_params)
    )
