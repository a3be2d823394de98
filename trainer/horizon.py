"""Several token budgets from one run: a warmup-stable-decay trunk checkpointed in its stable phase,
and a short cooldown branch from each checkpoint.

Hägele et al. 2024 ("Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations",
arXiv 2405.18392): §3 shows that a constant LR followed by a linear cooldown to zero (warmup-stable-
decay) over about 20 % of the steps matches a cosine schedule tuned to that length (§3.2: the benefit
of longer cooldowns plateaus near 20 %); §5 ("The Implications for Scaling Law Research") trains one
long constant-LR run per model size and cools down from its checkpoints at the token counts wanted,
which needs an order of magnitude fewer runs and about half the FLOPs. Their warmup is a fixed number
of steps (Appendix A.1), not a fraction of each run.

The plan, for budgets T_1 < … < T_k optimizer steps (training.decay_fraction f, warmup_fraction w):
- every horizon shares one warmup, w × T_1 steps (fixed in steps, as in Hägele et al.'s Appendix A.1,
  so the shortest horizon is exactly the spec's own schedule at that length);
- horizon i decays over d_i = max(1, ⌊f × T_i⌋) steps, from s_i = T_i − d_i to T_i (train.lr_factor);
- the trunk trains at the stable LR up to s_k and is checkpointed at every s_i;
- branch i resumes from the trunk at s_i and trains to T_i with its decay; its LR up to s_i is the
  trunk's (train() checks this step by step), so it equals an unbroken run of T_i steps with that warmup.
Cost: s_k + Σ d_i steps, against Σ T_i for k independent runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from trainer.spec import MAX_STEPS, ArchitectureSpec, decay_steps

MAX_HORIZONS = 16


class HorizonError(ValueError):
    """Token budgets that cannot be branched off one trunk; the message names the fix."""


@dataclass(frozen=True)
class HorizonPlan:
    """One trunk and its branches, in optimizer steps (module docstring)."""

    steps: tuple[int, ...]  # each horizon's length T_i, increasing
    warmup_steps: int
    decay_fraction: float
    batch_tokens: int  # tokens per step: T_i × batch_tokens is budget i

    def decay_steps(self, i: int) -> int:
        return decay_steps(self.decay_fraction, self.steps[i])

    def branch_point(self, i: int) -> int:
        """s_i: the trunk step branch i resumes from, where its decay starts."""
        return self.steps[i] - self.decay_steps(i)

    @property
    def branch_points(self) -> tuple[int, ...]:
        return tuple(self.branch_point(i) for i in range(len(self.steps)))

    @property
    def trunk_steps(self) -> int:
        """The trunk stops where the longest horizon's decay starts."""
        return self.branch_point(len(self.steps) - 1)

    @property
    def lr_steps(self) -> int:
        """The horizon the shared trunk's LR is chosen for: the log-midpoint √(T_1·T_k) of the budgets.
        Every branch shares the trunk's stable LR, so under a horizon rule η* ∝ T^(−γ)
        (trainer.tuning_result.HorizonRule) branch i is off by γ·|log2(T_i / T_ref)|; the log-midpoint
        makes the largest of those, at the shortest and the longest budget, as small as it can be."""
        return lr_steps(self.steps)

    @property
    def cost_steps(self) -> int:
        """Steps trained in all: the trunk, then every branch's decay."""
        return self.trunk_steps + sum(self.decay_steps(i) for i in range(len(self.steps)))

    @property
    def cost_ratio(self) -> float:
        """The plan's cost over one run of the longest horizon (Hägele et al.: close to 1)."""
        return self.cost_steps / self.steps[-1]


def lr_steps(horizons: Sequence[int]) -> int:
    """The one horizon an LR is chosen for when runs of every length in `horizons` share it (steps):
    the log-midpoint of the shortest and the longest (HorizonPlan.lr_steps)."""
    return round((min(horizons) * max(horizons)) ** 0.5)


def plan_horizons(spec: ArchitectureSpec, token_budgets: list[int]) -> HorizonPlan:
    """The plan for `token_budgets` (training tokens per run, increasing, each a multiple of
    training.batch_tokens) under `spec`'s warmup-stable-decay schedule; HorizonError says what to change."""
    t = spec.training
    if t.schedule != "wsd":
        raise HorizonError(
            f"token budgets branch a warmup-stable-decay run, but training.schedule is {t.schedule!r}: set "
            'training.schedule to "wsd" (its decay_fraction is each budget\'s cooldown)'
        )
    if not 1 <= len(token_budgets) <= MAX_HORIZONS:
        raise HorizonError(f"give 1 to {MAX_HORIZONS} token budgets, not {len(token_budgets)}")
    if any(b <= a for a, b in itertools.pairwise(token_budgets)):
        raise HorizonError(f"token budgets must increase strictly: {token_budgets} (sort them, drop repeats)")
    off = [b for b in token_budgets if b % t.batch_tokens]
    if off:
        rounded = [max(1, round(b / t.batch_tokens)) * t.batch_tokens for b in off]
        raise HorizonError(
            f"token budgets {off} are not multiples of training.batch_tokens {t.batch_tokens}: each budget "
            f"is a whole number of steps (round to {rounded})"
        )
    steps = tuple(b // t.batch_tokens for b in token_budgets)
    if steps[-1] > MAX_STEPS:
        raise HorizonError(
            f"the largest token budget is {steps[-1]} steps of {t.batch_tokens} tokens, past the limit of "
            f"{MAX_STEPS} steps: lower it or raise training.batch_tokens"
        )
    plan = HorizonPlan(steps, t.warmup_steps_for(steps[0]), t.decay_fraction, t.batch_tokens)
    if plan.branch_point(0) < max(1, plan.warmup_steps):
        raise HorizonError(
            f"the smallest token budget ({token_budgets[0]} tokens, {steps[0]} steps) leaves no stable "
            f"phase between its warmup ({plan.warmup_steps} steps) and its decay (from step "
            f"{plan.branch_point(0)}): raise it"
        )
    return plan
