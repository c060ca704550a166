"""Priors: the documented defaults (bayesmir/priors.py and README "Model, priors, normalisation"),
coef_sd, pooling switch and the to_dict round trip."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from bayesmir import Priors

# README: intercept N(0, 10), other coefficients N(0, 2.5), sd(isomiR intercept) HalfNormal(3),
# sd(slope) HalfNormal(1), sd(sample) HalfNormal(1), LKJ(2), 1/sqrt(theta) ~ HalfNormal(1).
DOCUMENTED = {
    "intercept_sd": 10.0,
    "beta_sd": 2.5,
    "sd_isomir_scale": 3.0,
    "sd_slope_scale": 1.0,
    "sd_sample_scale": 1.0,
    "lkj_eta": 2.0,
    "inv_sqrt_theta_scale": 1.0,
}
POOLED = [
    "pooled_log_theta_mean", "pooled_log_theta_sd",
    "pooled_log_sd_isomir_mean", "pooled_log_sd_isomir_sd",
    "pooled_log_sd_sample_mean", "pooled_log_sd_sample_sd",
]


def test_defaults_are_the_documented_ones():
    priors = Priors()
    for name, value in DOCUMENTED.items():
        assert getattr(priors, name) == value, name
    assert all(math.isnan(getattr(priors, name)) for name in POOLED)  # NaN = "not pooled"
    assert not priors.pooled


def test_fields_are_exactly_the_documented_ones():
    assert {field.name for field in dataclasses.fields(Priors)} == {*DOCUMENTED, *POOLED}


@pytest.mark.parametrize("name", ["pooled_log_theta_mean", "pooled_log_sd_isomir_mean",
                                  "pooled_log_sd_sample_mean"])
def test_any_pooled_mean_switches_pooling_on(name):
    assert Priors(**{name: 0.5}).pooled


def test_pooled_sd_alone_does_not_switch_pooling_on():
    assert not Priors(pooled_log_theta_sd=0.3).pooled


def test_coef_sd_intercept_and_others():
    names = ["Intercept", "group[T.o]", "lab[T.b]"]
    np.testing.assert_array_equal(Priors().coef_sd(names), [10.0, 2.5, 2.5])
    np.testing.assert_array_equal(Priors(intercept_sd=4.0, beta_sd=0.5).coef_sd(names), [4.0, 0.5, 0.5])
    # the intercept is recognised by name, not by position
    np.testing.assert_array_equal(Priors().coef_sd(["group[T.o]", "Intercept"]), [2.5, 10.0])


def test_to_dict_round_trip():
    priors = Priors(beta_sd=1.5, lkj_eta=4.0, pooled_log_theta_mean=2.3, pooled_log_theta_sd=0.4)
    values = priors.to_dict()
    assert set(values) == {*DOCUMENTED, *POOLED}
    assert values["beta_sd"] == 1.5 and values["pooled_log_theta_mean"] == 2.3
    again = Priors(**values)
    for name in values:
        first, second = getattr(priors, name), getattr(again, name)
        assert first == second or (math.isnan(first) and math.isnan(second)), name


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Priors().beta_sd = 1.0  # shared by every fit: must not change under a running fit
