"""What a run records to be reproduced and checked: its options and the package versions."""

from __future__ import annotations

import platform
from importlib import metadata

from bayesmir.design import Design
from bayesmir.inference import Inference
from bayesmir.priors import Priors

PACKAGES = ("bayesmir", "pymc", "pytensor", "nutpie", "arviz", "numpy", "jax")


def run_options(inference: Inference, family: str, priors: Priors, seed: int, reduced: bool,
                design: Design | None) -> dict:
    """What is needed to reproduce the run: method, options, priors and package versions."""
    return {
        "method": inference.name,
        "family": family,
        "seed": int(seed),
        "reduced": bool(reduced),
        "formula": design.formula if design else None,
        "coef": design.coef if design else None,
        "random_slope": bool(design.slope_names) if design else None,
        "priors": priors.to_dict(),
        "method_options": {k: v for k, v in inference.options.items() if _is_plain(v)},
        "experimental": inference.experimental,
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    """Python's and the installed packages' versions (those installed)."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _is_plain(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def fitted_data_sha256(result) -> str | None:
    """SHA-256 of the data a run fitted (:func:`bayesmir.run_folder.data_sha256` of the full-model
    problems stored with its posteriors, in run order); None when the run stores no data."""
    from bayesmir.problem import problem_from_idata
    from bayesmir.run_folder import data_sha256

    fitted = [m for m in result.mirnas if m in result.posteriors]  # fits read one at a time
    if not fitted or not all({"observed_data", "constant_data"} <= set(result.posteriors[m].groups())
                             for m in fitted):
        return None
    return data_sha256(problem_from_idata(result.posteriors[m]) for m in fitted)
