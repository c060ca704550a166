"""Inference methods behind one interface; see :mod:`bayesmir.inference.base`.

Methods are registered by name in :data:`METHODS` as ``"module:Class"`` and imported on
first use, so a missing optional module (e.g. ``laplace`` while it is being written)
only fails when that method is asked for.
"""

from __future__ import annotations

import importlib

from bayesmir.errors import InputError
from bayesmir.inference.base import DIAGNOSTIC_COLUMNS, Inference, diagnostics_row

METHODS: dict[str, str] = {
    "laplace": "bayesmir.inference.laplace:LaplaceInference",
    "nuts": "bayesmir.inference.nuts:NutsInference",
    "advi": "bayesmir.inference.advi:AdviInference",
}

__all__ = ["DIAGNOSTIC_COLUMNS", "METHODS", "Inference", "diagnostics_row", "get_method"]


def method_class(name: str) -> type[Inference]:
    """The :class:`Inference` subclass registered as ``name``.

    Raises
    ------
    InputError
        Unknown method, or its module cannot be imported.
    """
    if name not in METHODS:
        raise InputError(f"method must be one of {sorted(METHODS)}, not {name!r}")
    module_name, _, class_name = METHODS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(f"method {name!r} is not available: {error}") from None
    return getattr(module, class_name)


def get_method(name: str, family: str = "nb", priors=None, **options) -> Inference:
    """An instance of the inference method ``name`` with its options.

    Parameters
    ----------
    name : str
        One of :data:`METHODS`.
    family : {"nb", "poisson"}
    priors : Priors, optional
    **options
        Passed to the method's constructor (e.g. ``draws``, ``chains`` for NUTS).

    Returns
    -------
    Inference
    """
    return method_class(name)(family=family, priors=priors, **options)
