"""bayesmir: Bayesian, isomiR-aware differential expression of microRNAs.

The public surface is small; everything else is internal.
"""

from __future__ import annotations

import importlib

from bayesmir.errors import InputError

__version__ = "0.1.0"

_PUBLIC = {
    "read_counts": "bayesmir.data",
    "read_samples": "bayesmir.data",
    "load_example": "bayesmir.data",
    "IsomirData": "bayesmir.data",
    "Priors": "bayesmir.priors",
    "fit": "bayesmir.driver",
    "FitResult": "bayesmir.results",
    "load_fit": "bayesmir.results",
    "fit_frequentist": "bayesmir.frequentist",
    "compare": "bayesmir.frequentist",
    "report": "bayesmir.reporting",
    "simulate": "bayesmir.simulation",
    "classify_isomir": "bayesmir.isomir_types",
    "read_reference": "bayesmir.isomir_types",
    "isomir_types": "bayesmir.isomir_types",
    "effects_by_type": "bayesmir.isomir_types",
    "to_bambi": "bayesmir.interop",
    "fit_to_anndata": "bayesmir.interop",
}

_SUBPACKAGES = ("frequentist", "data", "inference", "reporting")

__all__ = [  # noqa: RUF022 - grouped by flow, not sorted
    "InputError", "__version__", "read_counts", "read_samples", "load_example", "IsomirData", "Priors",
    "fit", "FitResult", "load_fit", "fit_frequentist", "compare", "report", "simulate",
    "classify_isomir", "read_reference", "isomir_types", "effects_by_type", "to_bambi", "fit_to_anndata",
]


def __getattr__(name: str):
    """Import public names on first use, so ``import bayesmir`` stays fast."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"bayesmir.{name}")
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'bayesmir' has no attribute {name!r}")
