"""The architecture spec: the one pydantic definition the trainer, the HTTP API and the CLI share.

A spec describes a *family* of models: everything but the width. `build_model(spec, width)` picks one
member; the proxy ladder is `spec.proxy_widths`. Every field has a default, so
`ArchitectureSpec(name="x")` is a tiny model that trains on a CPU in seconds.

Two specs that differ only in `name` train identically, so `canonical_json()` leaves the name out and
`spec_hash()` is the identity the API deduplicates on.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import PurePath
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

BYTE_VOCAB_SIZE = 256  # the byte-level tokenizer: one token per byte value
DEFAULT_BPE_VOCAB_SIZE = 4096
UINT16_VOCAB_SIZE = 65536  # ids of the train-time tokenizers and of .bin files are stored as uint16
MAX_VOCAB_SIZE = 262144  # prepared corpora store uint32 ids: Llama 3's 128,256, Gemma's 256,000 fit
MAX_STEPS = 10_000_000  # optimizer steps of one run, given or derived from a token budget
MAX_DEPTH = 256  # transformer blocks of one model: n_layers' bound
MAX_PATH_CHARS = 4096  # a dataset source: Linux's PATH_MAX (a 50 MB source string was stored and served)

# Numbers as JSON numbers, and finite: lax parsing read `true` as 1 and "5" as 5, and let NaN, Infinity
# and 1e400 (which json.loads reads as inf) through to the response, which then failed to render.
StrictNumber = Annotated[float, Strict(), AllowInfNan(False)]
StrictInteger = Annotated[int, Strict()]


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError(
            "must not contain the NUL character (\\u0000), which PostgreSQL cannot store: remove it"
        )
    return value


# Text that SQLite and PostgreSQL both store: PostgreSQL refuses NUL, which SQLite kept. (A lone
# surrogate, "\ud800", is refused by pydantic itself wherever a length is checked.)
Text = Annotated[str, AfterValidator(_storable)]


def _nearest_multiples(value: int, step: int) -> str:
    lower = max(step, value // step * step)
    upper = lower + step if lower < value else lower
    return f"{lower}" if lower == upper else f"{lower} or {upper}"


class ParametrizationSpec(BaseModel):
    """How initialisation, multipliers and learning rates scale with width and depth (trainer/mup.py)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["mup", "sp", "ngpt", "nugpt"] = Field(
        "mup",
        description="Family 'gpt': 'mup' (maximal update parametrization) or 'sp' (standard, for "
        "side-by-side checks). Family 'ngpt': 'nugpt' (νGPT's transfer rules, the default) or 'ngpt' "
        "(the original nGPT scaling), trainer/ngpt_rules.py.",
    )
    base_width: StrictInteger = Field(
        32, ge=1, le=65536, description="Width at which μP equals the base model: m = width / base_width."
    )
    base_depth: StrictInteger | None = Field(
        None,
        ge=1,
        le=256,
        description="Depth at which μP equals the base model: m_L = n_layers / base_depth. "
        "Defaults to n_layers (no depth transfer).",
    )
    base_steps: StrictInteger | None = Field(
        None,
        ge=1,
        le=MAX_STEPS,
        description="Family 'ngpt' only: the horizon (steps) at which νGPT's LR rules equal the base model "
        "(LR × (steps / base_steps)^(−1/3)). Default: training.steps.",
    )
    depth_alpha: StrictNumber = Field(
        0.0,
        description="Depth exponent α: residual branches × m_L^(−α). 0 = width-only μP, "
        "0.5 = Depth-μP (Tensor Programs VI), 1 = CompleteP (Dey et al. 2025).",
    )
    alpha_in: StrictNumber = Field(
        1.0, gt=0, le=1e4, description="Embedding output multiplier α_in (constant in width)."
    )
    alpha_out: StrictNumber = Field(
        1.0, gt=0, le=1e4, description="Logit multiplier α_out; μP divides it by m."
    )
    alpha_attn: StrictNumber | None = Field(
        None,
        gt=0,
        le=1e4,
        description="Attention logit multiplier: μP scales q·k by α_attn / d_head. Default √head_dim, so "
        "that at the base shape μP's α_attn / d_head equals SP's 1/√d_head.",
    )
    init_std: StrictNumber = Field(
        0.02, gt=0, le=10, description="σ: embedding init std, and hidden-matrix init std at the base width."
    )

    @field_validator("depth_alpha")
    @classmethod
    def _known_alpha(cls, value: float) -> float:
        if value not in (0.0, 0.5, 1.0):
            raise ValueError(
                f"depth_alpha {value} is not supported: use 0 (width-only μP), 0.5 (Depth-μP) "
                "or 1 (CompleteP)"
            )
        return float(value)


