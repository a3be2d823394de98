"""Proofs that trainer/mup.py implements μP, in the manner of microsoft/mup's own tests.

(a) every parameter's init std, Adam LR and ε follow trainer/mup.py's rules in m and m_L;
(b) at the base shape μP is exactly the plain base model, forward and under AdamW.
The coordinate checks (flat under μP, growing under SP; along depth with CompleteP) are in
test_coord_check.py, on the same trainer.coord_check the service serves.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainer import ArchitectureSpec, Corpus, build_model, make_optimizer
from trainer.mup import forward_multipliers
from trainer.reference import PlainGPT


@pytest.fixture(scope="module")
def fixed_batch(builtin_corpus: Corpus) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = builtin_corpus.sample_batch(np.random.default_rng(0), 4, 64)
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("width", [32, 128])
def test_each_parameter_follows_the_table(alpha: float, width: int) -> None:
    base_lr, eps, sigma, wd = 0.01, 1e-8, 0.02, 0.1
    spec = ArchitectureSpec.model_validate(
        {
            "name": "table",
            "n_layers": 4,
            "head_dim": 16,
            "norm_gains": True,
            "parametrization": {"base_width": 32, "base_depth": 2, "depth_alpha": alpha, "init_std": sigma},
            "training": {"lr": base_lr, "adam_eps": eps, "weight_decay": wd},
        }
    )
    m, m_depth = width / 32, 4 / 2
    torch.manual_seed(0)
    model = build_model(spec, width)
    optimizer = make_optimizer(model, spec)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    hidden_lr = base_lr / m * m_depth ** (alpha - 1)
    expected: dict[str, tuple[float | None, float, float]] = {  # suffix -> (init std, Adam LR, Adam ε)
        "wte.weight": (sigma, base_lr, eps / m),
        "wpe.weight": (sigma, base_lr, eps / m),
        "lm_head.weight": (0.0, base_lr, eps / m),
        "attn.qkv.weight": (None, hidden_lr, eps / m * m_depth**-alpha),  # Q rows 0, K and V σ/√m
        "attn.out.weight": (sigma / math.sqrt(m), hidden_lr, eps / m * m_depth**-alpha),
        "mlp.up.weight": (sigma / math.sqrt(m), hidden_lr, eps / m * m_depth**-alpha),
        "mlp.down.weight": (sigma / math.sqrt(m), hidden_lr, eps / m * m_depth**-alpha),
        "norm1.weight": (None, base_lr * m_depth ** (alpha - 1), eps / m * m_depth**-alpha),
        "norm2.weight": (None, base_lr * m_depth ** (alpha - 1), eps / m * m_depth**-alpha),
        "norm_f.weight": (None, base_lr, eps / m),
    }
    for name, param in model.named_parameters():
        std, lr, group_eps = next(rule for suffix, rule in expected.items() if name.endswith(suffix))
        group = group_of[id(param)]
        assert group["lr"] == pytest.approx(lr, rel=1e-12), name
        assert group["eps"] == pytest.approx(group_eps, rel=1e-12), name
        if "norm" in name:
            assert torch.all(param == 1) and group["weight_decay"] == 0, name
            continue
        # Independent weight decay: the shrink per step, lr × weight_decay, is the same at every width.
        assert group["lr"] * group["weight_decay"] == pytest.approx(wd), name
        if name.endswith("qkv.weight"):
            assert torch.all(param[:width] == 0), "the query must be zero-initialised"
            assert param[width:].std().item() == pytest.approx(sigma / math.sqrt(m), rel=0.1), name
        elif std == 0.0:
            assert torch.all(param == 0), name
        else:
            assert param.std().item() == pytest.approx(std, rel=0.1), name
    multipliers = forward_multipliers(spec, width)
    assert multipliers.logits == pytest.approx(1 / m)
    assert multipliers.residual == pytest.approx(m_depth**-alpha)
    # α_attn defaults to √d_head: μP's α_attn / d_head is SP's 1/√d_head at every width (fixed head size).
    assert multipliers.attention == pytest.approx(1 / math.sqrt(16))
    assert multipliers.embedding == 1.0


def test_sp_uses_one_learning_rate_and_fan_in_init() -> None:
    spec = ArchitectureSpec.model_validate(
        {"name": "sp", "head_dim": 16, "parametrization": {"mode": "sp", "base_width": 32}}
    )
    torch.manual_seed(0)
    model = build_model(spec, 128)
    optimizer = make_optimizer(model, spec, lr=0.003)
    assert {g["lr"] for g in optimizer.param_groups} == {0.003}
    assert model.lm_head is not None
    assert model.lm_head.weight.std().item() == pytest.approx(0.02 / 2, rel=0.1)  # σ/√m, m = 4
    assert forward_multipliers(spec, 128).attention == pytest.approx(1 / 4)  # 1/√d_head


@pytest.mark.parametrize("fields", [{}, {"activation": "swiglu", "norm": "rmsnorm", "norm_gains": True}])
def test_mup_at_base_shape_is_the_plain_base_model(
    fields: dict[str, Any], fixed_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """m = m_L = 1 and the default α_attn = √d_head (the usual 1/√d_head scale): μP multiplies by nothing, so
    model and optimizer are a plain PyTorch GPT under one plain AdamW, step for step."""
    head_dim, lr = 16, 0.01
    spec = ArchitectureSpec.model_validate(
        {
            "name": "base",
            "head_dim": head_dim,
            "context_length": 64,
            # α_attn is left to its default, √d_head, which makes μP equal SP at the base shape.
            "parametrization": {"base_width": 64, "depth_alpha": 1.0},
            "training": {"lr": lr},
            **fields,
        }
    )
    rules = forward_multipliers(spec, 64)
    assert (rules.embedding, rules.residual, rules.logits) == (1.0, 1.0, 1.0)
    torch.manual_seed(0)
    model = build_model(spec, 64)
    plain = PlainGPT(spec, 64)
    plain.load_state_dict(model.state_dict())
    x, y = fixed_batch
    torch.testing.assert_close(model(x), plain(x), rtol=0, atol=1e-6)

    mup_adam = make_optimizer(model, spec)
    t = spec.training
    plain_adam = torch.optim.AdamW(plain.parameters(), lr=lr, betas=t.betas, eps=t.adam_eps, weight_decay=0)
    for _ in range(3):
        for net, optimizer in ((model, mup_adam), (plain, plain_adam)):
            F.cross_entropy(net(x).flatten(0, 1), y.flatten()).backward()
            optimizer.step()
            optimizer.zero_grad()
    plain_params = dict(plain.named_parameters())
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, plain_params[name], rtol=1e-5, atol=1e-6, msg=name)


def test_make_optimizer_needs_a_built_model() -> None:
    with pytest.raises(TypeError, match=r"trainer\.build_model"):
        make_optimizer(torch.nn.Linear(2, 2), ArchitectureSpec(name="x"))
