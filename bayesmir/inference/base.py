"""The one interface every inference method implements (PyDESeq2-style ``Inference``).

A method fits the model of :mod:`bayesmir.model` to one :class:`MirnaProblem` at a
time and returns an ArviZ ``InferenceData`` plus one diagnostics row. The driver
(:mod:`bayesmir.driver`), the run folders (:mod:`bayesmir.run_folder`) and the tables
(:mod:`bayesmir.results`) never care which method ran.

Conventions a method follows
----------------------------
- ``posterior``: the variables of docs/architecture.md (``beta``, ``sd_isomir``,
  ``corr_isomir`` when q >= 2, ``sd_sample``, ``theta`` (NB size) for NB, ``isomir_effect``,
  ``sample_effect``) with dims ``chain``, ``draw`` first (a method without chains
  uses one chain of independent draws).
- ``observed_data``: ``count`` (sample, isomir). ``constant_data``: ``offset``
  (sample), ``X`` (sample, coef), ``Z`` (sample, re_term) — enough to recompute the
  likelihood from the posterior alone.
- ``log_likelihood`` (optional): ``count`` (chain, draw, sample, isomir), pointwise.
- ``posterior.attrs["log_marginal_likelihood"]`` (optional, float, natural log):
  the method's estimate of ``log p(counts | model)`` with every parameter integrated
  over its prior (e.g. the nested Laplace method). :mod:`bayesmir.results` turns the
  full and reduced values into ``log_bayes_factor``. Leave it out when the method
  has no such estimate.
- ``posterior.attrs``: ``method``, ``family``, ``mirna``.
- The diagnostics row has exactly :data:`DIAGNOSTIC_COLUMNS`; NaN where a column
  does not apply to the method.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import arviz as az
import numpy as np
import xarray as xr

from bayesmir.priors import Priors
from bayesmir.problem import MirnaProblem, bucket_size

DIAGNOSTIC_COLUMNS = (
    "miRNA", "method", "converged", "message", "seconds", "rhat", "ess_bulk", "ess_tail",
    "divergences", "bfmi", "ess_importance", "pareto_k", "optimizer_status",
)


def diagnostics_row(mirna: str, method: str, **values) -> dict:
    """A diagnostics row with every column, NaN (or empty message) where not given."""
    row = {name: math.nan for name in DIAGNOSTIC_COLUMNS}
    row.update(miRNA=mirna, method=method, converged=False, message="")
    unknown = set(values) - set(DIAGNOSTIC_COLUMNS)
    if unknown:
        raise KeyError(f"unknown diagnostics columns {sorted(unknown)}")
    row.update(values)
    return row


class Inference(ABC):
    """Fit the isomiR mixed model of one miRNA.

    Parameters
    ----------
    family : {"nb", "poisson"}
        Count distribution.
    priors : Priors, optional
        Prior scales; default ``Priors()``.
    **options
        Method-specific options (draws, chains, ...), stored in :attr:`options`.

    Attributes
    ----------
    name : str
        Method name as registered in :data:`bayesmir.inference.METHODS`.
    experimental : bool
        ``True`` for methods known to be poorly calibrated on this model.
    process_parallel : bool
        Whether the driver may run this method in several worker processes
        (``False`` when the method already uses every core, as nutpie does).
    bucket_base : int
        The isomiR axis is padded to powers of this (:func:`~bayesmir.problem.bucket_size`).
    fits_reduced_by_default : bool
        Whether :func:`bayesmir.fit` also fits the reduced (no-slope) model unless told.
    needs_x64 : bool
        The method computes in 64-bit JAX: its ``__init__``, ``prepare`` and ``fit_one`` run
        under ``jax.enable_x64(True)``, leaving the rest of the process in JAX's default.
    """

    name: str = "base"
    experimental: bool = False
    process_parallel: bool = False
    bucket_base: int = 2
    fits_reduced_by_default: bool = False
    needs_x64: bool = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.needs_x64:
            from bayesmir.marginal import in_x64

            for name in ("__init__", "prepare", "fit_one"):
                if name in vars(cls):
                    setattr(cls, name, in_x64(vars(cls)[name]))

    def __init__(self, family: str = "nb", priors: Priors | None = None, **options) -> None:
        self.family = family
        self.priors = priors or Priors()
        self.options = dict(options)

    def shape_key(self, problem: MirnaProblem) -> tuple:
        """What compiled programs are specific to: (samples, isomiR bucket, p, q, family)."""
        n, J = problem.counts.shape
        return (n, bucket_size(J, self.bucket_base), problem.X.shape[1], problem.Z.shape[1], self.family)

    def prepare(self, problems: Sequence[MirnaProblem]) -> None:
        """Compile whatever can be shared by ``problems`` before fitting them.

        Parameters
        ----------
        problems : sequence of MirnaProblem
            The problems about to be fitted (only their shapes matter).
        """

    @abstractmethod
    def fit_one(self, problem: MirnaProblem, seed: int) -> tuple[az.InferenceData, dict]:
        """Fit one miRNA.

        Parameters
        ----------
        problem : MirnaProblem
            Counts and designs of the miRNA; ``problem.Z`` with one column is the
            reduced model.
        seed : int
            Seed of every random step; the same seed gives the same numbers.

        Returns
        -------
        idata : arviz.InferenceData
            Posterior (and other groups) following the module conventions.
        diagnostics : dict
            One row with :data:`DIAGNOSTIC_COLUMNS`.
        """

    def fit_timed(self, problem: MirnaProblem, seed: int) -> tuple[az.InferenceData, dict]:
        """:meth:`fit_one` with ``seconds`` filled in (wall time)."""
        start = time.perf_counter()
        idata, row = self.fit_one(problem, seed)
        row["seconds"] = time.perf_counter() - start
        return idata, row


def data_groups(problem: MirnaProblem) -> dict[str, xr.Dataset]:
    """``observed_data`` and ``constant_data`` groups of one problem."""
    coords = {
        "sample": list(problem.samples), "isomir": list(problem.sequences),
        "coef": list(problem.coef_names), "re_term": list(problem.re_names),
    }
    observed = xr.Dataset(
        {"count": (("sample", "isomir"), np.asarray(problem.counts, dtype=np.int64))},
        coords={k: coords[k] for k in ("sample", "isomir")},
    )
    constant = xr.Dataset(
        {
            "offset": (("sample",), np.asarray(problem.offset, dtype=float)),
            "X": (("sample", "coef"), np.asarray(problem.X, dtype=float)),
            "Z": (("sample", "re_term"), np.asarray(problem.Z, dtype=float)),
        },
        coords={k: coords[k] for k in ("sample", "coef", "re_term")},
    )
    return {"observed_data": observed, "constant_data": constant}


def hyperparameter_names(posterior: xr.Dataset) -> list[str]:
    """Variables whose convergence decides ``converged``: fixed effects and SDs."""
    names = ["beta", "sd_isomir", "sd_sample", "theta"]
    return [n for n in names if n in posterior.data_vars]
