"""Design matrices from a formula over sample metadata (via formulaic), with design checks.

The fixed effects ``x_i`` of the model come from a one-sided formula such as
``"~ group + lab"``; the isomiR-specific random effects ``z_i`` are an intercept
plus the columns of the term holding the coefficient of interest (the random
slope). Problems with the design are reported as :class:`bayesmir.InputError`
at fitting time, not at reading time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import formulaic
import numpy as np
import pandas as pd

from bayesmir.data.validation import is_missing
from bayesmir.errors import InputError, describe_rows


@dataclass(frozen=True)
class Design:
    """Fixed- and random-effect design of one fit, shared by every miRNA.

    Attributes
    ----------
    formula : str
        The formula as given, e.g. ``"~ group + lab"``.
    X : numpy.ndarray, shape (n_samples, n_coefs)
        Fixed-effects design matrix, intercept first.
    coef_names : list of str
        Column names of ``X`` (formulaic's naming, e.g. ``"group[T.o]"``).
    coef : str
        The coefficient of interest (the log fold change reported first).
    slope_names : list of str
        Columns of ``X`` with isomiR-specific random slopes (the columns of the
        term that holds ``coef``); empty for the reduced model.
    samples : list of str
        Sample names, in the row order of ``X``.
    """

    formula: str
    X: np.ndarray
    coef_names: list[str]
    coef: str
    slope_names: list[str]
    samples: list[str] = field(default_factory=list)

    @property
    def re_names(self) -> list[str]:
        """Names of the per-isomiR random effects: ``["Intercept", *slope_names]``."""
        return ["Intercept", *self.slope_names]

    @property
    def Z(self) -> np.ndarray:
        """Per-isomiR random-effect design, shape (n_samples, 1 + n_slopes)."""
        columns = [self.coef_names.index(name) for name in self.re_names]
        return self.X[:, columns]

    @property
    def coef_index(self) -> int:
        """Column of ``X`` holding the coefficient of interest."""
        return self.coef_names.index(self.coef)


def build_design(
    samples: pd.DataFrame,
    formula: str = "~ group",
    coef: str | None = None,
    reference: dict[str, str] | None = None,
    random_slope: bool = True,
    source: str | None = None,
) -> Design:
    """Build and check the design of a fit.

    Parameters
    ----------
    samples : pandas.DataFrame
        Sample metadata indexed by sample name.
    formula : str
        One-sided formula over columns of ``samples``; ``"group"`` and
        ``"~ group"`` are the same. Random-effect terms are not allowed: the
        isomiR and sample effects are part of the model.
    coef : str, optional
        Coefficient of interest, as a column name of the design (``"group[T.o]"``)
        or a variable name (``"group"``: its first column). Default: the first
        column after the intercept.
    reference : dict, optional
        Reference level per categorical variable, e.g. ``{"group": "nb"}``.
        Default: the first level in sorted order (as R's ``factor``).
    random_slope : bool
        Whether isomiRs get random slopes on the term of interest.
    source : str, optional
        Where ``samples`` came from, for error messages; default the file recorded by
        :func:`~bayesmir.data.read_samples` in ``samples.attrs``, else "sample metadata".

    Returns
    -------
    Design

    Raises
    ------
    InputError
        Malformed formula, unknown column, missing values (NaN or a marker such as
        ``NA``, empty, ``null``: file, column and rows named), a design variable
        with one level only, a level with a single sample, a reference level
        that does not exist, or a rank-deficient design.
    """
    formula = _normalise_formula(formula)
    source = source or samples.attrs.get("source", "sample metadata")
    frame = _categorical_frame(samples, _formula_variables(formula, samples, source), reference, source)
    try:
        matrix = formulaic.model_matrix(formula, frame, na_action="raise")
    except Exception as error:  # noqa: BLE001 - formulaic raises many types; report one
        raise InputError(f"{source}: cannot build the design from formula {formula!r}: {error}") from None
    X = np.asarray(matrix, dtype=float)
    names = list(matrix.columns)
    if "Intercept" not in names:
        raise InputError(f"formula {formula!r}: the model needs an intercept (do not use '- 1' or '+ 0')")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise InputError(f"{source}: the design of {formula!r} is rank-deficient (confounded columns {names})")
    coef_name = _choose_coef(coef, names, formula)
    slopes = _term_columns(matrix, coef_name) if random_slope else []
    return Design(formula, X, names, coef_name, slopes, [str(s) for s in samples.index])


def reference_levels(
    samples: pd.DataFrame, formula: str = "~ group", reference: dict[str, str] | None = None,
    source: str | None = None,
) -> dict[str, list[str]]:
    """Levels of each categorical variable of ``formula`` in design order: the reference first.

    Parameters
    ----------
    samples, formula, reference, source
        As in :func:`build_design`.

    Returns
    -------
    dict
        Variable name -> levels; numeric variables are left out.
    """
    formula = _normalise_formula(formula)
    source = source or samples.attrs.get("source", "sample metadata")
    frame = _categorical_frame(samples, _formula_variables(formula, samples, source), reference, source)
    return {name: [str(level) for level in frame[name].cat.categories]
            for name in frame.columns if isinstance(frame[name].dtype, pd.CategoricalDtype)}


def _normalise_formula(formula: str) -> str:
    text = str(formula).strip()
    if "~" in text:
        lhs, _, text = text.partition("~")
        if lhs.strip():
            raise InputError(f"formula {formula!r}: give the right-hand side only, e.g. '~ group'")
    if not text.strip():
        raise InputError(f"formula {formula!r} is empty; use e.g. '~ group'")
    if "|" in text:
        raise InputError(
            f"formula {formula!r}: random-effect terms are built in (isomiR and sample effects); "
            "give fixed effects only, e.g. '~ group + lab'"
        )
    return "~ " + text.strip()


def _formula_variables(formula: str, samples: pd.DataFrame, source: str) -> list[str]:
    try:
        variables = formulaic.Formula(formula).required_variables
    except Exception as error:  # noqa: BLE001 - formulaic raises many types
        raise InputError(f"formula {formula!r} cannot be parsed: {error}") from None
    names = sorted(str(v) for v in variables)
    unknown = [v for v in names if v not in samples.columns]
    if unknown:
        raise InputError(
            f"{source}: formula {formula!r} uses column(s) {unknown} that are not in the sample "
            f"metadata; available columns: {list(samples.columns)}"
        )
    return names


def _categorical_frame(
    samples: pd.DataFrame, variables: list[str], reference: dict[str, str] | None, source: str
) -> pd.DataFrame:
    """Copy the used columns, make text columns categorical with the reference level first."""
    reference = dict(reference or {})
    unknown = sorted(set(reference) - set(variables))
    if unknown:
        raise InputError(f"reference levels given for {unknown}, which the formula does not use")
    frame = samples[variables].copy()
    for name in variables:
        column = frame[name]
        _check_no_missing(column, samples.attrs.get("lines", {}), source)
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            if name in reference:
                raise InputError(f"column {name!r} is numeric; a reference level applies to categories")
            continue
        frame[name] = _ordered_factor(column.astype(str), reference.get(name), name, source)
    return frame


def _check_no_missing(column: pd.Series, lines: dict, source: str) -> None:
    """Raise naming file, column, rows (file lines when known) and samples of missing values."""
    missing = is_missing(column)
    if not missing.any():
        return
    names = [str(s) for s in column.index[missing]]
    rows = [lines[s] for s in names if s in lines]
    where = f"rows {describe_rows(rows)} (samples {describe_rows(names)})" if rows else (
        f"samples {describe_rows(names)}")
    values = sorted({repr(v) if isinstance(v, str) else "NaN" for v in column[missing]})
    raise InputError(
        f"{source}, column {column.name!r}, {where}: missing value ({', '.join(values)}); the formula or "
        "reference uses this column, so give every sample a value or drop those samples"
    )


def _ordered_factor(column: pd.Series, reference: str | None, name: str, source: str) -> pd.Categorical:
    counts = column.value_counts()
    levels = sorted(counts.index)
    if len(levels) < 2:
        raise InputError(
            f"{source}, column {name!r}: design variable has one level only ({levels[0]!r} for all "
            f"{len(column)} samples); a contrast needs two or more"
        )
    single = sorted(counts.index[counts < 2])
    if single:
        raise InputError(
            f"{source}, column {name!r}: level(s) {single} have a single sample; every level needs "
            "at least two samples to separate its effect from the sample effect"
        )
    if reference is not None:
        if str(reference) not in levels:
            raise InputError(f"{source}, column {name!r}: reference level {reference!r} not in {levels}")
        levels = [str(reference)] + [lv for lv in levels if lv != str(reference)]
    return pd.Categorical(column, categories=levels)


def _choose_coef(coef: str | None, names: list[str], formula: str) -> str:
    candidates = [n for n in names if n != "Intercept"]
    if not candidates:
        raise InputError(f"formula {formula!r} has no coefficient besides the intercept")
    if coef is None:
        return candidates[0]
    if coef in candidates:
        return coef
    by_variable = [n for n in candidates if n.startswith(f"{coef}[")]
    if by_variable:
        return by_variable[0]
    raise InputError(f"coefficient {coef!r} is not in the design of {formula!r}; choose one of {candidates}")


def _term_columns(matrix, coef_name: str) -> list[str]:
    names = list(matrix.columns)
    for columns in matrix.model_spec.term_slices.values():
        term_names = names[columns]
        if coef_name in term_names:
            return list(term_names)
    return [coef_name]
