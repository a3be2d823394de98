"""The normalized transformer (family "ngpt", issue 18): unit norms through training, the rule tables of
"ngpt" and "nugpt", their equality at the base shape, the coordinate check, and spec validation."""

from __future__ import annotations

import math

import pytest
import torch

from trainer import ArchitectureSpec, build_model, count_params, make_optimizer, train
from trainer.checkpoint import TrainState
from trainer.coord_check import coord_check
from trainer.ngpt import UNIT_DIMS, normalize_weights
from trainer.ngpt_rules import lr_mult, scaler_rule


def spec_of(mode: str = "nugpt", **fields: object) -> ArchitectureSpec:
    base = {
        "name": "n",
        "family": "ngpt",
        "n_layers": 2,
        "head_dim": 8,
        "context_length": 32,
        "parametrization": {"base_width": 32, "mode": mode},
        "training": {"steps": 40, "batch_tokens": 512, "eval_tokens": 2048, "lr": 0.01},
    }
    return ArchitectureSpec.model_validate({**base, **fields})


def unit_norm_error(model: torch.nn.Module) -> float:
    worst = 0.0
    for name, param in model.named_parameters():
        for suffix, dim in UNIT_DIMS.items():
            if name.endswith(suffix):
                worst = max(worst, float((param.detach().norm(dim=dim) - 1).abs().max()))
    return worst


def test_weights_and_hidden_states_stay_on_the_unit_sphere_through_training() -> None:
    spec = spec_of()
    states: list[TrainState] = []
    result = train(spec, 32, device="cpu", checkpoint_at=[10, 40], on_checkpoint=states.append)
    assert result.status == "succeeded" and result.val_loss is not None
    assert result.loss_curve[-1][1] < result.loss_curve[0][1] - 0.5  # it learns
    model = build_model(spec, 32)
    for state in states:
        model.load_state_dict(state.model)
        assert unit_norm_error(model) < 1e-5  # renormalised after every optimizer step
    hidden: list[torch.Tensor] = []
    for block in model.blocks:
        block.register_forward_hook(lambda _m, _i, out: hidden.append(out.detach()))
    model(torch.randint(0, spec.vocab_size, (2, 16)))
    assert len(hidden) == 2 and all(float((h.norm(dim=-1) - 1).abs().max()) < 1e-5 for h in hidden)


def test_an_optimizer_step_leaves_the_sphere_and_normalisation_brings_it_back() -> None:
    """The invariant is the renormalisation's doing, not the optimizer's: without it AdamW moves the rows."""
    spec = spec_of()
    model = build_model(spec, 32)
    optimizer = make_optimizer(model, spec)
    model(torch.randint(0, spec.vocab_size, (2, 16))).square().mean().backward()
    optimizer.step()
    assert unit_norm_error(model) > 1e-3
    normalize_weights(model)
    assert unit_norm_error(model) < 1e-6


def test_parameters_are_counted_and_no_group_decays() -> None:
    spec = spec_of()
    model = build_model(spec, 64)
    total, non_embedding = count_params(spec, 64)
    assert sum(p.numel() for p in model.parameters()) == total
    assert total - non_embedding == 2 * spec.vocab_size * 64 + spec.vocab_size  # wte, lm_head, s_z
    optimizer = make_optimizer(model, spec)
    assert all(group["weight_decay"] == 0.0 for group in optimizer.param_groups)


def test_the_rule_tables_of_both_parametrizations() -> None:
    """At m_width 4, m_depth 2, m_data 8: nGPT one LR for all and 1/√d scales; νGPT §3.1's six rules."""
    deep = {"n_layers": 4, "parametrization": {"base_width": 32, "base_depth": 2, "base_steps": 5}}
    ngpt = spec_of("ngpt", **{**deep, "parametrization": {**deep["parametrization"], "mode": "ngpt"}})
    nugpt = spec_of("nugpt", **{**deep, "parametrization": {**deep["parametrization"], "mode": "nugpt"}})
    width, steps = 128, 40
    for role in ("embedding", "hidden", "readout", "scaler"):
        assert lr_mult(ngpt, width, role, steps) == 1.0
    horizon = 8 ** (-1 / 3)
    assert lr_mult(nugpt, width, "embedding", steps) == pytest.approx(horizon * 4**-0.5)
    assert lr_mult(nugpt, width, "hidden", steps) == pytest.approx(horizon * 4**-0.75)
    assert lr_mult(nugpt, width, "readout", steps) == pytest.approx(horizon * 4**-0.75)
    assert lr_mult(nugpt, width, "scaler", steps) == pytest.approx(horizon)
    # Scaling vectors: nGPT's scale 1/√d grows their effective LR with width; νGPT's is constant.
    assert scaler_rule(ngpt, width, "alpha_a").scale == pytest.approx(1 / math.sqrt(128))
    assert scaler_rule(nugpt, width, "alpha_a").scale == pytest.approx(1 / math.sqrt(32))
    assert scaler_rule(ngpt, width, "alpha_m").init == 0.05
    assert scaler_rule(nugpt, width, "alpha_m").init == pytest.approx(0.05 / 2)  # × m_depth^(−1)
    assert scaler_rule(nugpt, width, "s_z").init == pytest.approx(2.0)  # × m_width^(1/2)
    assert scaler_rule(ngpt, width, "s_z").init == 1.0
    for spec in (ngpt, nugpt):
        assert (scaler_rule(spec, width, "s_uv").init, scaler_rule(spec, width, "s_uv").scale) == (1.0, 1.0)
        assert scaler_rule(spec, width, "s_qk").init == 1.0