def decay_steps(decay_fraction: float, total_steps: int) -> int:
    """Steps of a warmup-stable-decay run's final linear decay (at least one): train.lr_factor's, and
    each token-horizon branch's cooldown (trainer/horizon.py)."""
    return max(1, int(decay_fraction * total_steps))


class TrainingSpec(BaseModel):
    """The training recipe, shared by every width (μP transfers it; no per-size search)."""

    model_config = ConfigDict(extra="forbid")

    lr: StrictNumber = Field(
        0.01, gt=0, le=10, description="Base Adam learning rate (the LR at the base shape)."
    )
    schedule: Literal["cosine", "wsd"] = Field(
        "cosine", description="'cosine' decay to min_lr_ratio, or 'wsd' (warmup-stable-decay, linear to 0)."
    )
    warmup_fraction: StrictNumber = Field(
        0.05, ge=0, lt=1, description="Fraction of the steps spent in linear warmup from 0."
    )
    decay_fraction: StrictNumber = Field(
        0.2, gt=0, le=1, description="wsd only: fraction of the steps spent in the final linear decay."
    )
    min_lr_ratio: StrictNumber = Field(
        0.1, ge=0, le=1, description="cosine only: final LR as a fraction of the peak LR."
    )
    steps: StrictInteger = Field(
        300, ge=1, le=MAX_STEPS, description="Optimizer steps; the token budget is steps × batch_tokens."
    )
    token_budget: StrictInteger | None = Field(
        None,
        ge=1,
        le=10**13,
        description="Training tokens, as an alternative to steps: steps = ceil(token_budget / batch_tokens).",
    )
    batch_tokens: StrictInteger = Field(
        2048, ge=1, le=2**24, description="Tokens per optimizer step (a multiple of context_length)."
    )
    weight_decay: StrictNumber = Field(
        0.0,
        ge=0,
        lt=1,
        description="Independent weight decay: each step shrinks matrices by weight_decay × the schedule "
        "factor, not × the LR, so it does not change with width (Lingle 2024; Kosson et al. 2025).",
    )
    grad_clip: StrictNumber = Field(
        1.0, ge=0, le=1e6, description="Clip the global gradient norm to this value; 0 = off."
    )
    betas: tuple[StrictNumber, StrictNumber] = Field((0.9, 0.95), description="Adam β1, β2.")
    adam_eps: StrictNumber = Field(
        1e-8, gt=0, le=1, description="Adam ε at the base shape; μP scales it for hidden matrices."
    )
    seed: StrictInteger = Field(
        0, ge=0, le=2**31 - 1, description="Seed of the initialisation and of the batch order."
    )
    eval_tokens: StrictInteger = Field(
        32768,
        ge=1,
        le=2**24,
        description="Held-out tokens (fixed windows) the validation loss is measured on.",
    )

    def warmup_steps_for(self, total_steps: int) -> int:
        """The warmup of a run of `total_steps`: warmup_fraction of it (token-horizon branches share the
        shortest budget's, trainer/horizon.py)."""
        return int(self.warmup_fraction * total_steps)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError(f"betas {value} must lie in [0, 1), e.g. [0.9, 0.95]")
        return value

    @model_validator(mode="after")
    def _resolve_steps(self) -> TrainingSpec:
        if self.token_budget is None:
            return self
        steps = math.ceil(self.token_budget / self.batch_tokens)
        if steps > MAX_STEPS:
            # Checked here because the derived value is assigned, not validated: stored unchecked, it
            # was a row that no longer loaded and took the architecture list down with it.
            raise ValueError(
                f"training.token_budget {self.token_budget} / batch_tokens {self.batch_tokens} = {steps} "
                f"steps exceed the limit of {MAX_STEPS} steps: lower token_budget or raise batch_tokens "
                f"(at most {MAX_STEPS * self.batch_tokens} tokens at this batch size)"
            )
        if "steps" in self.model_fields_set and self.steps != steps:
            raise ValueError(
                f"training.steps {self.steps} disagrees with training.token_budget {self.token_budget} "
                f"/ batch_tokens {self.batch_tokens} = {steps} steps: set one of the two"
            )
        self.steps = steps
        return self


