"""ArchitectureSpec: defaults, validation messages that name the fix, hashing, the example specs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from trainer import ArchitectureSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "specs"


def test_defaults_make_a_valid_tiny_model() -> None:
    spec = ArchitectureSpec(name="defaults")
    assert spec.family == "gpt"
    assert spec.parametrization.mode == "mup"
    assert spec.parametrization.base_depth == spec.n_layers
    assert spec.vocab_size == 256
    assert spec.proxy_widths == [32, 48, 64, 96, 128]
    assert spec.batch_size * spec.context_length == spec.training.batch_tokens


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"head_dim": 32, "proxy_widths": [100]},
            "width 100 is not a multiple of head size 32: use 96 or 128",
        ),
        ({"context_length": 100, "training": {"batch_tokens": 250}}, "use 200 or 300"),
        ({"proxy_widths": [32, 32]}, "repeats a width"),
        ({"positions": "rope", "head_dim": 15, "proxy_widths": [30]}, "even head_dim"),
        ({"parametrization": {"depth_alpha": 0.7}}, "use 0 (width-only μP), 0.5 (Depth-μP) or 1"),
        ({"training": {"betas": [0.9, 1.2]}}, "must lie in [0, 1)"),
        ({"training": {"steps": 3, "token_budget": 10000}}, "set one of the two"),
        ({"dataset": {"source": "tokens.bin"}}, "set dataset.tokenizer to 'pretokenized'"),
        ({"dataset": {"source": "a.txt", "tokenizer": "pretokenized"}}, "needs a uint16 .bin source"),
        ({"dataset": {"source": "t.bin", "tokenizer": "pretokenized"}}, "needs dataset.vocab_size"),
        ({"dataset": {"tokenizer": "byte", "vocab_size": 512}}, "set dataset.tokenizer to 'bpe'"),
        ({"dataset": {"tokenizer": "bpe", "vocab_size": 100}}, "set dataset.vocab_size above 256"),
        ({"family": "bert"}, "'gpt'"),
        ({"activation": "tanh"}, "'gelu', 'swiglu', 'relu2' or 'abs'"),
        ({"block": "single", "activation": "swiglu"}, "so no gate for 'swiglu': use 'abs'"),
        ({"block": "attention"}, "'transformer' or 'single'"),
        ({"n_layer": 4}, "Extra inputs are not permitted"),
        (
            {"training": {"token_budget": 10**13, "batch_tokens": 256}},
            "= 39062500000 steps exceed the limit of 10000000 steps: lower token_budget or raise",
        ),
        ({"name": "a\u0000b"}, "must not contain the NUL character"),
        ({"name": "a\ud800b"}, "unable to parse raw data as a unicode string"),
        ({"dataset": {"source": "a\ud800.txt"}}, "unable to parse raw data as a unicode string"),
        ({"dataset": {"source": "/data/a\u0000.txt"}}, "must not contain the NUL character"),
    ],
)
def test_validation_errors_name_the_fix(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        ArchitectureSpec.model_validate({"name": "bad", **fields})
    assert message in str(error.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "5"])
@pytest.mark.parametrize(
    "fields",
    [
        lambda v: {"ffn_ratio": v},
        lambda v: {"n_layers": v},
        lambda v: {"proxy_widths": [32, v]},
        lambda v: {"training": {"lr": v}},
        lambda v: {"training": {"betas": [v, 0.95]}},
        lambda v: {"training": {"steps": v}},
        lambda v: {"parametrization": {"init_std": v}},
        lambda v: {"parametrization": {"depth_alpha": v}},
        lambda v: {"dataset": {"val_fraction": v}},
    ],
)
def test_numbers_are_finite_json_numbers(
    fields: Callable[[object], dict[str, object]], value: object
) -> None:
    """No NaN or infinity, no `true` for 1, no "5" for 5: each is an error at the field."""
    with pytest.raises(ValidationError) as error:
        ArchitectureSpec.model_validate({"name": "bad", **fields(value)})
    assert error.value.error_count() == 1, error.value
    assert error.value.errors()[0]["type"] in {"finite_number", "float_type", "int_type"}


def test_validate_width_names_the_nearest_valid_widths() -> None:
    spec = ArchitectureSpec(name="x", head_dim=32, proxy_widths=[64])
    spec.validate_width(96)
    with pytest.raises(ValueError, match="width 100 is not a multiple of head size 32: use 96 or 128"):
        spec.validate_width(100)
    with pytest.raises(ValueError, match="positive integer"):
        spec.validate_width(0)


def test_token_budget_resolves_to_steps_and_hashes_like_them() -> None:
    by_budget = ArchitectureSpec.model_validate(
        {"name": "a", "training": {"token_budget": 10_000, "batch_tokens": 2048}}
    )
    assert by_budget.training.steps == 5  # ceil(10000 / 2048)
    by_steps = ArchitectureSpec.model_validate({"name": "b", "training": {"steps": 5}})
    assert by_budget.spec_hash() == by_steps.spec_hash()
    assert ArchitectureSpec.model_validate(by_budget.model_dump()).training.steps == 5


def test_hash_ignores_name_and_follows_every_training_field() -> None:
    a = ArchitectureSpec(name="a")
    assert a.spec_hash() == ArchitectureSpec(name="b").spec_hash()
    assert (
        a.spec_hash() != ArchitectureSpec.model_validate({"name": "a", "training": {"lr": 0.02}}).spec_hash()
    )
    assert a.spec_hash() != ArchitectureSpec(name="a", activation="swiglu").spec_hash()
    assert json.loads(a.canonical_json())["n_layers"] == 2


def test_every_example_spec_validates() -> None:
    paths = sorted(EXAMPLES.glob("*.json"))
    names = {path.name for path in paths}
    assert {"gpt_gelu.json", "gpt_swiglu.json", "rope_rmsnorm_depth_mup.json"} <= names
    for path in paths:
        spec = ArchitectureSpec.model_validate(json.loads(path.read_text()))
        assert spec.name, path
        assert spec.dataset.source == "builtin", f"{path.name} must train with no download"