def test_at_the_base_shape_nugpt_is_ngpt() -> None:
    x = torch.randint(0, 256, (2, 16))
    outputs, groups = [], []
    for mode in ("ngpt", "nugpt"):
        spec = spec_of(mode)
        torch.manual_seed(0)
        model = build_model(spec, 32)
        outputs.append(model(x))
        groups.append(sorted((g["role"], g["lr"]) for g in make_optimizer(model, spec).param_groups))
    assert torch.equal(outputs[0], outputs[1])
    assert groups[0] == groups[1]


def test_the_coordinate_check_passes_for_nugpt_and_shows_ngpts_drift() -> None:
    """Measured at widths 32–256, 5 Adam steps at lr 0.01 (coordinates × √d, trainer/coord_check.py):
    nugpt's steepest slope 0.18 (an MLP output's update), ngpt's 0.60, with its residual-stream updates
    and logits growing as about d^0.4: the width drift νGPT §3 and Fig. 2a report for nGPT's scaling.
    The test uses widths 32–128 to stay fast."""
    checks = {mode: coord_check(spec_of(mode), sizes=[32, 64, 128], steps=5) for mode in ("ngpt", "nugpt")}
    assert checks["nugpt"].verdict == "passes", checks["nugpt"].worst
    assert checks["ngpt"].verdict == "fails"
    stream = {
        mode: next(c for c in check.coordinates if c.name == "block 1 residual stream")
        for mode, check in checks.items()
    }
    assert stream["ngpt"].delta_slope > 0.25 > abs(stream["nugpt"].delta_slope), stream


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"norm_gains": True}, "does not take norm_gains"),
        ({"activation": "gelu"}, "SwiGLU"),
        ({"positions": "learned"}, "normalises q and k after RoPE"),
        ({"tie_embeddings": True}, "input and output embeddings are separate"),
        ({"norm": "rmsnorm"}, "does not take norm"),
        ({"training": {"weight_decay": 0.1}}, "without weight decay"),
        ({"training": {"warmup_fraction": 0.1}}, "without warmup"),
        ({"parametrization": {"mode": "mup"}}, "use 'nugpt' or 'ngpt'"),
        ({"parametrization": {"depth_alpha": 1.0}}, "scales α_init with depth"),
        ({"parametrization": {"init_std": 0.1}}, "scaling vectors replace them"),
        ({"block": "single"}, "blocks are attention and MLP"),
    ],
)
def test_fields_that_mean_nothing_for_ngpt_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ArchitectureSpec.model_validate({"name": "n", "family": "ngpt", **fields})
    assert message in str(caught.value)


def test_ngpt_defaults_and_the_gpt_family_refuses_ngpt_modes() -> None:
    spec = ArchitectureSpec.model_validate({"name": "n", "family": "ngpt"})
    assert (spec.parametrization.mode, spec.activation, spec.positions, spec.training.warmup_fraction) == (
        "nugpt",
        "swiglu",
        "rope",
        0.0,
    )
    with pytest.raises(ValueError, match="is for family 'ngpt'"):
        ArchitectureSpec.model_validate({"name": "g", "parametrization": {"mode": "nugpt"}})
    with pytest.raises(ValueError, match="family 'ngpt' only"):
        ArchitectureSpec.model_validate({"name": "g", "parametrization": {"base_steps": 10}})


def test_a_stored_ngpt_spec_validates_again() -> None:
    """The API stores every field and validates the spec again on each read: the defaults the family
    ignores (norm, multipliers) must pass when given, as a dump gives them."""
    spec = ArchitectureSpec.model_validate({"name": "n", "family": "ngpt"})
    again = ArchitectureSpec.model_validate(spec.model_dump(mode="json"))
    assert again == spec and again.spec_hash() == spec.spec_hash()


@pytest.mark.parametrize("mode", ["nugpt", "ngpt"])
def test_an_ngpt_run_at_a_huge_lr_diverges_as_a_result_not_a_crash(mode: str) -> None:
    # Unit-norm weights bound the hidden state, not the scaling vectors: at lr 10 s_z and the eigen
    # learning rates take the loss from 5.6 to about 20 within two steps; the run must end "diverged",
    # as a gpt run does (tests/trainer/test_train.py), and a sane LR on the same spec must not.
    training = {"steps": 40, "batch_tokens": 512, "eval_tokens": 2048, "grad_clip": 0.0}
    result = train(spec_of(mode, training={**training, "lr": 10.0}), 32)
    assert result.status == "diverged"
    assert result.reason and ("blew up" in result.reason or "became" in result.reason)
    assert result.val_loss is None and result.final_train_loss is None
    sane = train(spec_of(mode, training={**training, "lr": 0.01}), 32)
    assert sane.status == "succeeded" and sane.val_loss is not None and math.isfinite(sane.val_loss)
