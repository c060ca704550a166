"""The bundled example data set (a real isomiR count set; provenance in example_data/README.md)."""

from __future__ import annotations

from importlib import resources

from bayesmir.data.container import IsomirData
from bayesmir.data.readers import read_counts
from bayesmir.errors import InputError

EXAMPLES = ("somel2010_brain",)


def example_path(name: str = "somel2010_brain") -> tuple:
    """Paths of an example's ``counts_long.csv`` and ``samples.csv``."""
    if name not in EXAMPLES:
        raise InputError(f"unknown example {name!r}; available: {list(EXAMPLES)}")
    folder = resources.files("bayesmir") / "example_data" / name
    return folder / "counts_long.csv.gz", folder / "samples.csv"


def load_example(name: str = "somel2010_brain") -> IsomirData:
    """The bundled example as :class:`IsomirData` (unfiltered).

    ``somel2010_brain``: human prefrontal cortex, newborn (``nb``, 3) vs elderly
    (``o``, 3), Somel et al. 2010 (GEO GSE18069), seqbuster/miraligner isomiR counts,
    a subset of miRNAs of ``../shared/data/somel2010_brain``. Library totals ``T_i``
    are those of the whole data set (column ``library_size`` of samples.csv, used by
    :func:`read_counts`' rule), since the subset does not contain them.
    """
    counts, samples = example_path(name)
    return read_counts(counts, samples=samples)
