"""trainer/shapes.py: the shapes a ladder trains, N for every shape, and the shape nearest N along a ratio."""

from __future__ import annotations

import pytest

from trainer import ArchitectureSpec, build_model
from trainer.shapes import ladder_shapes, non_embedding, shape_for


def test_a_grid_is_every_width_at_every_depth_and_a_ratio_one_depth_per_width() -> None:
    assert ladder_shapes([64, 32], [4, 1]) == [(32, 1), (32, 4), (64, 1), (64, 4)]
    assert ladder_shapes([32, 64, 128], [], aspect_ratio=32) == [(32, 1), (64, 2), (128, 4)]


@pytest.mark.parametrize(
    ("widths", "depths", "ratio", "message"),
    [
        ([32], [0], None, "depth 0 must lie in [1, 256]"),
        ([32], [257], None, "depth 257 must lie in [1, 256]"),
        ([32, 48], [], 32, "width 48 / aspect_ratio 32 = 1.5 is not a whole depth"),
        ([32, 48], [], 32, "(of these, [32] are)"),
        ([16], [], 32, "= 0.5 is not a whole depth in [1, 256]"),
        ([32], [], 0, "must be positive"),
        ([32], [], 5e-324, "is not a whole depth"),  # 32 / 5e-324 overflows to inf
    ],
)
def test_impossible_shapes_name_the_fix(widths, depths, ratio, message) -> None:
    with pytest.raises(ValueError) as caught:
        ladder_shapes(widths, depths, ratio)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"activation": "swiglu", "positions": "rope"},
        {"block": "single", "activation": "abs"},
        {"norm_gains": True},
    ],
)
@pytest.mark.parametrize(("width", "depth"), [(16, 1), (32, 3), (48, 8)])
def test_n_counts_every_layer_of_the_built_model(fields, width, depth) -> None:
    spec = ArchitectureSpec.model_validate({"name": "n", "head_dim": 8, **fields})
    model = build_model(spec.at_depth(depth), width)
    embeddings = {"wte.weight", "wpe.weight", "lm_head.weight"}
    counted = sum(p.numel() for name, p in model.named_parameters() if name not in embeddings)
    assert non_embedding(spec, width, depth) == counted


def test_the_shape_nearest_n_along_a_ratio() -> None:
    spec = ArchitectureSpec(name="ratio", head_dim=16)
    target = non_embedding(spec, 1024, 16)
    assert shape_for(spec, target, aspect_ratio=64) == (1024, 16)
    width, depth = shape_for(spec, target * 1.01, aspect_ratio=64) or (0, 0)
    assert width % 16 == 0 and depth == round(width / 64)
    assert abs(non_embedding(spec, width, depth) / target - 1) < 0.05
    assert shape_for(spec, 1e30, aspect_ratio=64) is None  # past the largest width
    assert shape_for(spec, target, aspect_ratio=5e-324) is not None  # the deepest shape, no overflow
