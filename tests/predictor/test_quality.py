"""The fit-quality gate (predictor.quality): a ladder without a scaling trend is never a prediction."""

from __future__ import annotations

import numpy as np
import pytest

import predictor
from predictor.quality import MAX_HALF_WIDTH, assess
from tests.predictor.helpers import mu_law, proxy_ladder

# The ladder the shipped depth-μP example produced: widths 8…32 of a 2-layer proxy, the loss not
# falling with width (issue 20's report: 1.921, 1.881, 1.946, 1.873).
FLAT_WIDTHS = np.array([8, 16, 24, 32])
FLAT_LOSSES = np.array([1.921, 1.881, 1.946, 1.873])


def test_a_ladder_that_does_not_fall_with_n_is_refused_with_its_reason() -> None:
    n = 24.0 * FLAT_WIDTHS**2
    quality = assess(predictor.fit(n, FLAT_LOSSES))
    assert not quality.ok
    assert any("does not fall with N" in r for r in quality.reasons)
    assert quality.trend_p > 0.05


def test_a_rising_ladder_is_refused() -> None:
    n = np.repeat(np.geomspace(1e6, 1e8, 5), 2)
    rng = np.random.default_rng(0)
    y = 2.0 + 0.02 * np.log(n / 1e6) + 0.002 * rng.standard_normal(len(n))
    quality = assess(predictor.fit(n, y))
    assert not quality.ok and quality.slope > 0


@pytest.mark.parametrize("widths,seeds,noise", [(4, 1, 0.01), (6, 2, 0.008), (8, 4, 0.003)])
def test_a_real_trend_passes_every_check(widths: int, seeds: int, noise: float) -> None:
    rng = np.random.default_rng(widths)
    n, y = proxy_ladder(rng, widths=widths, seeds=seeds, noise=noise)
    quality = assess(predictor.fit(n, y))
    assert quality.ok, quality.reasons
    assert quality.slope < 0 and quality.trend_p < 0.05 and quality.r2 > 0
    assert 0 < quality.half_width <= MAX_HALF_WIDTH


def test_constant_losses_have_no_r2_and_no_trend() -> None:
    n = np.geomspace(1e6, 1e8, 5)
    quality = assess(predictor.fit(n, np.full(5, 2.5)))
    assert not quality.ok
    assert any("R²" in r for r in quality.reasons) and any("does not fall" in r for r in quality.reasons)


def test_the_interval_bound_is_stated_and_applied() -> None:
    rng = np.random.default_rng(1)
    n, y = proxy_ladder(rng, widths=5, seeds=1, noise=0.01)
    fit = predictor.fit(n, y)
    loose, tight = assess(fit), assess(fit, max_half_width=1e-4)
    assert loose.ok and not tight.ok
    assert len(tight.reasons) == 1 and "wider than ±0%" in tight.reasons[0]
    assert tight.half_width == pytest.approx(loose.half_width)
    assert tight.to_dict()["max_half_width"] == 1e-4
    with pytest.raises(ValueError, match="max_half_width"):
        assess(fit, max_half_width=0)


def test_an_exact_law_passes() -> None:
    n = np.geomspace(1e6, 1e8, 6)
    assert assess(predictor.fit(n, mu_law(n) * (1 + 1e-4 * np.sin(np.arange(6))))).ok
