"""Full-rank ADVI (experimental): runs, follows the contract, says it is experimental."""

from __future__ import annotations

import numpy as np
import pytest
from mirna_sim import TRUTH, simulate_problem

from bayesmir.driver import fit_problems
from bayesmir.inference import get_method


def test_advi_contract_and_rough_location():
    """Contract names/dims; beta[group] mean within 0.3 of the truth 0.7 (NUTS posterior sd on this
    simulation is ~0.21, so ~1.5 sd: a location check only, ADVI's width is not trusted)."""
    problem = simulate_problem(12, 8, seed=1)
    idata, row = get_method("advi", iterations=20_000, draws=500).fit_one(problem, seed=3)
    post = idata.posterior
    assert set(post.data_vars) == {"beta", "sd_isomir", "corr_isomir", "sd_sample", "theta",
                                   "isomir_effect", "sample_effect"}
    assert post["isomir_effect"].dims == ("chain", "draw", "isomir", "re_term")
    assert post["isomir"].values.tolist() == problem.sequences
    assert abs(float(post["beta"].sel(coef="group[T.b]").mean()) - TRUTH["beta"][1]) < 0.3
    assert "experimental" in row["message"] and np.isfinite(row["pareto_k"])


def test_experimental_method_warns_through_driver():
    with pytest.warns(UserWarning, match="experimental"):
        fit_problems([simulate_problem(12, 3, seed=2)], method="advi", progress=False,
                     iterations=200, draws=50)
