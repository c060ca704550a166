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


def isomir_data(problems, groups=None, totals=None):
    """A real IsomirData holding the problems' counts, with ``groups`` (default ``a``/``b`` from the
    second column of X) and library ``totals`` (default from the offsets, ``exp(offset) * 1e4``)."""
    import pandas as pd

    from bayesmir.data import IsomirData

    first = problems[0]
    long = pd.concat([pd.DataFrame({"miRNA": p.mirna, "sequence": np.repeat(p.sequences, p.n_samples),
                                    "sample": np.tile(p.samples, p.n_isomirs), "count": p.counts.T.ravel()})
                      for p in problems])
    if groups is None:
        groups = pd.Series(np.where(first.X[:, 1] > 0, "b", "a"), index=first.samples)
    samples = pd.DataFrame({"group": pd.Series(groups).reindex(first.samples).to_numpy()},
                           index=pd.Index(first.samples, name="sample"))
    if totals is None:
        totals = pd.Series(np.exp(first.offset) * 1e4, index=first.samples)
    return IsomirData.from_long(long, samples, library_size=totals)
