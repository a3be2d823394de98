"""Block "single" (trainer/model.py SingleBlock): Tensor Programs VI's resnet of block depth 1,
x^l = x^(l−1) + m_L^(−α) · MS(φ(W^l · norm(x^(l−1)))) (Yang, Yu, Zhu, Hayou 2023, arXiv 2310.02244, §6.3
and §10.2), where Depth-μP (α = ½, Adam LR × m_L^(−½)) is the optimal depth parametrization (Claim 7.5).
It builds and trains, follows trainer/mup.py's rules, and its depth coordinate check is flat under
Depth-μP and grows without depth scaling (TP-VI Claim 7.1: α < ½ is unstable in depth)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tests.trainer.helpers import tiny_spec
from trainer import ArchitectureSpec, Corpus, build_model, make_optimizer, train
from trainer.coord_check import coord_check
from trainer.model import MLP, SingleBlock
from trainer.mup import forward_multipliers, parameter_rule

# Along depth ×1…×8 at a fixed width (64), on the coordinate check's own random batch, lr 0.01, three
# Adam steps, seeds 0 and 1. Measured (torch 2.x, CPU), log2-log2 slope of the top block's residual
# stream |x^L| against depth 2…16, with |x| as φ: α = 0 +0.36 (Δx: +0.55), α = ½ −0.06 (Δx: +0.03),
# α = 1 −0.32 (Δx: −0.34). The other coordinates under Depth-μP: |slope| ≤ 0.09.
FLAT = 0.15  # about twice the steepest Depth-μP slope measured (0.09)
GROWS = 0.25  # α = 0: unscaled branches add up, |x^L| ∝ √L once they outweigh the embedding (slope → ½)


def single_spec(**fields: Any) -> ArchitectureSpec:
    parametrization = {"base_width": 32, **fields.pop("parametrization", {})}
    return ArchitectureSpec.model_validate(
        {
            "name": "single",
            "block": "single",
            "activation": "abs",
            "n_layers": 2,
            "head_dim": 16,
            "context_length": 64,
            "parametrization": parametrization,
            "training": {"lr": 0.01, "batch_tokens": 256, "grad_clip": 0.0},
            **fields,
        }
    )


def test_a_single_block_model_trains(builtin_corpus: Corpus) -> None:
    spec = tiny_spec(block="single", activation="abs", n_layers=4)
    result = train(spec, 32, seed=0, corpus=builtin_corpus, device="cpu")
    losses = [loss for _, loss in result.loss_curve]
    assert result.status == "succeeded" and all(math.isfinite(loss) for loss in losses)
    # From ln 256 ≈ 5.55 nats (zero-init readout) to clearly below, and the held-out loss too.
    assert losses[0] == pytest.approx(math.log(256), abs=1e-3)
    assert result.final_train_loss is not None and result.final_train_loss < losses[0] - 1.0
    assert result.val_loss is not None and result.val_loss < losses[0] - 1.0


def test_the_block_is_tp_vi_one_layer_form() -> None:
    """x + m_L^(−α) · MS(|W · LN(x)|), with no attention: each position is its own input."""
    spec = single_spec(n_layers=8, parametrization={"base_depth": 2, "depth_alpha": 0.5})
    torch.manual_seed(0)
    model = build_model(spec, 64)
    block = model.blocks[0]
    assert isinstance(block, SingleBlock) and block.residual == pytest.approx(4**-0.5)
    assert {name for name, _ in block.named_parameters()} == {"perceptron.linear.weight"}
    x = torch.randn(2, 5, 64)  # (B, T, C)
    h = F.linear(F.layer_norm(x, (64,), eps=1e-5), block.perceptron.linear.weight).abs()
    expected = x + 0.5 * (h - h.mean(dim=-1, keepdim=True))
    torch.testing.assert_close(block(x, None), expected)
    # No mixing across positions: changing the last token leaves the earlier logits as they were.
    tokens = torch.randint(0, spec.vocab_size, (1, 8))
    changed = tokens.clone()
    changed[0, -1] = (tokens[0, -1] + 1) % spec.vocab_size
    with torch.no_grad():
        torch.testing.assert_close(model(tokens)[:, :-1], model(changed)[:, :-1])


def test_abs_is_an_mlp_activation_too() -> None:
    mlp = MLP(16, 32, "abs")
    x = torch.randn(3, 16)
    torch.testing.assert_close(mlp(x), mlp.down(mlp.up(x).abs()))


def test_depth_coordinate_check_is_flat_under_depth_mup_and_grows_without_depth_scaling() -> None:
    depth_mup = coord_check(
        single_spec(parametrization={"depth_alpha": 0.5, "base_depth": 2}), axis="depth", width=64
    )
    unscaled = coord_check(single_spec(parametrization={"depth_alpha": 0.0}), axis="depth", width=64)
    assert depth_mup.sizes == unscaled.sizes == [2, 4, 8, 16]
    by_name = {c.name: c for c in depth_mup.coordinates}
    assert set(by_name) == {
        "embedding",
        "first block branch output",
        "first block residual stream",
        "last block branch output",
        "last block residual stream",
        "logits",
    }
    # The first block's residual stream is the embedding plus one branch × m_L^(−½): that block's own
    # share is Θ(1/√L) by design (TP-VI §1, "each … contributes Θ(1/√L)"), so it falls towards the
    # embedding, at most as fast as m_L^(−½) (measured −0.36). Every other coordinate stays flat.
    first = by_name.pop("first block residual stream")
    assert -0.5 <= first.slope < 0 and -0.5 <= first.delta_slope < 0
    for c in by_name.values():
        assert abs(c.slope) <= FLAT and abs(c.delta_slope) <= FLAT, (c.name, c.slope, c.delta_slope)
    assert depth_mup.verdict == "passes", (depth_mup.worst, depth_mup.max_abs_slope)
    # Without depth scaling the L branches' independent Θ(1) contributions pile up at the top.
    top = {c.name: c for c in unscaled.coordinates}["last block residual stream"]
    assert top.slope > GROWS and top.delta_slope > GROWS, (top.slope, top.delta_slope)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_each_parameter_follows_the_table_at_four_times_the_base_depth(alpha: float) -> None:
    base_lr, eps, sigma = 0.01, 1e-8, 0.02
    spec = single_spec(
        n_layers=8,
        norm_gains=True,
        parametrization={"base_depth": 2, "depth_alpha": alpha, "init_std": sigma},
        training={"lr": base_lr, "adam_eps": eps, "batch_tokens": 256},
    )
    width, m, m_depth = 64, 2.0, 4.0
    in_block_eps = eps / m * m_depth**-alpha  # TP-VI Definition 6.2(b); CompleteP Table 1
    hidden_lr = base_lr / m * m_depth ** (alpha - 1)  # Depth-μP: × L^(−½) (TP-VI Table 1); CompleteP: × 1
    expected = {  # suffix -> (init std, Adam LR, Adam ε); None: a gain, set to 1
        "wte.weight": (sigma, base_lr, eps / m),
        "wpe.weight": (sigma, base_lr, eps / m),
        "lm_head.weight": (0.0, base_lr, eps / m),
        "perceptron.linear.weight": (sigma / math.sqrt(m), hidden_lr, in_block_eps),
        ".norm.weight": (None, base_lr * m_depth ** (alpha - 1), in_block_eps),
        "norm_f.weight": (None, base_lr, eps / m),
    }
    torch.manual_seed(0)
    model = build_model(spec, width)
    group_of = {id(p): g for g in make_optimizer(model, spec).param_groups for p in g["params"]}
    for name, param in model.named_parameters():
        std, lr, group_eps = next(rule for suffix, rule in expected.items() if name.endswith(suffix))
        assert group_of[id(param)]["lr"] == pytest.approx(lr, rel=1e-12), name
        assert group_of[id(param)]["eps"] == pytest.approx(group_eps, rel=1e-12), name
        if std is None:
            assert torch.all(param == 1), name
        elif std == 0.0:
            assert torch.all(param == 0), name
        else:
            assert param.std().item() == pytest.approx(std, rel=0.1), name
    assert forward_multipliers(spec, width).residual == pytest.approx(m_depth**-alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_every_multiplier_is_one_at_the_base_shape(alpha: float) -> None:
    spec = single_spec(n_layers=3, norm_gains=True, parametrization={"depth_alpha": alpha, "base_depth": 3})
    width = spec.parametrization.base_width
    multipliers = forward_multipliers(spec, width)
    assert (multipliers.embedding, multipliers.residual, multipliers.logits) == (1.0, 1.0, 1.0)
    names = [name for name, _ in build_model(spec, width).named_parameters()]
    assert "blocks.2.perceptron.linear.weight" in names and "blocks.2.norm.weight" in names
    for name in names:
        rule = parameter_rule(spec, width, name)
        assert (rule.lr_mult, rule.eps_mult) == (1.0, 1.0), name
        if rule.role == "hidden":
            assert rule.init_std == spec.parametrization.init_std, name
