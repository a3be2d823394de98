"""Every scaling law the predictor fits, in one place.

Each law is a sum of positive power-law terms, fitted in log space the way Epoch's Chinchilla
replication does (epoch-research/analyzing-chinchilla): ``log L = LSE_k(c_k − p_k · log x_k)``, where
``c_k`` is the log of a coefficient and ``p_k`` its decay exponent (a constant term has none), or that
sum raised to an outer power γ, ``log L = γ · LSE_k(...)`` (Kaplan et al. 2020's L(N, D)). Writing
every law this way gives one value function and one analytic gradient for all of them, keeps the
coefficients positive without bounds, and makes a fit invariant to the units of x and of the loss.

Parameter vectors come in two coordinate systems:

* *natural*: the numbers a reader expects, in the order of ``Law.param_names`` (E, A, alpha, ...),
  with x in its raw units (parameters, tokens, FLOP);
* *internal*: ``(log coefficients..., exponents..., γ)`` in the same order. The optimiser works on the
  internal vector with x and the loss divided by their geometric means (``Scales``), because raw
  ``log N`` near 25 makes coefficient and exponent almost collinear and any optimiser crawls.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import product

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

# Log-coefficient bounds in normalised units (the loss divided by its geometric mean). A term e^10
# times the typical loss, or e^-30 times it, is not a fit anyone wants; the lower bound is where a
# coefficient has effectively vanished (reported as "at bound").
LOG_COEF_BOUNDS = (-30.0, 10.0)
# Decay exponents: 0 is a flat term; language-model exponents sit well below 2 (Kaplan 0.076,
# Chinchilla 0.34, μScaling ~0.3), and 4 leaves room without letting a term become a step.
EXPONENT_BOUNDS = (0.0, 4.0)
# The outer power γ of a law such as Kaplan's: positive (a law that rises with N and D is no scaling
# law); Kaplan et al. 2020 fit α_D = 0.095 (Eq. (1.5)), so the floor leaves an order of magnitude below.
OUTER_BOUNDS = (0.01, 4.0)


@dataclass(frozen=True)
class Term:
    """One positive term of a law: ``coef`` (constant) or ``coef · x[column]^(−exponent)``."""

    coef: str
    exponent: str | None = None
    column: int = 0


@dataclass(frozen=True)
class Scales:
    """Geometric means the data were divided by before fitting (logs, so they add)."""

    log_x: tuple[float, ...]  # per x column
    log_y: float

    @classmethod
    def none(cls, n_columns: int) -> Scales:
        return cls(log_x=(0.0,) * n_columns, log_y=0.0)


@dataclass(frozen=True)
class Law:
    """A scaling law: its terms, and the grid of exponents the fit starts from."""

    name: str
    formula: str
    columns: tuple[str, ...]  # names of the x columns, e.g. ("N",) or ("N", "D")
    terms: tuple[Term, ...]
    # Exponent values the multi-start grid takes for each exponent; the coefficients of each start
    # are not gridded but projected (non-negative least squares), see predictor.solver.
    exponent_grid: tuple[float, ...] = field(default=tuple(float(v) for v in np.geomspace(0.02, 2.5, 48)))
    # The outer power's name (L = (Σ terms)^γ), its last parameter, or None for a plain sum; the
    # values the start grid takes for it.
    outer: str | None = None
    outer_grid: tuple[float, ...] = ()
    # A law whose outer power is given, not fitted: the fixed-D slice of an (N, D) law takes γ from a
    # fit of that law (`with_outer` binds it; `outer_value` stays None in LAWS). γ is then no parameter.
    fixed_outer: bool = False
    outer_value: float | None = None

    @property
    def fitted_outer(self) -> bool:
        """Whether γ is the last fitted parameter (Kaplan's L(N, D)), not a given number."""
        return self.outer is not None and not self.fixed_outer

    def with_outer(self, value: float) -> Law:
        """This fixed-outer law with γ bound to `value`; raises ValueError naming the fix."""
        if not self.fixed_outer:
            raise ValueError(f"{self.name} fits its own outer power (or has none): do not pass gamma")
        low, high = OUTER_BOUNDS
        if not (np.isfinite(value) and low <= value <= high):
            raise ValueError(f"gamma must lie in [{low}, {high}], as an (N, D) fit's does; got {value}")
        return replace(self, outer_value=float(value))

    @property
    def exponent_names(self) -> tuple[str, ...]:
        return tuple(t.exponent for t in self.terms if t.exponent is not None)

    @property
    def param_names(self) -> tuple[str, ...]:
        outer = (self.outer,) if self.fitted_outer and self.outer is not None else ()
        return tuple(t.coef for t in self.terms) + self.exponent_names + outer

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    @property
    def in_tokens(self) -> bool:
        """Whether the law takes training tokens D beside N (an (N, D) law)."""
        return "D" in self.columns

    def bounds(self) -> list[tuple[float, float]]:
        """Bounds on the internal vector, for every refit (steps are clipped to them)."""
        outer = [OUTER_BOUNDS] if self.fitted_outer else []
        return [LOG_COEF_BOUNDS] * len(self.terms) + [EXPONENT_BOUNDS] * len(self.exponent_names) + outer

    def start_exponents(self) -> Array:
        """Every combination of the exponent grid (and of the outer power's, last): (n_starts, p − terms)."""
        axes = [self.exponent_grid] * len(self.exponent_names)
        if self.fitted_outer:
            axes.append(self.outer_grid)
        grid = list(product(*axes))
        return np.asarray(grid, dtype=float).reshape(len(grid), len(axes))

    def _gamma(self, theta: Array) -> Array:
        """The outer power (..., 1): theta's last entry, a fixed one's bound value, or 1 (a plain sum)."""
        if self.fitted_outer:
            return np.asarray(theta[..., -1:], dtype=float)
        if self.outer is None:
            return np.ones((*np.shape(theta)[:-1], 1))
        return np.full((*np.shape(theta)[:-1], 1), self._bound_outer())

    def _bound_outer(self) -> float:
        if self.outer_value is None:
            raise ValueError(f"{self.name} needs its outer power: bind it with with_outer(gamma)")
        return self.outer_value

    # --- value and gradient (internal coordinates) -------------------------------------------

    def _term_logs(self, theta: Array, log_x: Array) -> Array:
        """log of each term: (..., n, n_terms) for theta (..., p) and log_x (n, n_columns)."""
        k = len(self.terms)
        logs = []
        exponent_index = k
        for i, term in enumerate(self.terms):
            c = theta[..., i, None]  # (..., 1)
            if term.exponent is None:
                logs.append(np.broadcast_to(c, (*theta.shape[:-1], log_x.shape[0])))
            else:
                p = theta[..., exponent_index, None]
                logs.append(c - p * log_x[:, term.column])
                exponent_index += 1
        return np.stack(logs, axis=-1)

    def log_value(self, theta: Array, log_x: Array) -> Array:
        """log L for internal theta (..., p) at log_x (n, n_columns): (..., n)."""
        z = self._term_logs(theta, log_x)
        top = z.max(axis=-1, keepdims=True)
        inner = top[..., 0] + np.log(np.exp(z - top).sum(axis=-1))
        # The solver evaluates this thousands of times a fit: a plain sum skips the outer power.
        return np.asarray(inner if self.outer is None else self._gamma(theta) * inner)

    def log_value_and_jacobian(self, theta: Array, log_x: Array) -> tuple[Array, Array]:
        """log L (..., n) and its analytic Jacobian d log L / d theta (..., n, p).

        With S = LSE_k(c_k − p_k · log x_k) and log L = γ·S: d/dc_k = γ·s_k, d/dp_k = −γ·s_k · log x_k,
        where s_k is the share of term k in the sum (softmax), and d/dγ = S.
        """
        z = self._term_logs(theta, log_x)
        top = z.max(axis=-1, keepdims=True)
        e = np.exp(z - top)
        total = e.sum(axis=-1, keepdims=True)
        share = e / total  # (..., n, n_terms)
        inner = top[..., 0] + np.log(total[..., 0])
        value = inner
        if self.outer is not None:
            gamma = self._gamma(theta)  # (..., 1)
            share = share * gamma[..., None]
            value = gamma * inner
        jac = np.empty((*share.shape[:-1], self.n_params))
        jac[..., : len(self.terms)] = share
        exponent_index = len(self.terms)
        for i, term in enumerate(self.terms):
            if term.exponent is not None:
                jac[..., exponent_index] = -share[..., i] * log_x[:, term.column]
                exponent_index += 1
        if self.fitted_outer:
            jac[..., -1] = inner
        return value, jac

    def linear_target(self, exponents: Array, y: Array) -> Array:
        """What `basis`'s columns combine into for these start exponents: L, or L^(1/γ) under an outer
        power γ (exponents' last entry, or the fixed one), so the coefficients stay a linear least-squares
        problem."""
        if self.outer is None:
            return y
        gamma = exponents[-1] if self.fitted_outer else self._bound_outer()
        return np.asarray(y ** (1.0 / gamma))

    def basis(self, exponents: Array, log_x: Array) -> Array:
        """Columns whose non-negative combination is `linear_target` (L for a plain sum) for these
        exponents: (n, n_terms).

        For fixed exponents the law is linear in its coefficients; the fit's start grid uses this
        (variable projection) instead of gridding the coefficients blindly.
        """
        cols = []
        exponent_index = 0
        for term in self.terms:
            if term.exponent is None:
                cols.append(np.ones(log_x.shape[0]))
            else:
                cols.append(np.exp(-exponents[exponent_index] * log_x[:, term.column]))
                exponent_index += 1
        return np.stack(cols, axis=1)

    # --- coordinates ---------------------------------------------------------------------------

    def _shift(self, theta: Array, scales: Scales, sign: float) -> Array:
        """Move log coefficients between normalised and raw units (affine for fixed γ): the loss's
        scale enters each term of the sum as log ȳ / γ."""
        out = np.array(theta, dtype=float, copy=True)
        exponent_index = len(self.terms)
        gamma = self._gamma(theta)[..., 0]
        for i, term in enumerate(self.terms):
            delta: Array | float = scales.log_y / gamma
            if term.exponent is not None:
                delta = delta + theta[..., exponent_index] * scales.log_x[term.column]
                exponent_index += 1
            out[..., i] = theta[..., i] + sign * delta
        return out

    def to_natural(self, theta: Array, scales: Scales) -> Array:
        """Internal (normalised) → natural parameters, vectorised over leading axes."""
        raw = self._shift(theta, scales, +1.0)
        raw[..., : len(self.terms)] = np.exp(raw[..., : len(self.terms)])
        return raw

    def to_internal(self, params: Array, scales: Scales) -> Array:
        """Natural → internal (normalised); a coefficient of exactly 0 maps to −inf."""
        raw = np.array(params, dtype=float, copy=True)
        with np.errstate(divide="ignore"):
            raw[..., : len(self.terms)] = np.log(raw[..., : len(self.terms)])
        return self._shift(raw, scales, -1.0)

    def natural_jacobian(self, theta: Array, scales: Scales) -> Array:
        """d natural / d internal at theta (p, p), for delta-method standard errors."""
        natural = self.to_natural(theta, scales)
        jac = np.eye(self.n_params)
        exponent_index = len(self.terms)
        for i, term in enumerate(self.terms):
            jac[i, i] = natural[i]
            if term.exponent is not None:
                jac[i, exponent_index] = natural[i] * scales.log_x[term.column]
                exponent_index += 1
            if self.fitted_outer:
                jac[i, -1] = -natural[i] * scales.log_y / float(theta[-1]) ** 2
        return jac

    def predict(self, params: Array, x: Array) -> Array:
        """L at x (n, n_columns) for natural params (..., p): (..., n)."""
        theta = self.to_internal(params, Scales.none(len(self.columns)))
        return np.exp(self.log_value(theta, np.log(x)))


LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        Law(
            name="mu_scaling",
            formula="L = E + A·N^(−alpha)",
            columns=("N",),
            terms=(Term("E"), Term("A", "alpha")),
        ),
        Law(
            name="power",
            formula="L = A·N^(−alpha)",
            columns=("N",),
            terms=(Term("A", "alpha"),),
        ),
        Law(
            name="chinchilla",
            formula="L = E + A·N^(−alpha) + B·D^(−beta)",
            columns=("N", "D"),
            terms=(Term("E"), Term("A", "alpha", 0), Term("B", "beta", 1)),
            # 2-D grid: 30 × 30 exponent pairs (the 1-D laws use 48 values).
            exponent_grid=tuple(float(v) for v in np.geomspace(0.02, 2.5, 30)),
        ),
        # Kaplan et al. 2020, Eq. (1.5) and §4: L = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D, with the D
        # exponent freed as Epoch's replication frees Chinchilla's. The N term matters less where D
        # is small, so the width gap may grow with D, which the additive form cannot express; no
        # floor E (the loss tends to 0 as N and D grow). Inner exponents α_N/α_D ≈ 0.8 and 1 and
        # γ = α_D ≈ 0.1 in Kaplan's fit; the grids reach well beyond.
        Law(
            name="kaplan",
            formula="L = (A·N^(−alpha) + B·D^(−beta))^gamma",
            columns=("N", "D"),
            terms=(Term("A", "alpha", 0), Term("B", "beta", 1)),
            exponent_grid=tuple(float(v) for v in np.geomspace(0.05, 4.0, 16)),
            outer="gamma",
            outer_grid=tuple(float(v) for v in np.geomspace(0.03, 2.0, 12)),
        ),
        # The fixed-D slice of the kaplan law: every rung of a width ladder trains on the same D tokens,
        # so its N curve is L(N, D) at that D, (A·N^(−alpha) + C)^gamma with C = B·D^(−beta) (Kaplan
        # et al. 2020, §4, Eq. (4.1)). One D cannot pin γ against alpha and C, so γ is given: the kaplan
        # fit of the architecture's own (N, D) grid (app.fits). Its knee is about 1/γ times sharper than
        # E + A·N^(−alpha)'s, which is what bench/PROTOCOL.md's calibration amendments 6 and 7 tested.
        Law(
            name="kaplan_slice",
            formula="L = (A·N^(−alpha) + C)^gamma, gamma fixed by an (N, D) fit",
            columns=("N",),
            terms=(Term("A", "alpha"), Term("C")),
            exponent_grid=tuple(float(v) for v in np.geomspace(0.05, 4.0, 48)),
            outer="gamma",
            fixed_outer=True,
        ),
        Law(
            name="compute",
            formula="L = E + A·C^(−alpha)",
            columns=("C",),
            terms=(Term("E"), Term("A", "alpha")),
        ),
    )
}
