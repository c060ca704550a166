"""Reading a CSV/TSV as text, with every decoding and parsing failure as one InputError.

Shared by the readers of :mod:`bayesmir.data.readers` and :mod:`bayesmir.data.tool_formats`.
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from pathlib import Path

import pandas as pd

from bayesmir.errors import InputError


def separator(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".tab", ".txt")) else ","


def read_text(path: Path, nrows: int | None = None, dtype=str, na_values=("",),
              sep: str | None = None) -> pd.DataFrame:
    """A CSV/TSV read as text (typed later), with decoding and parsing errors as InputError.

    ``sep``: the field separator; default from the suffix (:func:`separator`).
    """
    sep = separator(path) if sep is None else sep
    kind = "TSV" if sep == "\t" else "CSV"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # e.g. more fields than the header
            return pd.read_csv(
                path, sep=sep, dtype=dtype, keep_default_na=False, na_values=na_values, nrows=nrows,
                encoding="utf-8", index_col=False,
            )
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (undecodable byte at line {first_bad_line(path)}); "
                         "save the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file (no header)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as error:
        raise InputError(f"{path}: cannot parse as {kind}: {error}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{path}: cannot read ({type(error).__name__}: {error})") from None


def first_bad_line(path: Path) -> int:
    """Line number of the first byte that is not UTF-8."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return raw[: error.start].count(b"\n") + 1
    return 0
