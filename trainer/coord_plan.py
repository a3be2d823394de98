"""What a coordinate check will build, decided without torch: the API bounds a check's size and keys its
stored result before any model exists (the check itself is trainer/coord_check.py)."""

from __future__ import annotations

import math

from trainer.accounting import count_params
from trainer.spec import MAX_DEPTH, ArchitectureSpec


def default_widths(spec: ArchitectureSpec) -> list[int]:
    """×1, ×2, ×4, ×8 from max(64, base width), each a multiple of the head size."""
    start = max(64, spec.parametrization.base_width)
    start = math.ceil(start / spec.head_dim) * spec.head_dim
    return [start * k for k in (1, 2, 4, 8)]


def default_depths(spec: ArchitectureSpec) -> list[int]:
    """×1, ×2, ×4, ×8 the spec's depth, as far as a spec can go (at least two depths, or none)."""
    depths = [spec.n_layers * k for k in (1, 2, 4, 8) if spec.n_layers * k <= MAX_DEPTH]
    return depths if len(depths) >= 2 else []


def largest_model(spec: ArchitectureSpec, widths: list[int], depths: list[int]) -> tuple[int, str]:
    """The parameter count of the largest model a check along `widths` (and `depths`, at the first
    width) builds, and its shape in words: what the caller bounds before running it."""
    shapes = [(w, spec.n_layers) for w in widths] + [(widths[0], d) for d in depths]
    sizes = {(w, d): count_params(spec.at_depth(d), w)[0] for w, d in shapes}
    (width, depth), total = max(sizes.items(), key=lambda item: item[1])
    return total, f"width {width}, depth {depth}"
