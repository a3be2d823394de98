"""μP upscaling (trainer/upscale.py): the widened model is the proxy's function, and with the widened
Adam state it follows the proxy's training trajectory step for step until noise breaks the copies'
symmetry (Ma et al. 2026, arXiv 2602.10545). Float64 on CPU, so "the same" is to rounding."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from trainer import ArchitectureSpec
from trainer.model import GPT, build_model
from trainer.mup import make_optimizer
from trainer.upscale import UpscaleError, upscale, upscale_optimizer


@pytest.fixture(autouse=True)
def float64() -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def spec_of(**fields: object) -> ArchitectureSpec:
    base = {
        "name": "upscale",
        "n_layers": 2,
        "head_dim": 8,
        "context_length": 16,
        "parametrization": {"base_width": 16},
        "training": {"lr": 0.01, "weight_decay": 0.1},
    }
    return ArchitectureSpec.model_validate({**base, **fields})


def batches(spec: ArchitectureSpec, n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, spec.vocab_size, (4, spec.context_length + 1), generator=g) for _ in range(n)]


def step(model: GPT, optimizer: torch.optim.Optimizer, batch: torch.Tensor) -> float:
    logits = model(batch[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def trained(spec: ArchitectureSpec, width: int, data: list[torch.Tensor]) -> tuple[GPT, torch.optim.AdamW]:
    torch.manual_seed(0)
    model = build_model(spec, width)
    optimizer = make_optimizer(model, spec)
    for batch in data:
        step(model, optimizer, batch)
    return model, optimizer


def max_diff(a: GPT, b: GPT, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(tokens) - b(tokens)).abs().max())


VARIANTS = [
    ({}, 16, 32),  # GELU, learned positions, untied, from the base width
    ({"activation": "swiglu", "positions": "rope", "tie_embeddings": True}, 16, 48),  # ×3, tied readout
    ({"activation": "relu2", "norm": "rmsnorm", "norm_gains": True}, 32, 64),  # from m = 2, with gains
    ({"parametrization": {"base_width": 16, "depth_alpha": 1.0}, "n_layers": 4}, 16, 64),  # CompleteP
    # Block "single" (TP-VI's block depth 1) under Depth-μP: one width × width matrix, mean subtraction.
    (
        {"block": "single", "activation": "abs", "norm_gains": True, "n_layers": 4}
        | {"parametrization": {"base_width": 16, "base_depth": 2, "depth_alpha": 0.5}},
        16,
        32,
    ),
]


@pytest.mark.parametrize(("fields", "width", "to_width"), VARIANTS)
def test_the_widened_model_is_the_same_function_and_trains_the_same(
    fields: dict, width: int, to_width: int
) -> None:
    spec = spec_of(**fields)
    data = batches(spec, 10)
    model, optimizer = trained(spec, width, data[:5])
    wide = upscale(model, spec, to_width)
    assert wide.width == to_width and sum(p.numel() for p in wide.parameters()) > sum(
        p.numel() for p in model.parameters()
    )
    probe = data[0][:, :-1]
    assert max_diff(model, wide, probe) < 1e-12
    wide_optimizer = upscale_optimizer(optimizer, model, wide, spec)
    for batch in data[5:]:
        assert step(wide, wide_optimizer, batch) == pytest.approx(step(model, optimizer, batch), abs=1e-12)
    assert max_diff(model, wide, probe) < 1e-10  # five Adam steps later, still the proxy's function


def test_a_fresh_optimizer_instead_of_the_widened_state_leaves_the_trajectory() -> None:
    spec = spec_of()
    data = batches(spec, 8)
    model, optimizer = trained(spec, 16, data[:5])
    wide = upscale(model, spec, 32)
    fresh = make_optimizer(wide, spec)  # Adam's moments restart: the first steps are ±lr
    for batch in data[5:]:
        step(model, optimizer, batch)
        step(wide, fresh, batch)
    assert max_diff(model, wide, data[0][:, :-1]) > 1e-4


def test_noise_breaks_the_symmetry_in_proportion_to_its_scale() -> None:
    spec = spec_of()
    data = batches(spec, 3)
    model, _ = trained(spec, 16, data)
    probe = data[0][:, :-1]
    diffs = []
    for noise in (0.01, 0.1):
        wide = upscale(model, spec, 32, noise=noise, seed=3)
        diffs.append(max_diff(model, wide, probe))
        qkv = wide.blocks[0].attn.qkv.weight  # rows: Q (zero-initialised, so no noise), then K and V
        assert not torch.equal(qkv[32:, :16], qkv[32:, 16:])  # the copies of K and V now differ
        assert torch.equal(qkv[:32, :16], qkv[:32, 16:])
        assert not torch.equal(wide.wte.weight[:, :16], wide.wte.weight[:, 16:])
        assert wide.lm_head is not None  # the zero-initialised readout gets no noise
        assert torch.equal(wide.lm_head.weight[:, :16], wide.lm_head.weight[:, 16:])
    assert 0 < diffs[0] < diffs[1]
    assert diffs[1] / diffs[0] == pytest.approx(10, rel=0.3)  # first order in the noise
    again = upscale(model, spec, 32, noise=0.1, seed=3)
    assert max_diff(again, upscale(model, spec, 32, noise=0.1, seed=3), probe) == 0  # the seed fixes it


@pytest.mark.parametrize(
    ("fields", "to_width", "message"),
    [
        ({"parametrization": {"base_width": 16, "mode": "sp"}}, 32, "only under μP"),
        ({}, 40, "whole multiple"),
        ({}, 16, "whole multiple"),
        ({}, 36, "not a multiple of head size 8"),
        ({"ffn_ratio": 2.7}, 48, "FFN hidden size does not scale"),  # 43 hidden units at 16, 130 at 48
    ],
)
def test_widenings_that_cannot_keep_the_function_are_refused_with_the_fix(
    fields: dict, to_width: int, message: str
) -> None:
    spec = spec_of(**fields)
    torch.manual_seed(0)
    model = build_model(spec, 16)
    with pytest.raises((UpscaleError, ValueError), match=message):
        upscale(model, spec, to_width)


def test_negative_noise_is_refused() -> None:
    spec = spec_of()
    model = build_model(spec, 16)
    with pytest.raises(UpscaleError, match="noise"):
        upscale(model, spec, 32, noise=-1.0)


def test_train_warm_starts_from_a_widened_final_state() -> None:
    """train(warm_start=...) begins where the proxy ended: with no noise and a vanishing LR its
    validation loss is the proxy's final one; noise moves it; the wide run then trains on."""
    import trainer
    from trainer.checkpoint import TrainState
    from trainer.upscale import WarmStart

    torch.set_default_dtype(torch.float32)  # train() runs in float32
    # No weight decay: it is independent of the LR here (trainer/mup.py), so it would move the weights.
    spec = spec_of(training={"lr": 0.01, "steps": 12, "batch_tokens": 128, "weight_decay": 0.0})
    corpus = trainer.load_corpus(spec.dataset)
    states: list[TrainState] = []
    proxy = trainer.train(
        spec, 16, seed=0, corpus=corpus, device="cpu", checkpoint_at={12}, on_checkpoint=states.append
    )
    assert [s.step for s in states] == [12] and proxy.val_loss is not None

    def warm(noise: float, lr: float, steps: int) -> float:
        start = WarmStart(states[0], noise)
        result = trainer.train(
            spec, 32, seed=1, steps=steps, lr=lr, corpus=corpus, device="cpu", warm_start=start
        )
        assert result.status == "succeeded" and result.val_loss is not None
        return result.val_loss

    assert warm(0.0, 1e-12, 1) == pytest.approx(proxy.val_loss, abs=1e-4)
    assert abs(warm(1.0, 1e-12, 1) - proxy.val_loss) > 2e-4  # a fresh μP init on top moves it
    assert warm(0.1, 0.01, 12) < proxy.val_loss  # 12 more steps of the wider model
    with pytest.raises(UpscaleError, match="whole multiple"):
        trainer.train(spec, 40, corpus=corpus, device="cpu", warm_start=WarmStart(states[0]))
