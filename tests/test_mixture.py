"""Exact Gaussian-mixture summaries against brute force (1e6 draws) and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bayesmir.mixture import GaussianMixture, p_abs_column, summarise_mixture

# a skewed three-component mixture (the shape a poorly identified sd_slope gives beta)
W, M, S = np.array([0.6, 0.3, 0.1]), np.array([-0.2, 0.5, 2.0]), np.array([0.3, 0.6, 1.0])
N = 1_000_000


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(42)
    component = rng.choice(3, size=N, p=W)
    return rng.normal(M[component], S[component])


def test_quantiles_and_moments_match_a_million_draws(draws):
    """Quantile MC SE at n = 1e6 is sqrt(p(1-p)/n)/f(x) <= 0.002 here; 5 SE = 0.01. Mean and SD
    are closed forms, checked against the draws within 5 MC SE (~0.001)."""
    mixture = GaussianMixture.of(W, M, S)
    for p in (0.025, 0.1, 0.5, 0.9, 0.975):
        assert mixture.quantile(p) == pytest.approx(np.quantile(draws, p), abs=0.01), p
        assert mixture.cdf(mixture.quantile(p)) == pytest.approx(p, abs=1e-9)
    assert mixture.mean() == pytest.approx(W @ M, abs=1e-12)
    assert mixture.mean() == pytest.approx(draws.mean(), abs=5 * draws.std() / math.sqrt(N))
    assert mixture.sd() == pytest.approx(draws.std(), abs=0.005)


def test_lfsr_and_tail_probability_match_closed_forms(draws):
    """lfsr = min(sum w Phi(-m/s), 1 - that); P(|x| > d) = sum w (Phi((-d-m)/s) + Phi((m-d)/s))."""
    mixture = GaussianMixture.of(W, M, S)
    below = W @ stats.norm.cdf(-M / S)
    assert mixture.lfsr() == pytest.approx(min(below, 1 - below), abs=1e-12)
    d = math.log(1.5)
    expected = W @ (stats.norm.cdf((-d - M) / S) + stats.norm.sf((d - M) / S))
    assert mixture.p_abs_gt(d) == pytest.approx(expected, abs=1e-12)
    assert mixture.p_abs_gt(d) == pytest.approx(np.mean(np.abs(draws) > d), abs=0.003)  # 6 binomial SE


def test_hdi_is_the_shortest_interval_of_its_mass(draws):
    """The HDI holds 95% and is no longer than any other 95% interval on a grid of lower tails
    (for a skewed mixture it is shorter than the equal-tailed one)."""
    mixture = GaussianMixture.of(W, M, S)
    low, high = mixture.hdi(0.95)
    assert mixture.cdf(high) - mixture.cdf(low) == pytest.approx(0.95, abs=1e-8)
    widths = [mixture.quantile(a + 0.95) - mixture.quantile(a) for a in np.linspace(1e-4, 0.05 - 1e-4, 200)]
    assert high - low <= min(widths) + 1e-6
    eti = mixture.eti(0.95)
    assert high - low < eti[1] - eti[0]
    # density equal at both ends (the defining property of an HDI of a unimodal density)
    assert mixture.pdf(low) == pytest.approx(mixture.pdf(high), rel=1e-3)


def test_single_component_is_the_gaussian_and_has_no_integration_error():
    mixture = GaussianMixture.of([1.0], [0.3], [0.2])
    summary = summarise_mixture(mixture, 0.9, 0.1)
    assert summary["ci_low"] == pytest.approx(stats.norm.ppf(0.05, 0.3, 0.2), abs=1e-9)
    assert summary["hdi_high"] == pytest.approx(stats.norm.ppf(0.95, 0.3, 0.2), abs=1e-6)
    assert summary["lfsr"] == pytest.approx(stats.norm.cdf(-1.5), abs=1e-12)
    assert summary["lfsr_se"] == 0.0 and summary["ci_low_se"] == 0.0
    assert p_abs_column(0.1) in summary and p_abs_column(math.log(1.5)) == "p_abs_gt_0.405"


def test_integration_se_is_the_self_normalised_formula():
    """SE of sum w p = sqrt(sum w^2 (p - P)^2), by hand for two components."""
    mixture = GaussianMixture.of([0.25, 0.75], [-1.0, 1.0], [1.0, 1.0])
    p = stats.norm.cdf([1.0, -1.0])
    total = 0.25 * p[0] + 0.75 * p[1]
    expected = math.sqrt(0.25**2 * (p[0] - total) ** 2 + 0.75**2 * (p[1] - total) ** 2)
    assert mixture.lfsr_se() == pytest.approx(expected, abs=1e-12)


def test_bad_components_are_refused():
    with pytest.raises(ValueError):
        GaussianMixture.of([1.0], [0.0], [0.0])
