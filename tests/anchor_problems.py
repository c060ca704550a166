"""MirnaProblems of the lme4 reference data sets in ``tests/data``, built with pandas only (no IsomirData).

``sim_problems`` reads ``sim_monocyte_scale/`` (T_i = total over the distinct sequences of the
sample, as fit_glmm.R does; zeros filled) and ``se_example_problems`` reads
``mirglmm_se_example/filtered_fitdata.csv`` (``total_counts`` per row, the rows glmer.nb fitted).
The design is ``~ group`` with R's reference level (first in sorted order). ``data_dir`` is the
``test_data_dir`` fixture.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmir.design import build_design
from bayesmir.problem import MirnaProblem


def _problems(long: pd.DataFrame, samples: pd.DataFrame, totals: pd.Series) -> dict[str, MirnaProblem]:
    """One problem per miRNA from a long (miRNA, sequence, sample, count) table."""
    design = build_design(samples, "~ group")
    offset = np.log(totals.loc[samples.index].to_numpy(dtype=float) / 1e4)
    problems = {}
    for mirna, rows in long.groupby("miRNA", sort=True):
        wide = rows.pivot_table(index="sample", columns="sequence", values="count", aggfunc="sum")
        wide = wide.reindex(index=samples.index).fillna(0).astype(np.int64)
        problems[mirna] = MirnaProblem(
            mirna=str(mirna), counts=wide.to_numpy(), sequences=[str(s) for s in wide.columns],
            samples=list(samples.index), offset=offset, X=design.X, Z=design.Z,
            coef_names=design.coef_names, re_names=design.re_names,
        )
    return problems


@lru_cache(maxsize=2)
def sim_problems(data_dir: Path) -> dict[str, MirnaProblem]:
    """The 120 miRNAs of ``sim_monocyte_scale`` (39 samples, ctrl vs case)."""
    folder = Path(data_dir) / "sim_monocyte_scale"
    long = pd.read_csv(folder / "counts_long.csv.gz")
    samples = pd.read_csv(folder / "samples.csv").set_index("sample")
    unique = long.drop_duplicates(["sequence", "sample"])
    totals = unique.groupby("sample")["count"].sum()
    return _problems(long, samples, totals)


@lru_cache(maxsize=2)
def se_example_problems(data_dir: Path) -> dict[str, MirnaProblem]:
    """The 3 filtered miRNAs of ``mirglmm_se_example`` (6 samples, B vs A)."""
    folder = Path(data_dir) / "mirglmm_se_example"
    long = pd.read_csv(folder / "filtered_fitdata.csv")
    samples = pd.read_csv(folder / "se_example_samples.csv").set_index("sample")[["group"]]
    totals = long.drop_duplicates("sample").set_index("sample")["total_counts"]
    return _problems(long, samples, totals)


def reference(data_dir: Path, name: str) -> pd.DataFrame:
    """An lme4 reference table indexed by miRNA, e.g. ``"sim_monocyte_scale/lme4_glmer_nb.csv"``."""
    return pd.read_csv(Path(data_dir) / name).set_index("miRNA")
