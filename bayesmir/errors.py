"""The one exception users see for bad input."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input data or options, with a message naming the file, column and rows.

    Raised by readers, validation, filters and design checks. Subclasses
    ``ValueError`` so generic handlers still catch it.
    """


def describe_rows(rows, limit: int = 5) -> str:
    """Format the first few offending row labels for an error message.

    Parameters
    ----------
    rows : iterable
        Row numbers (1-based file lines or index labels) or sample names.
    limit : int
        How many to show before summarising the rest.

    Returns
    -------
    str
        For example ``"rows 3, 7, 9 and 12 more"``.
    """
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{shown}{more}"
