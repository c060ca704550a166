"""Frequentist fits: maximum likelihood (lme4 equivalent), LRT, aggregated methods, comparison."""

from __future__ import annotations

from bayesmir.frequentist.aggregated import fit_aggregated
from bayesmir.frequentist.comparison import ComparisonResult, compare
from bayesmir.frequentist.lrt import lrt
from bayesmir.frequentist.mle import fit_frequentist
from bayesmir.frequentist.r_import import import_r_results

__all__ = ["ComparisonResult", "compare", "fit_aggregated", "fit_frequentist", "import_r_results", "lrt"]
