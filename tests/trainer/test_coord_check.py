"""The coordinate check (trainer/coord_check.py) keeps its property both ways: flat under μP, failing under
SP; along depth, flat with CompleteP's residual scaling and failing without any."""

from __future__ import annotations

from typing import Any

import pytest

from trainer import ArchitectureSpec
from trainer.accounting import count_params
from trainer.coord_check import coord_check
from trainer.coord_plan import default_depths, default_widths, largest_model

LR = 0.01  # large for Adam: SP's wide models blow up within three steps at this LR


def coord_spec(mode: str, **fields: Any) -> ArchitectureSpec:
    parametrization = {"mode": mode, "base_width": 32, **fields.pop("parametrization", {})}
    return ArchitectureSpec.model_validate(
        {
            "name": "coord",
            "n_layers": 2,
            "head_dim": 16,
            "context_length": 64,
            "parametrization": parametrization,
            "training": {"lr": LR, "batch_tokens": 256, "grad_clip": 0.0},
            **fields,
        }
    )


ARCHITECTURES = [
    {},
    {"activation": "swiglu", "norm": "rmsnorm", "positions": "rope", "norm_gains": True},
]


@pytest.mark.parametrize("fields", ARCHITECTURES, ids=["gelu-layernorm-learned", "swiglu-rmsnorm-rope"])
def test_flat_in_width_under_mup_and_growing_under_sp(fields: dict[str, Any]) -> None:
    mup = coord_check(coord_spec("mup", **fields))
    sp = coord_check(coord_spec("sp", **fields))
    assert mup.sizes == sp.sizes == [64, 128, 256, 512]  # ×1…×8 from max(64, base width)
    assert mup.verdict == "passes", (mup.worst, mup.max_abs_slope)
    assert sp.verdict == "fails"
    names = {c.name for c in mup.coordinates}
    assert {"embedding", "logits", "block 0 attention logits", "block 1 MLP output"} <= names
    assert {"block 0 attention output", "block 1 residual stream"} <= names
    # Under SP every hidden coordinate grows with width (Adam's updates ∝ width), not just one.
    grows = [c for c in sp.coordinates if c.name.startswith("block") and c.slope > mup.threshold]
    assert len(grows) >= len([c for c in sp.coordinates if c.name.startswith("block")]) - 1
    assert all(abs(c.slope) <= mup.threshold for c in mup.coordinates)


def test_depth_is_flat_with_completep_and_grows_without_depth_scaling() -> None:
    completep = coord_check(
        coord_spec("mup", parametrization={"depth_alpha": 1.0, "base_depth": 2}), axis="depth"
    )
    unscaled = coord_check(coord_spec("mup", parametrization={"depth_alpha": 0.0}), axis="depth")
    assert completep.sizes == unscaled.sizes == [2, 4, 8, 16]
    assert completep.verdict == "passes", (completep.worst, completep.max_abs_slope)
    assert unscaled.verdict == "fails"
    # The residual stream at the top grows with the number of unscaled branches; CompleteP keeps it flat.
    assert {c.name: c for c in unscaled.coordinates}["last block residual stream"].slope > 0.2
    assert abs({c.name: c for c in completep.coordinates}["last block residual stream"].slope) < 0.1


def test_defaults_start_at_64_or_the_base_width_on_the_head_size_grid() -> None:
    spec = ArchitectureSpec.model_validate(
        {"name": "x", "head_dim": 24, "parametrization": {"base_width": 96}, "proxy_widths": [96]}
    )
    assert default_widths(spec) == [96, 192, 384, 768]
    small = ArchitectureSpec.model_validate(
        {"name": "y", "head_dim": 24, "parametrization": {"base_width": 24}, "proxy_widths": [24]}
    )
    assert default_widths(small) == [72, 144, 288, 576]
    assert default_depths(small) == [2, 4, 8, 16]
    # No deeper than a spec may be (256 blocks); fewer than two depths is no depth check at all.
    assert default_depths(small.at_depth(64)) == [64, 128, 256]
    assert default_depths(small.at_depth(200)) == []
    # The depth check runs at the first width, so the widest model is the largest here.
    total, shape = largest_model(small, default_widths(small), [2, 16])
    assert shape == "width 576, depth 2" and total == count_params(small, 576)[0]
    total, shape = largest_model(small, [72, 144], [2, 256])
    assert shape == "width 72, depth 256" and total == count_params(small.at_depth(256), 72)[0]


def test_widths_the_spec_cannot_build_are_refused() -> None:
    with pytest.raises(ValueError, match="not a multiple of head size 16"):
        coord_check(coord_spec("mup"), sizes=[64, 100])
