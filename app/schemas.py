"""Request and response models of the HTTP API (Create / Public families); the client reuses them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.tables import Tabular
from predictor import DEFAULT_METHOD, Method
from trainer import ArchitectureSpec
from trainer.spec import MAX_DEPTH, MAX_STEPS, StrictInteger, StrictNumber

T = TypeVar("T")


# Ids are 32-bit on PostgreSQL: a larger number can name nothing, so it is a 422, not a database error.
MAX_ID = 2**31 - 1
Id = Annotated[StrictInteger, Field(ge=1, le=MAX_ID)]

# Largest N a prediction may ask for: far beyond any model trained, and far from float overflow.
MAX_N_PARAMS = 1e15
MAX_TOKENS = 1e18  # likewise for training tokens
MAX_COMPUTE = 1e32  # and training FLOPs (6 · 1e15 · 1e16 and beyond)


class Page(Tabular, Generic[T]):
    _table = "items"
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null at the end."
    )


class RunCounts(BaseModel):
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    diverged: int = 0
    cancelled: int = 0
    succeeded_widths: int = Field(
        0,
        description="Distinct proxy sizes (width, depth) with a finished run: one per width in a ladder over "
        "width, one per depth in a ladder over depth.",
    )


class TuningSummary(BaseModel):
    """The latest LR tuning in brief (GET /v1/architectures/{id}/tuning has the curves)."""

    id: int
    status: str = Field(description="queued, running, succeeded or failed.")
    lr_star: float | None
    lower: float | None
    upper: float | None
    ladder_lr: float | None = Field(description="What a new sweep trains at (η* to 3 significant digits).")
    transfer: dict[str, str] = Field(description="The verdict per checked axis ('width', 'depth').")


class ArchitectureListItem(BaseModel):
    """An architecture as the list shows it: a stored spec that no longer validates (older code, a hand
    edit) is listed too, flagged, so that one bad row never takes the list down."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    spec_hash: str
    spec: ArchitectureSpec | None = Field(description="The spec; null when it no longer validates.")
    valid: bool = Field(True, description="False: the stored spec no longer validates (see `error`).")
    error: str | None = Field(None, description="Why the stored spec no longer validates, and the fix.")
    created_at: datetime
    runs: RunCounts
    tuning: TuningSummary | None = Field(None, description="The latest LR tuning; null if never tuned.")


class ArchitecturePublic(ArchitectureListItem):
    """One architecture (GET answers 409 for a stored spec that no longer validates)."""

    spec: ArchitectureSpec


class ProxySize(BaseModel):
    width: int
    n_params: int
    n_params_non_embedding: int
    flops: float = Field(description="Estimated training FLOPs of one run at the spec's steps.")
    seconds: float | None = Field(
        description="Estimated wall time of one run at recent runs' throughput (see throughput_basis); "
        "null before any run finished."
    )


class SpecCheck(BaseModel):
    spec: ArchitectureSpec = Field(description="The spec with every default filled in.")
    spec_hash: str
    architecture_id: int | None = Field(description="The registered architecture with this spec, if any.")
    proxies: list[ProxySize] = Field(description="Sizes and cost of the default proxy ladder, one run each.")
    ladder_flops: float = Field(description="Training FLOPs of the ladder, one seed.")
    ladder_seconds: float | None = Field(
        description="Wall time of the ladder, one seed, on one worker at recent runs' throughput."
    )
    throughput_basis: str | None = Field(
        description="What the time estimates rest on (a rough guide: small proxies use a device less well)."
    )


class SweepCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    widths: list[StrictInteger] | None = Field(
        None, min_length=1, max_length=64, description="Proxy widths; default: the spec's proxy_widths."
    )
    seeds: list[StrictInteger] = Field(
        [0], min_length=1, max_length=16, description="Replicate seeds per width."
    )
    steps: StrictInteger | None = Field(
        None, ge=1, le=MAX_STEPS, description="Training steps; default: the spec's."
    )
    lr: StrictNumber | None = Field(
        None,
        gt=0,
        le=10,
        description="Pin the base LR. Default: the tuned η* when the architecture has a succeeded "
        "tuning, else the spec's training.lr.",
    )
    data_seed: StrictInteger | None = Field(
        None,
        ge=0,
        lt=2**31,
        description="One batch order for every run (the seeds then vary the initialisation only), so "
        "that candidates share their data order. Default: each run's order is its seed's.",
    )
    token_budgets: list[StrictInteger] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="Token budgets (training tokens per run, increasing, multiples of batch_tokens) for an "
        "(N, D) ladder: per (width, seed) one warmup-stable-decay trunk checkpointed where each budget's "
        "decay starts and a cooldown branch per budget (Hägele et al. 2024), about one long run's cost. "
        "Needs training.schedule 'wsd'; `steps` is then the largest budget's and may not be given.",
    )
    depths: list[Annotated[StrictInteger, Field(ge=1, le=MAX_DEPTH)]] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Depths (blocks) to train at every width: a ladder over depth (one width) or a (width, "
        "depth) grid. Default: the spec's proxy_depths, else its n_layers. N counts every layer.",
    )
    aspect_ratio: StrictNumber | None = Field(
        None,
        gt=0,
        le=65536,
        description="Instead of depths: train each width at depth = width / aspect_ratio (each must be a "
        "whole depth), a ladder along one shape.",
    )
    warm_start: Literal["upscale"] | None = Field(
        None,
        description="'upscale': build the ladder rung by rung (μP upscaling, Ma et al. 2026): the smallest "
        "width trains from scratch and each larger one starts from the previous width's run (same seed), "
        "widened, then trains `steps` more. Each width must be a whole multiple of the one before. Its "
        "runs (role 'upscaled') are a recipe of their own: fitted apart from from-scratch ladders.",
    )
    noise: StrictNumber | None = Field(
        None,
        ge=0,
        le=10,
        description="With warm_start: × a fresh μP init added to each widened copy (default 1).",
    )
    retry_failed: bool = Field(
        False,
        description="Queue this sweep's failed or cancelled runs again, each with a fresh set of attempts "
        "(after fixing what failed them). Without it, such a run is returned as it is.",
    )

    @model_validator(mode="after")
    def _non_negative(self) -> SweepCreate:
        if self.noise is not None and self.warm_start is None:
            raise ValueError('noise goes with warm_start "upscale": give both, or neither')
        if self.warm_start is not None and self.token_budgets is not None:
            raise ValueError("give warm_start or token_budgets, not both: upscaled rungs are whole runs")
        if self.depths is not None and self.aspect_ratio is not None:
            raise ValueError("give depths or aspect_ratio, not both: the ratio sets each width's depth")
        if self.depths is not None and len(set(self.depths)) != len(self.depths):
            raise ValueError(f"depths {self.depths} repeats a depth: list each depth once")
        if (self.depths is not None or self.aspect_ratio is not None) and (
            self.warm_start is not None or self.token_budgets is not None
        ):
            raise ValueError(
                "a ladder over depth (depths or aspect_ratio) trains whole runs from scratch: drop "
                "token_budgets and warm_start, or leave depths and aspect_ratio out"
            )
        if self.widths is not None and any(w < 1 for w in self.widths):
            raise ValueError("widths must be positive integers")
        if any(s < 0 or s >= 2**31 for s in self.seeds):
            raise ValueError("seeds must lie in [0, 2**31)")
        return self


class RunSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    architecture_id: int
    width: int
    depth: int
    seed: int
    data_seed: int
    steps: int
    lr: float
    role: str = Field(
        "run",
        description="'run' (a whole run), a token-horizon sweep's 'trunk' or 'branch', or 'upscaled' (a run "
        "that starts from its parent run's final state, widened).",
    )
    parent_run_id: int | None = Field(
        None, description="A branch's trunk; the run an upscaled run is widened from."
    )
    resume_step: int | None = Field(
        None,
        description="The trunk step a branch resumes from; the step of its parent an upscaled run starts at.",
    )
    noise: float | None = Field(
        None, description="An upscaled run's noise (× a fresh μP init on the copies)."
    )
    stop_step: int | None = Field(None, description="The step a trunk stops at (its longest branch's).")
    status: str
    attempts: int
    progress_step: int
    progress_total: int
    progress_loss: float | None
    tokens_per_second: float | None = Field(
        None, description="Training throughput: the latest heartbeat's while running, the run's once done."
    )
    eta_seconds: float | None = Field(
        None,
        description="A running run's time left, from its steps per second since it started "
        "(model and corpus setup included, so a little pessimistic early on).",
    )
    val_loss: float | None
    final_train_loss: float | None
    n_params_non_embedding: int | None
    error: str | None
    not_before: datetime | None = Field(
        None,
        description="A run queued again after a failed attempt is not started before this time (retry "
        "backoff, MUPREDICT_RETRY_BACKOFF_SECONDS); null otherwise.",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class LossPoint(BaseModel):
    step: int
    train_loss: float


class UpscaleCreate(BaseModel):
    """A continuation of a finished run, widened (μP upscaling: trainer/upscale.py)."""

    model_config = ConfigDict(extra="forbid")

    width: StrictInteger = Field(
        ge=1, le=1 << 20, description="The new width: a whole multiple (×2 or more) of the run's width."
    )
    steps: StrictInteger | None = Field(
        None, ge=1, le=MAX_STEPS, description="Steps the widened model trains; default: the run's steps."
    )
    lr: StrictNumber | None = Field(
        None,
        gt=0,
        le=10,
        description="Base LR; default: the run's (μP carries the base LR to the new width).",
    )
    noise: StrictNumber = Field(
        1.0,
        ge=0,
        le=10,
        description="× a fresh μP initialisation of the wide model added to the copies (0: the exact copy, "
        "which trains on as the same function; 1: the authors' GPT-2 recipe).",
    )
    seed: StrictInteger | None = Field(
        None, ge=0, lt=2**31, description="The noise's and the batch order's seed; default: the run's seed."
    )


class RunPublic(RunSummary):
    lease_owner: str | None
    heartbeat_at: datetime | None
    n_params: int | None
    tokens: int | None
    flops: float | None
    wall_seconds: float | None
    mfu: float | None
    device: str | None
    corpus_fingerprint: str | None
    tokenizer: str | None = Field(
        None, description="What produced the corpus's token ids (null before v0006)."
    )
    text_fingerprint: str | None = Field(
        None,
        description="A prepared corpus's text, the same under any tokenizer: runs on one text compare in "
        "bits per byte (null for other corpora and before v0007).",
    )
    val_bytes_per_token: float | None = Field(
        None, description="UTF-8 bytes per token of the validation split (prepared corpora only)."
    )
    code_version: str | None
    loss_curve: list[LossPoint]


class SweepPublic(Tabular):
    _table = "runs"
    id: int
    architecture_id: int
    widths: list[int]
    seeds: list[int]
    steps: int
    lr: float = Field(description="The base LR every run trains at.")
    lr_source: str = Field(
        description="'tuned' (η* of the latest succeeded tuning), 'tuned-horizon' (η* moved to the sweep's "
        "horizon by the tuning's horizon rule, when its horizon check found a drift), 'pinned' or 'spec'."
    )
    data_seed: int | None = Field(description="The batch order every run shares, or null: each its seed's.")
    token_budgets: list[int] | None = Field(
        None, description="A token-horizon sweep's budgets (its runs: trunks and branches), else null."
    )
    warm_start: str | None = Field(
        None, description="'upscale': each width after the smallest starts from the previous one's run."
    )
    noise: float | None = Field(None, description="A warm-started sweep's upscaling noise.")
    depths: list[int] = Field(
        description="The depths its runs train at (one per width along `aspect_ratio`, when that is set)."
    )
    aspect_ratio: float | None = Field(None, description="Each width at depth = width / aspect_ratio.")
    created_at: datetime
    counts: RunCounts
    done: bool = Field(description="Every run has finished (succeeded, diverged, failed or cancelled).")
    runs: list[RunSummary]


class TokenTarget(BaseModel):
    """The part of a prediction or comparison asked in tokens or compute: answered from the (N, D) fit
    of the architecture's token-horizon grid (a sweep with token_budgets), law kaplan (app.fits.GRID_LAW)."""

    tokens: StrictNumber | None = Field(
        None, gt=0, le=MAX_TOKENS, description="Training tokens D: at (N, D), with `n_params` or `width`."
    )
    compute: StrictNumber | None = Field(
        None,
        gt=0,
        le=MAX_COMPUTE,
        description="A training budget C in FLOPs (C = 6ND, N non-embedding) instead of N and D: at the "
        "compute-optimal (N*, D*) of each design's (N, D) fit, with their intervals, or at D = r·N when "
        "`tokens_per_parameter` r is given.",
    )
    tokens_per_parameter: StrictNumber | None = Field(
        None, gt=0, le=1e6, description="With `compute`: spend it at D = r·N (Chinchilla-optimal is ~20)."
    )

    law: Literal["auto", "mu_scaling", "kaplan_slice"] = Field(
        "auto",
        description="Asked by N: the whole-run ladder's law. 'auto' fits 'kaplan_slice' where the "
        "architecture's token-horizon grid gives the ladder its γ and 'mu_scaling' elsewhere (the answer's "
        "`law_choice` says which and why). 'mu_scaling' is E + A·N^−α in non-embedding N. 'kaplan_slice' "
        "is (A·N^−α + C)^γ in total parameters, the fixed-D slice of the kaplan law with γ from the grid, "
        "which it needs; γ's uncertainty is in the interval. Not `kaplan_slice` with `tokens` or `compute`, "
        "which the grid's own (N, D) law answers.",
    )

    def check_law(self) -> None:
        if self.law == "kaplan_slice" and self.in_tokens:
            raise ValueError(
                f"`law` {self.law} answers at the ladder's own token budget: drop `tokens` and `compute`, or "
                "drop `law` for the token-horizon grid's (N, D) answer"
            )

    def check_split(self) -> None:
        if self.tokens_per_parameter is not None and self.compute is None:
            raise ValueError("`tokens_per_parameter` splits a `compute` budget: give `compute` too")

    @property
    def in_tokens(self) -> bool:
        """Asked in (N, D) or C: answered from the token-horizon grid's fit."""
        return self.tokens is not None or self.compute is not None


class PredictionRequest(TokenTarget):
    model_config = ConfigDict(extra="forbid")

    architecture_id: Id | None = Field(None, description="A registered architecture; or give `spec`.")
    spec: ArchitectureSpec | None = Field(None, description="An inline spec, matched by its canonical hash.")
    n_params: StrictNumber | None = Field(
        None, gt=0, le=MAX_N_PARAMS, description="Non-embedding parameters to predict at; or give `width`."
    )
    width: StrictInteger | None = Field(None, ge=1, le=1 << 20, description="A model width to predict at.")
    depth: StrictInteger | None = Field(
        None,
        ge=1,
        le=MAX_DEPTH,
        description="With `width`: the depth (blocks) of the target; default the spec's n_layers. N then "
        "counts every layer of that shape.",
    )
    aspect_ratio: StrictNumber | None = Field(
        None,
        gt=0,
        le=1 << 20,
        description="With `n_params`: the target's width / depth, for a ladder whose fit found that shape "
        "matters (the shape term is then applied); the shape on the head-size grid nearest N is reported.",
    )
    level: StrictNumber = Field(0.9, gt=0, lt=1, description="Coverage of the interval.")
    interval: Literal["expected", "run"] = Field(
        "run",
        description="'expected': the interval for the expected loss at N (the law; parameter uncertainty "
        "only). 'run': for what `seeds` new runs at N, averaged, will show (adds their noise).",
    )
    seeds: StrictInteger = Field(
        1, ge=1, le=64, description="With interval 'run': how many new runs are averaged."
    )
    method: Method = Field(
        DEFAULT_METHOD,
        description="How the parameters' uncertainty enters: 'delta' (linearised, symmetric in log loss) "
        "or 'profile' (profile likelihood: refits the law constrained to each value, follows the "
        "floor–exponent trade-off far from the proxies). bench/calibration.py compares them.",
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> PredictionRequest:
        if (self.architecture_id is None) == (self.spec is None):
            raise ValueError("give exactly one of `architecture_id` and `spec`")
        self.check_law()
        if self.compute is not None:
            if self.n_params is not None or self.width is not None or self.tokens is not None:
                raise ValueError(
                    "give `compute` alone (N and D then follow from it) or `n_params`/`width` with `tokens`"
                )
        elif (self.n_params is None) == (self.width is None):
            raise ValueError("give exactly one of `n_params` and `width` (or a `compute` budget)")
        if self.depth is not None and self.width is None:
            raise ValueError(
                "`depth` goes with `width` (the shape asked for); with `n_params` give `aspect_ratio`"
            )
        if self.aspect_ratio is not None and self.n_params is None:
            raise ValueError(
                "`aspect_ratio` goes with `n_params`; with `width` give `depth` (the ratio is width / depth)"
            )
        self.check_split()
        return self


class PredictionBatchRequest(BaseModel):
    """One target N, many architectures: what a page listing every candidate asks, in one request."""

    model_config = ConfigDict(extra="forbid")

    architecture_ids: list[Id] = Field(min_length=1, max_length=200, description="Registered architectures.")
    n_params: StrictNumber = Field(
        gt=0, le=MAX_N_PARAMS, description="Non-embedding parameters to predict at."
    )
    level: StrictNumber = Field(0.9, gt=0, lt=1, description="Coverage of the intervals.")
    interval: Literal["expected", "run"] = Field("run", description="As in POST /v1/predictions.")
    seeds: StrictInteger = Field(1, ge=1, le=64, description="As in POST /v1/predictions.")
    method: Method = Field(DEFAULT_METHOD, description="As in POST /v1/predictions.")


class Recipe(BaseModel):
    """The recipe of the ladder a fit pools: the latest sweep's LR and steps, at its depths (for an
    (N, D) fit: the latest token-horizon sweep's LR, budgets and warmup; steps the longest budget's)."""

    sweep_id: int
    lr: float
    lr_source: str
    steps: int
    depth: int = Field(description="The spec's depth (n_layers).")
    depths: list[int] = Field(
        description="The depths the ladder pools (the spec's alone, unless a depth sweep)."
    )
    aspect_ratio: float | None = Field(None, description="A ladder along width / depth = this ratio.")
    widths: list[int] = Field(description="The sweep's widths.")
    token_budgets: list[int] | None = None
    warmup_steps: int | None = None
    warm_start: str | None = Field(
        None, description="'upscale': the ladder was built rung by rung from its smallest width."
    )


class ExcludedRun(BaseModel):
    run_id: int
    reason: str


class Extrapolation(BaseModel):
    """How far the target lies beyond the largest proxy, in every unit a plan is made in."""

    n_params: float = Field(description="× the largest proxy's non-embedding parameters.")
    total_params: float | None = Field(description="× its total parameters (embeddings included).")
    width: float | None = Field(description="× its width.")
    flops: float | None = Field(
        description="× its training FLOPs, at the proxies' token budget (at the target's D when given)."
    )
    target_width: int | None = Field(
        description="The width asked for, or the width on the head-size grid whose N is nearest the target."
    )
    depth: float | None = Field(None, description="× the deepest proxy's depth.")
    target_depth: int | None = Field(
        None, description="The depth asked for (or along `aspect_ratio`), else the spec's n_layers."
    )
    tokens: float | None = Field(
        None, description="(N, D) predictions: × the most training tokens of any fitted run."
    )
    compute: float | None = Field(
        None, description="(N, D) predictions: 6ND × the largest 6ND among the fitted runs."
    )


class Allocation(BaseModel):
    """How a compute budget was split into N and D (predictions asked by `compute`)."""

    rule: Literal["compute-optimal", "tokens-per-parameter"]
    tokens_per_parameter: float = Field(description="D / N.")
    n_params_lower: float | None = Field(
        description="Compute-optimal: N*'s interval (null for a fixed split)."
    )
    n_params_upper: float | None
    tokens_lower: float | None
    tokens_upper: float | None


class Provenance(BaseModel):
    fit_id: int
    run_ids: list[int]
    corpus_fingerprints: list[str]
    text_fingerprint: str | None = Field(
        None, description="The prepared corpus's text, the same under any tokenizer (null: not known)."
    )
    val_bytes_per_token: float | None = Field(
        None,
        description="Its validation split's UTF-8 bytes per token: loss / (this × ln 2) = bits per byte.",
    )
    recipe: Recipe


class PredictionPublic(BaseModel):
    architecture_id: int
    n_params: float
    width: int | None
    depth: int | None = Field(None, description="The target's depth, when asked by shape.")
    aspect_ratio: float | None = Field(None, description="The target's width / depth, when known.")
    shape_corrected: bool = Field(
        False, description="The ladder's fit found that shape matters and the prediction applies its term."
    )
    tokens: float | None = Field(None, description="D, for a prediction at (N, D) or at a compute budget.")
    compute: float | None = Field(None, description="6ND, for a prediction at (N, D) or at a compute budget.")
    allocation: Allocation | None = Field(None, description="How `compute` was split, when asked by it.")
    level: float
    interval: str = Field(description="'expected' (the expected loss) or 'run' (what `seeds` new runs show).")
    seeds: int
    method: str = Field(description="'delta' or 'profile': how the parameters' uncertainty entered.")
    predicted_loss: float = Field(description="The fitted law at N: the expected loss.")
    lower: float
    upper: float
    law: str
    law_choice: str = Field(description="Why this law: 'asked', or how `law` 'auto' resolved.")
    parameters: dict[str, float]
    stderr: dict[str, float | None]
    noise_model: str = Field(description="The noise model the interval rests on (predictor.noise).")
    points_used: int
    widths_used: list[int]
    excluded_runs: list[ExcludedRun] = Field(description="Runs of the ladder's recipe the fit left out.")
    n_params_range: tuple[float, float]
    extrapolation_factor: float
    extrapolation: Extrapolation
    warnings: list[str]
    provenance: Provenance


class CompareRequest(TokenTarget):
    model_config = ConfigDict(extra="forbid")

    architecture_ids: list[Id] = Field(min_length=2, max_length=20)
    n_params: StrictNumber | None = Field(
        None, gt=0, le=MAX_N_PARAMS, description="Rank at N non-embedding parameters; or give `compute`."
    )
    level: StrictNumber = Field(0.9, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_target(self) -> CompareRequest:
        if (self.n_params is None) == (self.compute is None):
            raise ValueError("give exactly one of `n_params` (with `tokens` for (N, D)) and `compute`")
        if self.tokens is not None and self.n_params is None:
            raise ValueError("`tokens` goes with `n_params`: rank at (N, D)")
        self.check_split()
        self.check_law()
        return self


class Candidate(BaseModel):
    rank: int
    architecture_id: int
    name: str
    predicted_loss: float
    lower: float
    upper: float
    probability_best: float = Field(
        description="Probability that this design has the lowest expected loss, from the candidates' joint "
        "sampling distribution, paired through runs that share a ladder rung and a seed."
    )
    extrapolation_factor: float
    extrapolation: Extrapolation
    warnings: list[str]
    n_params: float | None = Field(None, description="The N this design is ranked at.")
    tokens: float | None = Field(
        None, description="The D it is ranked at (asked in tokens or compute; its own D* at equal compute)."
    )
    unit_factor: float = Field(
        1.0,
        description="This candidate's loss in the comparison's unit per nat per token: 1 in nats/token; "
        "1 / (ln 2 × its validation bytes per token) in bits/byte (its fit's points and curve, in nats "
        "per token, times this are on the ranking's scale).",
    )


class FitQuality(BaseModel):
    """The gate a fit passes before it is served as a prediction (predictor.quality)."""

    ok: bool = Field(description="False: no prediction is served and the design is never ranked.")
    reasons: list[str] = Field(description="Why not, one line per failed check; empty when ok.")
    slope: float | None = Field(description="Slope of log loss on log N over the points.")
    trend_p: float | None = Field(description="One-sided p-value of 'the loss does not fall with N'.")
    r2: float | None
    condition_number: float | None
    half_width: float | None = Field(
        description="Relative half-width of the 90% expected-loss interval at `reference`× the largest proxy."
    )
    max_half_width: float
    reference: float
    enforced: bool = Field(
        description="Whether this server refuses such fits (MUPREDICT_FIT_GATE); when false a failed verdict "
        "is only reported."
    )


class ExcludedCandidate(BaseModel):
    """A candidate left out of the ranking because its fit shows no usable scaling trend."""

    architecture_id: int
    name: str
    reasons: list[str]


class ComparePublic(Tabular):
    _table = "candidates"
    n_params: float | None = Field(description="The N asked for (null when ranked at a compute budget).")
    tokens: float | None = None
    compute: float | None = Field(None, description="The training budget asked for (FLOPs, 6ND).")
    tokens_per_parameter: float | None = None
    level: float
    interval: str = Field("expected", description="Candidates' intervals are for the expected loss.")
    unit: str = Field(
        "nats/token",
        description="The losses' unit: 'nats/token' when the candidates share a tokenizer and corpus; "
        "'bits/byte' when they were trained on one prepared text with different tokenizers.",
    )
    law: str | None = Field(
        None, description="The ladders' law every candidate was fitted with (null when asked in tokens)."
    )
    law_choice: str | None = Field(None, description="Why this law: 'asked', or how 'auto' resolved.")
    best_architecture_id: int
    candidates: list[Candidate]
    excluded: list[ExcludedCandidate] = Field(
        default_factory=list, description="Candidates not ranked: their fit failed the quality gate."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Differences between the ranked candidates' recipes (context length, proxy token "
        "budget) under which their per-token losses line up only approximately.",
    )


class FitPoint(BaseModel):
    run_id: int
    width: int
    depth: int = Field(description="Blocks; N counts every layer.")
    seed: int
    data_seed: int
    n_params: float
    loss: float
    predicted: float
    residual: float


class HoldoutCheck(BaseModel):
    """The ladder's own extrapolation check (predictor.hold_out_largest): the law refitted without the
    largest proxy size predicts the mean of that size's runs, with the interval for such a mean."""

    n_params: float = Field(
        description="The held-out (largest) size's non-embedding N (its total parameters for the "
        "kaplan_slice law, which is fitted in them)."
    )
    runs: int = Field(description="Its runs, averaged into `measured`.")
    measured: float
    predicted: float
    lower: float
    upper: float
    level: float
    extrapolation_factor: float = Field(description="Its N over the largest N of the refit.")
    error: float = Field(
        description="(predicted − measured) / measured: negative when the law was optimistic."
    )
    inside: bool


class ShapeTestPublic(BaseModel):
    """L(N) against L(N) + γ·log2(width / depth): the extra-sum-of-squares F test (predictor.shape)."""

    testable: bool = Field(
        description="False when the ladder's shape follows N (needs a (width, depth) grid)."
    )
    needed: bool = Field(description="The term is significant (p < 0.05): predictions by shape apply it.")
    reason: str
    residuals_by_depth: dict[str, float] = Field(
        description="Mean log residual (≈ relative) of the L(N) fit at each depth: a trend in depth means "
        "shape matters."
    )
    runs_by_depth: dict[str, int]
    gamma: float | None = Field(description="Δ log loss per doubling of width / depth.")
    gamma_lower: float | None
    gamma_upper: float | None
    f_statistic: float | None
    p_value: float | None
    dof: int | None
    reference_aspect_ratio: float | None = Field(description="The width / depth where the term is 0.")


class CurvePoint(BaseModel):
    n_params: float
    mean: float
    lower: float
    upper: float


class FittedLaw(Tabular):
    """What every stored fit served by the API states first: whose, which, and the law's parameters."""

    _table = "points"
    architecture_id: int
    fit_id: int
    law: str
    parameters: dict[str, float]
    stderr: dict[str, float | None]
    r2: float | None


class FitPublic(FittedLaw):
    law_choice: str = Field(description="Why this law: 'asked', or how `law` 'auto' resolved.")
    success: bool
    message: str
    at_bound: dict[str, bool]
    n_points: int
    n_params_range: tuple[float, float]
    report: str
    quality: FitQuality = Field(description="Whether this fit is served as a prediction, and why not.")
    noise_model: str
    excluded_runs: list[ExcludedRun]
    points: list[FitPoint]
    shape: ShapeTestPublic | None = Field(
        None, description="Over several depths: whether shape matters at fixed N (predictor.shape)."
    )
    holdout: HoldoutCheck | None = Field(
        None,
        description="The law refitted without the largest size, scored there (null when the ladder is too "
        "short to spare it). A miss adds a warning to predictions from this fit.",
    )
    level: float
    curve: list[CurvePoint] = Field(
        description="The fitted law and its band for the expected loss on a log grid from the smallest "
        "proxy to `curve_to` (default: 10× the largest proxy)."
    )
    created_at: datetime
    result: dict[str, Any] = Field(description="The full fit result, as predictor.FitResult.to_dict().")


class GridPoint(FitPoint):
    """A fitted point of an (N, D) grid: a FitPoint with its training tokens and compute."""

    tokens: float
    compute: float = Field(description="6ND.")


class TokenCurvePoint(BaseModel):
    """The fitted law along D at one proxy width (the branches off its trunk), with its band."""

    width: int
    n_params: float
    tokens: float
    mean: float
    lower: float
    upper: float


class FrontierPoint(BaseModel):
    """The compute-optimal allocation at one budget (Hoffmann et al. 2022 §3.3 Eq. (4)), with intervals."""

    compute: float
    n_params: float
    n_params_lower: float
    n_params_upper: float
    tokens: float
    tokens_lower: float
    tokens_upper: float
    tokens_per_parameter: float
    loss: float
    loss_lower: float
    loss_upper: float


class GridPublic(FittedLaw):
    """The (N, D) fit over a token-horizon sweep's branches: its points (`.to_pandas()`), the law along D
    per width, and the compute-optimal frontier with its bands."""

    quality: FitQuality
    noise_model: str
    recipe: Recipe
    excluded_runs: list[ExcludedRun]
    points: list[GridPoint]
    level: float
    curves: list[TokenCurvePoint] = Field(
        description="Per fitted width, the law from the smallest budget to `tokens_to` (default: 10× the "
        "largest)."
    )
    frontier: list[FrontierPoint] = Field(
        description="From the grid's smallest 6ND to `compute_to` (default 1000× its largest)."
    )
    report: str
    created_at: datetime


class PredictionBatchItem(BaseModel):
    """One architecture's answer: its prediction, or the status and message POST /v1/predictions gives."""

    architecture_id: int
    status: int = Field(description="200 with a prediction; else 404 or 409, as POST /v1/predictions.")
    prediction: PredictionPublic | None = None
    detail: str | None = Field(None, description="Why there is no prediction, with what to do.")


class PredictionBatchPublic(Tabular):
    _table = "items"
    items: list[PredictionBatchItem] = Field(description="In the order of the request's ids.")
