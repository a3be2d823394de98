"""The shape test: a (width, depth) grid with a known aspect-ratio effect, and without one."""

from __future__ import annotations

import numpy as np
import pytest

import predictor
from predictor.shape import predict_with_shape, shape_test
from tests.predictor.helpers import mu_law

WIDTHS, DEPTHS, SEEDS = (64, 128, 256), (2, 4, 8), 3


def grid(rng: np.random.Generator, gamma: float, noise: float = 0.004):
    """Every (width, depth) × seed, N = 12·width²·depth, log L = log L(N) + γ·(z − z̄)."""
    rows = np.array([(w, d, s) for w in WIDTHS for d in DEPTHS for s in range(SEEDS)])
    w, d, s = rows.T
    n = 12.0 * w.astype(float) ** 2 * d
    z = np.log2(w / d)
    loss = mu_law(n * 100) * np.exp(gamma * (z - z.mean()) + noise * rng.standard_normal(len(n)))
    return n, loss, w, d, s


def fitted(rng: np.random.Generator, gamma: float):
    n, loss, w, d, s = grid(rng, gamma)
    fit = predictor.fit(n, loss, law="mu_scaling", seeds=s)
    return fit, shape_test(fit, w, d), (n, w, d)


def test_a_real_shape_effect_is_found_and_its_size_recovered() -> None:
    _, test, _ = fitted(np.random.default_rng(1), gamma=0.02)
    assert test.testable and test.needed, test.reason
    assert test.gamma_lower is not None and test.gamma_upper is not None
    assert test.gamma_lower <= 0.02 <= test.gamma_upper
    assert test.p_value is not None and test.p_value < 0.01
    # L(N) alone leaves the effect in the residuals, shallow (wide) above deep: with γ > 0 the wide
    # shapes (large z) lose more, and at fixed width the shallowest depth has the largest z.
    assert test.residuals_by_depth[2] > test.residuals_by_depth[8]


def test_predictions_use_the_shape_term_when_needed() -> None:
    fit, test, _ = fitted(np.random.default_rng(2), gamma=0.02)
    n = 12.0 * 1024**2 * 16
    wide = predict_with_shape(fit, test, n, aspect_ratio=256, interval="expected")
    deep = predict_with_shape(fit, test, n, aspect_ratio=16, interval="expected")
    truth = {a: float(mu_law(n * 100)) for a in (256, 16)}
    z_mean = test.z_mean
    assert z_mean is not None
    for aspect, answer in ((256, wide), (16, deep)):
        expected = truth[aspect] * np.exp(0.02 * (np.log2(aspect) - z_mean))
        assert answer.lower <= expected <= answer.upper
    assert wide.mean > deep.mean  # γ > 0: the wider shape is worse at equal N
    run = predict_with_shape(fit, test, n, aspect_ratio=256, interval="run")
    assert run.upper - run.lower > wide.upper - wide.lower  # a new run adds its noise
    assert any("shape-corrected" in w for w in wide.warnings)
    # The answer states the extrapolation and its warning as the plain law's would, once.
    assert wide.extrapolation_factor == pytest.approx(n / fit.x_range[1])
    plain = fit.predict(n)
    assert wide.warnings[: len(plain.warnings)] == plain.warnings
    assert wide.seeds == 1 and run.interval == "run"
    with pytest.raises(ValueError, match="level must lie in"):
        predict_with_shape(fit, test, n, aspect_ratio=256, level=1.5)
    with pytest.raises(ValueError, match="interval must be one of"):
        predict_with_shape(fit, test, n, aspect_ratio=256, interval="mean")


def test_no_effect_is_rarely_called_needed() -> None:
    """At the test's 5 % level, a grid without any shape effect is called "needed" about 5 % of the time;
    allow up to 20 % over 40 draws (a broken test, e.g. one that ignores the extra parameter, calls
    it far more often)."""
    rng = np.random.default_rng(3)
    calls = [fitted(rng, gamma=0.0)[1].needed for _ in range(40)]
    assert sum(calls) <= 8
    fit, test = next((f, t) for f, t, _ in (fitted(rng, gamma=0.0) for _ in range(10)) if not t.needed)
    with pytest.raises(ValueError, match="found the term needed"):
        predict_with_shape(fit, test, 1e9, 64)


@pytest.mark.parametrize(
    ("widths", "depths"),
    [((64, 128, 256, 512), (4,) * 4), ((64,) * 4, (1, 2, 4, 8)), ((64, 128, 256, 512), (1, 2, 4, 8))],
    ids=["one depth", "one width", "one aspect ratio"],
)
def test_a_ladder_whose_shape_follows_n_is_not_testable(widths, depths) -> None:
    rng = np.random.default_rng(5)
    w = np.repeat(widths, 2)
    d = np.repeat(depths, 2)
    n = 12.0 * w.astype(float) ** 2 * d
    fit = predictor.fit(n, mu_law(n * 100) * np.exp(0.004 * rng.standard_normal(len(n))), law="mu_scaling")
    test = shape_test(fit, w, d)
    assert not test.testable and not test.needed
    assert "(width, depth) grid" in test.reason
    assert set(test.residuals_by_depth) == set(depths)
