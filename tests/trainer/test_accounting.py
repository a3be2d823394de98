"""Parameter and FLOP counts from the spec alone agree with the built models."""

from __future__ import annotations

from typing import Any

import pytest

from tests.trainer.helpers import tiny_spec
from trainer import build_model, count_params
from trainer.accounting import flops_per_token, peak_flops, total_params_at

EMBEDDING_NAMES = ("wte.weight", "wpe.weight", "lm_head.weight")


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"tie_embeddings": True},
        {"positions": "rope", "norm": "rmsnorm"},
        {"activation": "swiglu", "ffn_ratio": 2.7, "norm_gains": True},
        {"activation": "relu2", "n_layers": 3},
        {"activation": "abs"},
        {"block": "single", "activation": "abs", "n_layers": 3},
        {"block": "single", "activation": "gelu", "norm_gains": True, "positions": "rope"},
    ],
)
@pytest.mark.parametrize("width", [16, 48])
def test_count_params_matches_the_built_model(fields: dict[str, Any], width: int) -> None:
    spec = tiny_spec(**fields)
    model = build_model(spec, width)
    total, non_embedding = count_params(spec, width)
    assert total == sum(p.numel() for p in model.parameters())
    assert non_embedding == sum(p.numel() for n, p in model.named_parameters() if n not in EMBEDDING_NAMES)


def test_total_params_at_n_is_exact_on_the_head_grid_and_between_its_neighbours_in_between() -> None:
    spec = tiny_spec(tie_embeddings=False)
    step = spec.head_dim
    for width in (step, 4 * step, 9 * step):
        total, n = count_params(spec, width)
        assert total_params_at(spec, n) == total
    (total_a, n_a), (total_b, n_b) = count_params(spec, 4 * step), count_params(spec, 5 * step)
    between = total_params_at(spec, (n_a + n_b) / 2)
    assert between is not None and total_a < between < total_b
    assert between - (n_a + n_b) / 2 == pytest.approx(((total_a - n_a) + (total_b - n_b)) / 2)
    assert total_params_at(spec, 1e18) is None  # past width 2^20


def test_flops_are_six_n_plus_readout_plus_attention() -> None:
    spec = tiny_spec(n_layers=2)
    width = 32
    _, n = count_params(spec, width)
    readout = 256 * width
    attention = 6 * 2 * 2 * spec.context_length * width
    assert flops_per_token(spec, width) == 6 * (n + readout) + attention


def test_single_blocks_have_no_attention_flops() -> None:
    spec = tiny_spec(n_layers=3, block="single", activation="abs")
    width = 32
    _, n = count_params(spec, width)
    assert n == 3 * width * width  # one width × width matrix per block, no gains
    assert flops_per_token(spec, width) == 6 * (n + 256 * width)


def test_peak_flops_knows_the_common_gpus() -> None:
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("NVIDIA L40S") == 362e12
    assert peak_flops("Some Future GPU") is None
