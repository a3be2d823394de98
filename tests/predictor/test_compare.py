"""Paired comparisons: ranks, expected-loss intervals and P(best) that account for shared seeds."""

from __future__ import annotations

import numpy as np
import pytest

import predictor
from tests.predictor.helpers import mu_law

WIDTHS = np.geomspace(1536, 55296, 6)
SEEDS = 4


def ladder(rng: np.random.Generator, scale: float = 1.0, seed_sd: float = 0.005) -> tuple[np.ndarray, ...]:
    n = np.repeat(WIDTHS, SEEDS)
    labels = np.tile(np.arange(SEEDS), len(WIDTHS))
    shift = rng.normal(0.0, seed_sd, SEEDS)
    return n, scale * mu_law(n) * np.exp(shift[labels] + 0.008 * rng.standard_normal(len(n))), labels


def test_a_design_better_at_every_paired_proxy_is_best_with_certainty() -> None:
    n, y, labels = ladder(np.random.default_rng(3))
    a = predictor.fit(n, y, seeds=labels)
    b = predictor.fit(n, 0.99 * y, seeds=labels)  # 1 % lower at every proxy, same seeds
    paired = predictor.compare([a, b], 1e7)
    assert paired.probability_best[1] >= 0.99 and paired.ranks == [2, 1] and paired.best == 1
    assert paired.correlation[0, 1] == pytest.approx(1.0) and paired.paired_runs[0, 1] == len(y)
    # Without seed labels nothing pairs them: the same data then leave the ranking uncertain.
    unpaired = predictor.compare([a, predictor.fit(n, 0.99 * y)], 1e7)
    assert unpaired.probability_best[1] < 0.9 and unpaired.paired_runs[0, 1] == 0


def test_identical_candidates_split_the_win() -> None:
    n, y, labels = ladder(np.random.default_rng(4))
    result = predictor.compare([predictor.fit(n, y, seeds=labels), predictor.fit(n, y, seeds=labels)], 1e7)
    assert result.probability_best == pytest.approx([0.5, 0.5], abs=0.05)


def test_three_candidates_sum_to_one_in_the_order_given() -> None:
    rng = np.random.default_rng(5)
    fits = [predictor.fit(*ladder(rng, scale)[:2], seeds=ladder(rng)[2]) for scale in (1.0, 0.97, 1.02)]
    result = predictor.compare(fits, 1e7, level=0.8)
    assert sum(result.probability_best) == pytest.approx(1.0)
    assert result.ranks == [2, 1, 3] and result.probability_best[1] > 0.5
    assert [p.interval for p in result.predictions] == ["expected"] * 3
    assert all(p.level == 0.8 for p in result.predictions)


def test_compare_needs_two_one_column_fits() -> None:
    n, y, labels = ladder(np.random.default_rng(6))
    fit = predictor.fit(n, y, seeds=labels)
    with pytest.raises(ValueError, match="at least two fits"):
        predictor.compare([fit], 1e7)


def test_factors_rank_candidates_in_a_common_unit() -> None:
    """Bits per byte across tokenizers: a design with the higher loss per token can win per byte when
    its tokens carry more bytes; the factors move the means and leave the spread and pairing alone."""
    n, y, labels = ladder(np.random.default_rng(7))
    short = predictor.fit(n, y, seeds=labels)  # 1 byte per token
    long = predictor.fit(n, 3.5 * y, seeds=labels)  # 4 bytes per token, 3.5× the nats per token
    per_token = predictor.compare([short, long], 1e7)
    assert per_token.ranks == [1, 2]
    factors = [1 / np.log(2), 1 / (4 * np.log(2))]
    per_byte = predictor.compare([short, long], 1e7, factors=factors)
    assert per_byte.ranks == [2, 1] and per_byte.probability_best[1] >= 0.99
    for plain, scaled, factor in zip(per_token.predictions, per_byte.predictions, factors, strict=True):
        assert float(scaled.mean) == pytest.approx(float(plain.mean) * factor)
        assert float(scaled.lower) == pytest.approx(float(plain.lower) * factor)
        assert float(scaled.log_sd) == pytest.approx(float(plain.log_sd))
    assert per_byte.correlation == pytest.approx(per_token.correlation)
    with pytest.raises(ValueError, match="one factor per fit"):
        predictor.compare([short, long], 1e7, factors=[1.0])
    with pytest.raises(ValueError, match="must be positive"):
        predictor.compare([short, long], 1e7, factors=[1.0, 0.0])


def test_designs_on_an_n_d_grid_compare_each_at_its_own_point() -> None:
    """At one compute budget each design sits at its own compute-optimal (N*, D*): `at` gives one query
    per fit; grid points pair by (N, D) rung and seed as widths do."""
    rng = np.random.default_rng(8)
    n, d = np.meshgrid(np.geomspace(2e6, 2e8, 4), np.geomspace(2e8, 2e10, 4))
    n, d = np.repeat(n.ravel(), 2), np.repeat(d.ravel(), 2)
    labels = np.tile([0, 1], len(n) // 2)
    shift = rng.normal(0.0, 0.005, 2)[labels]
    base = (1.69 + 406.4 * n**-0.34 + 410.7 * d**-0.28) * np.exp(shift + 0.004 * rng.standard_normal(len(n)))
    x = np.column_stack([n, d])
    a = predictor.fit(x, base, law="chinchilla", seeds=labels)
    b = predictor.fit(x, 0.99 * base, law="chinchilla", seeds=labels)
    result = predictor.compare([a, b], at=[(1e9, 2e10), (1.1e9, 1.8e10)])
    assert result.ranks == [2, 1] and result.probability_best[1] > 0.9
    assert result.paired_runs[0, 1] == len(n) and result.correlation[0, 1] > 0.9
    same = predictor.compare([a, b], (1e9, 2e10))  # one (N, D) row for both
    assert same.ranks == [2, 1]
    with pytest.raises(ValueError, match="one query per fit"):
        predictor.compare([a, b], at=[(1e9, 2e10)])
    with pytest.raises(ValueError, match="give one query x for every fit, or `at`"):
        predictor.compare([a, b])
