"""One DE rule and one isomiR-usage rule: the CLI summary, compare and the report count the same."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmir import calls
from bayesmir.cli_results import summary_line
from bayesmir.frequentist.comparison import compare
from bayesmir.reporting.html import results_section

COEF = "group[T.b]"
# qvalue < 0.05 and converged: m1, m2 (m3 is below 0.05 but unconverged; m6 failed: NaN)
MIRNA = pd.DataFrame({
    "miRNA": ["m1", "m2", "m3", "m4", "m5", "m6"], "coef": COEF,
    "estimate": [1.0, -0.8, 0.9, 0.1, 0.3, np.nan], "sd": [0.2, 0.2, 0.2, 0.3, 0.3, np.nan],
    "ci_low": [0.6, -1.2, 0.5, -0.5, -0.3, np.nan], "ci_high": [1.4, -0.4, 1.3, 0.7, 0.9, np.nan],
    "lfsr": [0.0005, 0.004, 0.001, 0.4, 0.2, np.nan], "qvalue": [0.003, 0.012, 0.003, 0.4, 0.3, np.nan],
    "converged": [True, True, False, True, True, False],
})
# log BF > log 3 and both fits converged: m1, m4 (m3 unconverged; m5 exactly log 3 is not above)
SLOPE = pd.DataFrame({
    "miRNA": MIRNA["miRNA"], "term": COEF, "sd_slope_median": 0.3,
    "log_bayes_factor": [5.0, 0.2, 4.0, 1.5, math.log(3.0), np.nan],
    "converged": [True, True, False, True, True, False],
})


class FakeFit:
    """What the three consumers read from a FitResult."""

    def __init__(self) -> None:
        self.posteriors = {}
        self.diagnostics = pd.DataFrame({"miRNA": MIRNA["miRNA"], "converged": MIRNA["converged"], "message": ""})

    def mirna_table(self):
        return MIRNA.copy()

    def slope_table(self):
        return SLOPE.copy()


def frequentist() -> pd.DataFrame:
    return pd.DataFrame({"miRNA": MIRNA["miRNA"], "coef": COEF, "estimate": 0.5, "se": 0.2, "ci_low": 0.1,
                         "ci_high": 0.9, "wald_p": 0.5, "lrt_p_mixture": 0.5, "converged": True})


def test_rules_by_hand():
    assert calls.de_calls(MIRNA["qvalue"], MIRNA["converged"]).tolist() == [True, True, False, False, False, False]
    assert calls.usage_calls(SLOPE["log_bayes_factor"], SLOPE["converged"]).tolist() == [
        True, False, False, True, False, False]
    # BH of 2 lfsr by hand: p = (0.001, 0.008, 0.002, 0.8, 0.4), NaN not counted (n = 5):
    # sorted 0.001, 0.002, 0.008, 0.4, 0.8 -> x 5/rank = 0.005, 0.005, 0.04/3, 0.5, 0.8 (monotone)
    np.testing.assert_allclose(calls.bayes_qvalues(MIRNA["lfsr"]),
                               [0.005, 0.04 / 3, 0.005, 0.8, 0.5, np.nan], rtol=1e-12)


def test_the_three_consumers_count_the_same():
    fit = FakeFit()
    line = summary_line(fit, {"mirna": fit.mirna_table(), "slope": fit.slope_table()}, Path("run"))
    n_de, n_usage = (int(x) for x in re.search(r"(\d+) DE .*?, (\d+) with isomiR usage", line).groups())
    table = compare(fit, frequentist()).table
    report = results_section(fit, fit.mirna_table())
    assert n_de == int(table["call_bayes"].sum()) == report["n_de"] == 2
    assert n_usage == int(table["slope_call_bayes"].fillna(False).sum()) == 2
    assert "1 flagged" not in line and "2 flagged" in line  # m3 and m6


@pytest.mark.parametrize("alpha", [0.005, 0.05])
def test_compare_takes_the_run_qvalues_as_they_are(alpha):
    """compare does not re-adjust the Bayesian side: its calls at alpha are de_calls of the run's table."""
    table = compare(FakeFit(), frequentist(), alpha=alpha).table.set_index("miRNA").loc[MIRNA["miRNA"]]
    expected = calls.de_calls(MIRNA["qvalue"], MIRNA["converged"], alpha)
    assert table["call_bayes"].tolist() == expected.tolist()