class DatasetSpec(BaseModel):
    """Where the tokens come from (trainer/data.py). Nothing is downloaded."""

    model_config = ConfigDict(extra="forbid")

    source: Text = Field(
        "builtin",
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="'builtin' (the Python standard library's own sources, present on every machine), "
        "a text file, a folder of text files (recursive), a pre-tokenized uint16 .bin file, or a corpus "
        "folder written by `mupredict data prepare`, inside the data roots the service allows "
        "(MUPREDICT_DATA_DIRS).",
    )
    tokenizer: Literal["byte", "bpe", "pretokenized", "prepared"] = Field(
        "byte",
        description="'byte' (256 tokens), 'bpe' (byte-level BPE trained locally on the source), "
        "'pretokenized' for a .bin source, or 'prepared' for a folder from `mupredict data prepare` "
        "(its manifest names the tokenizer).",
    )
    vocab_size: StrictInteger | None = Field(
        None,
        ge=2,
        le=MAX_VOCAB_SIZE,
        description="Vocabulary size: 256 for 'byte'; the size to train for 'bpe' (default 4096); "
        "required for 'pretokenized' and 'prepared' (`mupredict data prepare` prints it).",
    )
    val_fraction: StrictNumber = Field(
        0.05, gt=0, lt=0.5, description="Fraction of the tokens held out for the validation loss."
    )

    @model_validator(mode="after")
    def _resolve_vocab(self) -> DatasetSpec:
        is_bin = PurePath(self.source).suffix == ".bin"
        if self.tokenizer == "prepared":
            if self.vocab_size is None:
                raise ValueError(
                    "a prepared corpus needs dataset.vocab_size: the vocabulary `mupredict data prepare` "
                    "printed (its manifest's tokenizer.vocab_size)"
                )
            return self
        if self.vocab_size is not None and self.vocab_size > UINT16_VOCAB_SIZE:
            raise ValueError(
                f"dataset.vocab_size {self.vocab_size} exceeds {UINT16_VOCAB_SIZE}, the most a "
                f"'{self.tokenizer}' corpus stores: prepare the corpus (mupredict data prepare, uint32 ids) "
                "and use tokenizer 'prepared'"
            )
        if is_bin and self.tokenizer != "pretokenized":
            raise ValueError(
                f"source {self.source!r} is a pre-tokenized .bin file: set dataset.tokenizer to "
                "'pretokenized' and dataset.vocab_size to the vocabulary it was tokenized with"
            )
        if self.tokenizer == "pretokenized":
            if not is_bin:
                raise ValueError(
                    f"tokenizer 'pretokenized' needs a uint16 .bin source, not {self.source!r}: "
                    "use tokenizer 'byte' or 'bpe' for text"
                )
            if self.vocab_size is None:
                raise ValueError(
                    "a pretokenized .bin source needs dataset.vocab_size (the vocabulary it was "
                    "tokenized with, e.g. 50257 for GPT-2)"
                )
        elif self.tokenizer == "byte":
            if self.vocab_size not in (None, BYTE_VOCAB_SIZE):
                raise ValueError(
                    f"the byte tokenizer has {BYTE_VOCAB_SIZE} tokens, not {self.vocab_size}: remove "
                    "dataset.vocab_size or set dataset.tokenizer to 'bpe'"
                )
            self.vocab_size = BYTE_VOCAB_SIZE
        else:
            if self.vocab_size is None:
                self.vocab_size = DEFAULT_BPE_VOCAB_SIZE
            elif self.vocab_size <= BYTE_VOCAB_SIZE:
                raise ValueError(
                    f"a byte-level BPE vocabulary must exceed the {BYTE_VOCAB_SIZE} byte tokens: set "
                    f"dataset.vocab_size above {BYTE_VOCAB_SIZE}, e.g. {DEFAULT_BPE_VOCAB_SIZE}"
                )
        return self


