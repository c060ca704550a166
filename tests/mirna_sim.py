"""A tiny fixed-seed simulation of one miRNA's isomiR counts with known truth (tests only)."""

from __future__ import annotations

import numpy as np

from bayesmir.problem import MirnaProblem

TRUTH = {
    "beta": np.array([-1.0, 0.7]),
    "sd_isomir": np.array([1.2, 0.3]),
    "corr": 0.3,
    "sd_sample": 0.2,
    "dispersion": 10.0,
}


def simulate_problem(
    n_samples: int = 12, n_isomirs: int = 8, seed: int = 1, name: str = "mir-sim", truth: dict | None = None
) -> MirnaProblem:
    """One miRNA from the model, two groups of equal size, library sizes ~1e6."""
    truth = {**TRUTH, **(truth or {})}
    rng = np.random.default_rng(seed)
    group = np.repeat([0.0, 1.0], [n_samples // 2, n_samples - n_samples // 2])
    X = np.column_stack([np.ones(n_samples), group])
    offset = np.log(rng.uniform(0.5e6, 2e6, n_samples) / 1e4)
    sd = truth["sd_isomir"]
    cov = np.diag(sd) @ np.array([[1.0, truth["corr"]], [truth["corr"], 1.0]]) @ np.diag(sd)
    b = rng.multivariate_normal(np.zeros(2), cov, size=n_isomirs)
    tau = rng.normal(0.0, truth["sd_sample"], n_samples)
    log_mu = (offset + X @ truth["beta"] + tau)[:, None] + X @ b.T
    theta = truth["dispersion"]
    counts = rng.poisson(rng.gamma(theta, np.exp(log_mu) / theta)).astype(np.int64)
    return MirnaProblem(
        mirna=name,
        counts=counts,
        sequences=[f"SEQ{j:02d}" for j in range(n_isomirs)],
        samples=[f"s{i:02d}" for i in range(n_samples)],
        offset=offset,
        X=X,
        Z=X.copy(),
        coef_names=["Intercept", "group[T.b]"],
        re_names=["Intercept", "group[T.b]"],
    )
