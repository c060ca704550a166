"""Data layer: the :class:`IsomirData` container, readers, validation, filters, bundled example."""

from bayesmir.data.container import IsomirData
from bayesmir.data.example import load_example
from bayesmir.data.readers import read_counts, read_samples

__all__ = ["IsomirData", "load_example", "read_counts", "read_samples"]