_LATER_FIELDS = {"block": "transformer", "proxy_depths": None}
# What the ngpt family fixes, when a spec leaves it out; a spec that sets it otherwise is refused (why in
# _check_family).
NGPT_DEFAULTS = {"activation": "swiglu", "positions": "rope"}
NGPT_FIXED = {"norm_gains": False, "tie_embeddings": False, "block": "transformer"}


class ArchitectureSpec(BaseModel):
    """A decoder-only, pre-norm transformer family: everything except the width."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(..., min_length=1, max_length=200, description="Display name (not part of the hash).")
    family: Literal["gpt", "ngpt"] = Field(
        "gpt",
        description="'gpt': decoder-only pre-norm transformer. 'ngpt': the normalized transformer (nGPT, "
        "Loshchilov et al. 2025), everything on the unit sphere (trainer/ngpt.py); it takes SwiGLU, RoPE, "
        "no norm layers, no weight decay, no warmup, and parametrization.mode 'nugpt' or 'ngpt'.",
    )
    n_layers: StrictInteger = Field(
        2, ge=1, le=MAX_DEPTH, description="Number of transformer blocks (depth)."
    )
    head_dim: StrictInteger = Field(
        16, ge=1, le=1024, description="Head size, fixed across widths: n_heads = width / head_dim."
    )
    ffn_ratio: StrictNumber = Field(
        4.0,
        gt=0,
        le=64,
        description="FFN hidden size = round(ffn_ratio × width), so the FFN scales with width.",
    )
    activation: Literal["gelu", "swiglu", "relu2", "abs"] = Field(
        "gelu",
        description="FFN nonlinearity: 'gelu', 'swiglu' (gated SiLU), 'relu2' (squared ReLU) or 'abs' "
        "(|x|, which maximises feature diversity in one-layer blocks: Tensor Programs VI).",
    )
    block: Literal["transformer", "single"] = Field(
        "transformer",
        description="'transformer': attention and MLP branches, two layers each. 'single': one linear layer "
        "per residual branch and no attention (the block depth of one where Tensor Programs VI proves "
        "Depth-μP optimal): a model to reproduce that result, which sees one token at a time.",
    )
    norm: Literal["layernorm", "rmsnorm"] = Field("layernorm", description="Normalisation layer.")
    norm_gains: bool = Field(
        False, description="Trainable norm gains (off by default: they hurt μP transfer, Lingle 2024)."
    )
    positions: Literal["learned", "rope"] = Field(
        "learned", description="Learned absolute position embeddings or rotary embeddings (RoPE)."
    )
    tie_embeddings: bool = Field(False, description="Share the token embedding with the readout.")
    context_length: StrictInteger = Field(128, ge=2, le=65536, description="Sequence length in tokens.")
    parametrization: ParametrizationSpec = Field(default_factory=ParametrizationSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    proxy_widths: list[Annotated[StrictInteger, Field(ge=1, le=65536)]] = Field(
        default_factory=lambda: [32, 48, 64, 96, 128],
        min_length=1,
        max_length=64,
        description="Default proxy ladder: the widths (d_model) a sweep trains.",
    )
    proxy_depths: list[Annotated[StrictInteger, Field(ge=1, le=MAX_DEPTH)]] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Default depths a sweep trains at every proxy width: a ladder over depth (one width) "
        "or a (width, depth) grid. Default: n_layers alone (a ladder over width). Token-horizon and "
        "upscaled sweeps train at n_layers.",
    )

    @model_validator(mode="before")
    @classmethod
    def _family_defaults(cls, data: object) -> object:
        """The ngpt family's own defaults (SwiGLU, RoPE, νGPT, no warmup) where the spec gives none."""
        if not isinstance(data, dict) or data.get("family") != "ngpt":
            return data
        data = {**data, **{k: v for k, v in NGPT_DEFAULTS.items() if k not in data}}
        parametrization = data.get("parametrization")
        if isinstance(parametrization, dict) and "mode" not in parametrization:
            data["parametrization"] = {**parametrization, "mode": "nugpt"}
        elif parametrization is None:
            data["parametrization"] = {"mode": "nugpt"}
        training = data.get("training")
        if isinstance(training, dict) and "warmup_fraction" not in training:
            data["training"] = {**training, "warmup_fraction": 0.0}
        elif training is None:
            data["training"] = {"warmup_fraction": 0.0}
        return data

    def _check_family(self) -> None:
        """Refuse fields that mean nothing for the family, saying why."""
        p, t = self.parametrization, self.training
        if self.family == "gpt":
            if p.mode in ("ngpt", "nugpt"):
                raise ValueError(
                    f"parametrization.mode {p.mode!r} is for family 'ngpt': set it, or use 'mup'/'sp'"
                )
            if p.base_steps is not None:
                raise ValueError("parametrization.base_steps is νGPT's horizon rule: family 'ngpt' only")
            return
        why = {
            "parametrization.mode": (
                p.mode in ("mup", "sp"),
                "nGPT has its own scaling: use 'nugpt' or 'ngpt'",
            ),
            "activation": (
                self.activation != "swiglu",
                "nGPT's MLP is SwiGLU with its scaling vectors s_u, s_v",
            ),
            "positions": (self.positions != "rope", "nGPT normalises q and k after RoPE"),
            "norm_gains": (self.norm_gains, "nGPT has no norm layers: the hidden state is on the sphere"),
            "tie_embeddings": (self.tie_embeddings, "nGPT's input and output embeddings are separate"),
            "block": (self.block != "transformer", "nGPT's blocks are attention and MLP"),
            "parametrization.depth_alpha": (p.depth_alpha != 0, "νGPT scales α_init with depth instead"),
            "training.weight_decay": (t.weight_decay != 0, "nGPT trains without weight decay"),
            "training.warmup_fraction": (t.warmup_fraction != 0, "nGPT trains without warmup"),
        }
        # Stored specs are validated again with every field given: refuse only values that differ from
        # the defaults, which the family ignores.
        unused = "nGPT has no norm layers and no multipliers of these: its scaling vectors replace them"
        defaults = ParametrizationSpec()
        why["norm"] = (self.norm != "layernorm", unused)
        for name in ("alpha_in", "alpha_out", "init_std"):
            why[f"parametrization.{name}"] = (getattr(p, name) != getattr(defaults, name), unused)
        attention = p.alpha_attn not in (None, math.sqrt(self.head_dim))
        why["parametrization.alpha_attn"] = (attention, unused)
        for field, (bad, reason) in why.items():
            if bad:
                raise ValueError(f"family 'ngpt' does not take {field} as given: {reason} (leave it out)")

    @model_validator(mode="after")
    def _check_consistency(self) -> ArchitectureSpec:
        self._check_family()
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, not {self.head_dim}")
        if self.parametrization.base_depth is None:
            self.parametrization.base_depth = self.n_layers
        if self.parametrization.alpha_attn is None:
            # μP's attention scale α_attn / d_head equals SP's 1/√d_head at the base shape when
            # α_attn = √d_head; the head size is fixed, so this holds at every width [mup README].
            self.parametrization.alpha_attn = math.sqrt(self.head_dim)
        tokens, context = self.training.batch_tokens, self.context_length
        if tokens % context:
            raise ValueError(
                f"training.batch_tokens {tokens} is not a multiple of context_length {context}: "
                f"use {_nearest_multiples(tokens, context)}"
            )
        if len(set(self.proxy_widths)) != len(self.proxy_widths):
            raise ValueError(f"proxy_widths {self.proxy_widths} repeats a width: list each width once")
        for width in self.proxy_widths:
            self.validate_width(width)
        if self.proxy_depths is not None and len(set(self.proxy_depths)) != len(self.proxy_depths):
            raise ValueError(f"proxy_depths {self.proxy_depths} repeats a depth: list each depth once")
        if self.block == "single" and self.activation == "swiglu":
            raise ValueError(
                "block 'single' has one linear layer per branch, so no gate for 'swiglu': use 'abs' "
                "(Tensor Programs VI's choice), 'gelu' or 'relu2'"
            )
        return self

    @property
    def ladder_depths(self) -> list[int]:
        """The depths a default sweep trains: proxy_depths, or n_layers alone."""
        return list(self.proxy_depths) if self.proxy_depths is not None else [self.n_layers]

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, fixed by the tokenizer (byte-level: 256)."""
        assert self.dataset.vocab_size is not None  # resolved by DatasetSpec's validator
        return self.dataset.vocab_size

    @property
    def batch_size(self) -> int:
        """Sequences per optimizer step."""
        return self.training.batch_tokens // self.context_length

    @property
    def attention_multiplier(self) -> float:
        """α_attn, resolved (√head_dim unless the spec sets it)."""
        assert self.parametrization.alpha_attn is not None  # filled by _check_consistency
        return self.parametrization.alpha_attn

    def at_depth(self, depth: int) -> ArchitectureSpec:
        """The same family with `depth` blocks; base_depth stays, so m_L = depth / base_depth."""
        if depth == self.n_layers:
            return self
        return ArchitectureSpec.model_validate({**self.model_dump(mode="json"), "n_layers": depth})

    @property
    def base_depth(self) -> int:
        assert self.parametrization.base_depth is not None  # filled by _check_consistency
        return self.parametrization.base_depth

    def ffn_hidden(self, width: int) -> int:
        """FFN hidden size at this width."""
        return max(1, round(self.ffn_ratio * width))

    def validate_width(self, width: int) -> None:
        """Raise ValueError, naming the fix, if this spec cannot be built at `width`."""
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if width % self.head_dim:
            raise ValueError(
                f"width {width} is not a multiple of head size {self.head_dim}: "
                f"use {_nearest_multiples(width, self.head_dim)}"
            )

    def canonical_json(self) -> str:
        """Every field that affects training (defaults filled, keys sorted); `name` is left out."""
        # token_budget is left out too: it is resolved into training.steps, which the hash covers.
        fields = self.model_dump(mode="json", exclude={"name": True, "training": {"token_budget"}})
        # Fields added after specs were first stored are left out at their defaults, so every stored
        # spec keeps its hash (the API deduplicates on it).
        for name, default in _LATER_FIELDS.items():
            if fields[name] == default:
                del fields[name]
        if fields["parametrization"]["base_steps"] is None:
            del fields["parametrization"]["base_steps"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    def spec_hash(self) -> str:
        """sha256 hex of `canonical_json()`: equal for specs that train identically."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()
