"""Proofs that trainer/mup.py implements μP, in the manner of microsoft/mup's own tests.

(a) coordinate check in width: flat under μP, growing under SP (so the check can fail);
(b) every parameter's init std, Adam LR and ε follow the DESIGN.md table in m and m_L;
(c) at the base shape μP is exactly the plain base model, forward and under AdamW;
(d) depth: with α = 1 (CompleteP) activations stay flat as depth grows ×1…×8; without depth scaling
    they grow.
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

COORD_STEPS = 3  # "a few steps"
COORD_LR = 0.01  # large for Adam: SP's wide models blow up within three steps at this LR
COORD_SEEDS = (0, 1, 2)  # mean over initialisations, as mup's coord_check does (nseeds)
FLAT = 0.15  # |log-log slope| below this is flat


def coord_spec(mode: str, **fields: Any) -> ArchitectureSpec:
    parametrization = {"mode": mode, "base_width": 32, **fields.pop("parametrization", {})}
    return ArchitectureSpec.model_validate(
        {
            "name": "coord",
            "n_layers": 2,
            "head_dim": 16,
            "context_length": 64,
            "parametrization": parametrization,
            "training": {"lr": COORD_LR, "batch_tokens": 256, "grad_clip": 0.0},
            **fields,
        }
    )


@pytest.fixture(scope="module")
def fixed_batch(builtin_corpus: Corpus) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = builtin_corpus.sample_batch(np.random.default_rng(0), 4, 64)
    return torch.from_numpy(x), torch.from_numpy(y)


def block_output_sizes(
    spec: ArchitectureSpec, width: int, batch: tuple[torch.Tensor, torch.Tensor]
) -> np.ndarray:
    """Mean |activation| of each block's output after COORD_STEPS Adam steps on one fixed batch,
    averaged over COORD_SEEDS."""
    x, y = batch
    sizes = []
    for seed in COORD_SEEDS:
        torch.manual_seed(seed)
        model = build_model(spec, width)
        optimizer = make_optimizer(model, spec)
        for _ in range(COORD_STEPS):
            F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
            optimizer.step()
            optimizer.zero_grad()
        seen: list[float] = []

        def record(_module: torch.nn.Module, _inputs: object, out: torch.Tensor, seen: list = seen) -> None:
            seen.append(out.abs().mean().item())

        hooks = [block.register_forward_hook(record) for block in model.blocks]
        with torch.no_grad():
            model(x)
        for hook in hooks:
            hook.remove()
        sizes.append(seen)
    return np.mean(sizes, axis=0)  # (n_layers,)


def log_log_slope(x: list[int], y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


ARCHITECTURES = [
    {},
    {"activation": "swiglu", "norm": "rmsnorm", "positions": "rope", "norm_gains": True},
]


@pytest.mark.parametrize("fields", ARCHITECTURES, ids=["gelu-layernorm-learned", "swiglu-rmsnorm-rope"])
def test_coordinate_check_is_flat_in_width_under_mup_and_grows_under_sp(
    fields: dict[str, Any], fixed_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    widths = [32, 64, 128, 256]  # ×1 … ×8 the base width
    slopes = {}
    for mode in ("mup", "sp"):
        spec = coord_spec(mode, **fields)
        sizes = np.stack([block_output_sizes(spec, w, fixed_batch) for w in widths])  # (widths, blocks)
        slopes[mode] = [log_log_slope(widths, sizes[:, block]) for block in range(sizes.shape[1])]
    assert max(abs(s) for s in slopes["mup"]) < FLAT, slopes
    assert min(slopes["sp"]) > 0.5, slopes  # the check fails a model that is not μP


def test_depth_check_is_flat_with_completep_and_grows_without_depth_scaling(
    fixed_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    depths = [2, 4, 8, 16]  # ×1 … ×8 the base depth

    def last_block_sizes(alpha: float, base_depth: int | None) -> np.ndarray:
        return np.array(
            [
                block_output_sizes(
                    coord_spec(
                        "mup",
                        n_layers=depth,
                        parametrization={"depth_alpha": alpha, "base_depth": base_depth or depth},
                    ),
                    64,
                    fixed_batch,
                )[-1]
                for depth in depths
            ]
        )

    completep = log_log_slope(depths, last_block_sizes(1.0, base_depth=2))
    unscaled = log_log_slope(depths, last_block_sizes(0.0, base_depth=None))  # m_L = 1 at every depth
    assert abs(completep) < FLAT, completep
    assert unscaled > 0.3, unscaled


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
        "wte.weight": (sigma, base_lr, eps),
        "wpe.weight": (sigma, base_lr, eps),
        "lm_head.weight": (0.0, base_lr, eps),
        "attn.qkv.weight": (None, hidden_lr, eps / m * m_depth**-alpha),  # Q rows 0, K and V σ/√m
        "attn.out.weight": (sigma / math.sqrt(m), hidden_lr, eps / m * m_depth**-alpha),
        "mlp.up.weight": (sigma / math.sqrt(m), hidden_lr, eps / m * m_depth**-alpha),
        "mlp.down.weight": (sigma / math.sqrt(m), hidden_lr, eps / m * m_depth**-alpha),
        "norm1.weight": (None, base_lr * m_depth ** (alpha - 1), eps),
        "norm2.weight": (None, base_lr * m_depth ** (alpha - 1), eps),
        "norm_f.weight": (None, base_lr, eps),
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
    assert multipliers.attention == pytest.approx(1 / 16)
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
    """m = m_L = 1 and α_attn = √d_head (the usual 1/√d_head scale): μP multiplies by nothing, so
    model and optimizer are a plain PyTorch GPT under one plain AdamW, step for step."""
    head_dim, lr = 16, 0.01
    spec = ArchitectureSpec.model_validate(
        {
            "name": "base",
            "head_dim": head_dim,
            "context_length": 64,
            "parametrization": {"base_width": 64, "depth_alpha": 1.0, "alpha_attn": math.sqrt(head_dim)},
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
