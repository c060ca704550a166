"""The HTML diagnostic report of a run: :func:`report` (exported as ``bayesmir.report``)."""

from bayesmir.reporting.html import report

__all__ = ["report"]
