"""IsomirData: isomiR-level counts, sample metadata and library totals in one object.

An isomiR is keyed by (miRNA, sequence): a sequence annotated to several miRNAs
(multi-mapping) is one isomiR of each of them, with the same counts. Sequences are
normalised before they are keyed: surrounding blanks removed, upper case, ``U`` -> ``T``
(the DNA alphabet of the aligners' and mirtop's read sequences and of the bundled
example; miRBase's RNA spelling of the same read becomes the same isomiR). Lower case
marks only annotation (e.g. non-templated additions) in some tools, so ``ACGTa`` and
``ACGTA`` are the same read. Spellings that meet this way are summed and listed in
:attr:`IsomirData.sequence_collisions`, with a warning.

Library totals ``T_i`` (the model's offset) are, by one rule for every entry point: the
``library_size`` given, else the ``library_size`` column of the sample metadata, else
every distinct sequence of a sample counted once, over all miRNAs, before any filtering.
They are kept unchanged by :meth:`IsomirData.subset` and :meth:`IsomirData.filter`, and
their origin is :attr:`IsomirData.library_size_source`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from bayesmir.data import validation
from bayesmir.data.sequences import merge_spellings, multimapped_sequences
from bayesmir.errors import InputError, describe_rows

MULTIMAPPING = ("keep", "drop", "raise")
LIBRARY_SIZE_COLUMN = "library_size"
"""Column of the sample metadata used as ``T_i`` unless ``library_size`` says otherwise."""


@dataclass(frozen=True, eq=False)
class IsomirData:
    """IsomiR counts of a set of samples.

    Attributes
    ----------
    counts : xarray.DataArray
        int64, dims ``("sample", "isomir")``; coords ``sample``, ``isomir``
        (``"miRNA|sequence"``) and per-isomiR ``miRNA`` and ``sequence``. IsomiRs are
        sorted by (miRNA, sequence).
    samples : pandas.DataFrame
        Sample metadata indexed by sample, in the order of ``counts.sample``.
    library_size : pandas.Series
        ``T_i`` per sample (float), see the module docstring.
    source : str
        Where the counts came from (for messages and reports).
    filter_report : pandas.DataFrame or None
        What each filter step kept and removed (set by :meth:`filter`).
    multimapped : pandas.DataFrame
        Sequences annotated to more than one miRNA: ``sequence``, ``n_mirnas``,
        ``mirnas``, and ``action`` (``"kept"`` or ``"dropped"``).
    library_size_source : str
        Where ``library_size`` came from (a metadata column, a file, given values, or
        the counts).
    sequence_collisions : pandas.DataFrame
        IsomiRs written in more than one way (case, ``U``/``T``) and summed:
        ``miRNA, sequence`` (normalised), ``spellings`` (as written, comma-separated),
        ``n_spellings``, ``reads`` (summed over samples).
    """

    counts: xr.DataArray
    samples: pd.DataFrame
    library_size: pd.Series
    source: str = "<memory>"
    filter_report: pd.DataFrame | None = None
    multimapped: pd.DataFrame | None = None
    library_size_source: str = "counts"
    sequence_collisions: pd.DataFrame | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_long(
        cls,
        counts: pd.DataFrame,
        samples: pd.DataFrame | None = None,
        library_size=None,
        source: str = "<DataFrame>",
        samples_source: str = "<samples DataFrame>",
        multimapping: str = "keep",
        line_offset: int | None = None,
    ) -> IsomirData:
        """Build from a long table (miRNA, sequence, sample, count), zero rows optional.

        Parameters
        ----------
        counts : pandas.DataFrame
            One row per non-zero (miRNA, sequence, sample) count.
        samples : pandas.DataFrame, optional
            Sample metadata indexed by sample (or with a ``sample`` column). Default:
            no metadata (a design formula then has nothing to use).
        library_size : None, str, mapping or pandas.Series
            ``None``: the ``library_size`` column of ``samples`` if any, else total counts
            per sample over all distinct sequences; ``"counts"``: the latter always;
            another str: that column of ``samples``; else one value per sample. The
            ``library_size`` column is moved out of :attr:`samples` in every case.
        source, samples_source : str
            Names used in error messages.
        multimapping : {"keep", "drop", "raise"}
            Sequences annotated to several miRNAs: keep them under each miRNA
            (default, as miRglmm), drop them, or raise.
        line_offset : int, optional
            File line of the table's first row, so messages give file lines.

        Returns
        -------
        IsomirData

        Raises
        ------
        InputError
            Any problem of :func:`~bayesmir.data.validation.validate_long`, samples
            without metadata or metadata without counts, all-zero samples, bad
            library sizes, multi-mapped sequences with ``multimapping="raise"``.
        """
        if multimapping not in MULTIMAPPING:
            raise InputError(f"multimapping must be one of {MULTIMAPPING}, not {multimapping!r}")
        long = validation.validate_long(counts, source, line_offset)
        long, collisions = merge_spellings(long, source)
        samples = _sample_table(samples, long, source, samples_source)
        totals = _distinct_sequence_totals(long, samples.index)
        validation.check_no_zero_samples(totals, source)
        library_size, size_source = _library_size(library_size, samples, totals, source, samples_source)
        samples = _without_library_size_column(samples)
        multimapped = multimapped_sequences(long)
        if len(multimapped) and multimapping == "raise":
            raise InputError(
                f"{source}, column 'sequence': {len(multimapped)} sequences are annotated to several miRNAs, "
                f"e.g. {describe_rows(multimapped['sequence'])}; use multimapping='keep' or 'drop'"
            )
        if len(multimapped) and multimapping == "drop":
            long = long[~long["sequence"].isin(set(multimapped["sequence"]))]
        multimapped = multimapped.assign(action="dropped" if multimapping == "drop" else "kept")
        return cls(_count_array(long, samples.index), samples, library_size, source, None, multimapped,
                   size_source, collisions)

    # ------------------------------------------------------------------ views
    @property
    def mirnas(self) -> list[str]:
        """miRNA names, sorted."""
        return list(self._mirna_columns)

    @property
    def n_samples(self) -> int:
        return self.counts.sizes["sample"]

    @property
    def n_isomirs(self) -> int:
        return self.counts.sizes["isomir"]

    @cached_property
    def _mirna_columns(self) -> dict[str, slice]:
        """Column range of each miRNA's isomiRs (isomiRs are sorted by miRNA)."""
        names = self.counts["miRNA"].to_numpy()
        starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]]) if len(names) else np.array([], int)
        ends = np.r_[starts[1:], len(names)]
        return {str(names[s]): slice(int(s), int(e)) for s, e in zip(starts, ends)}

    def _columns(self, mirna: str) -> slice:
        if mirna not in self._mirna_columns:
            close = [m for m in self.mirnas if mirna.lower() in m.lower()][:3]
            hint = f"; similar: {close}" if close else ""
            raise InputError(f"{self.source}: unknown miRNA {mirna!r}{hint}")
        return self._mirna_columns[mirna]

    def isomir_counts(self, mirna: str) -> xr.DataArray:
        """Counts of one miRNA's isomiRs, dims (sample, isomir)."""
        return self.counts.isel(isomir=self._columns(mirna))

    def mirna_counts(self) -> pd.DataFrame:
        """miRNA-summed counts, miRNAs x samples (int64)."""
        summed = self.counts.groupby("miRNA").sum("isomir")
        frame = summed.transpose("miRNA", "sample").to_pandas()
        frame.index.name, frame.columns.name = "miRNA", None
        return frame.astype(np.int64)

    def for_mirna(self, mirna: str) -> pd.DataFrame:
        """The long table one miRNA's model needs: every (sample, isomiR) pair, zeros included.

        Returns
        -------
        pandas.DataFrame
            Columns ``sample, sequence, count, library_size`` and the sample metadata.
        """
        block = self.isomir_counts(mirna)
        table = pd.DataFrame(
            {
                "sample": np.repeat(block["sample"].to_numpy(), block.sizes["isomir"]),
                "sequence": np.tile(block["sequence"].to_numpy(), block.sizes["sample"]),
                "count": block.to_numpy().ravel(),
            }
        )
        meta = self.samples.assign(library_size=self.library_size)
        return table.join(meta, on="sample")

    # ------------------------------------------------------------------ new objects
    def subset(self, mirnas=None, samples=None) -> IsomirData:
        """The same data restricted to some miRNAs and/or samples (library sizes unchanged)."""
        data = self
        if mirnas is not None:
            mirnas = [mirnas] if isinstance(mirnas, str) else list(mirnas)
            ranges = [np.arange(self.n_isomirs)[self._columns(m)] for m in sorted(set(mirnas))]
            columns = np.concatenate(ranges) if ranges else np.array([], dtype=int)
            data = replace(data, counts=data.counts.isel(isomir=np.sort(columns)))
        if samples is not None:
            samples = [samples] if isinstance(samples, str) else list(samples)
            unknown = [s for s in samples if s not in data.samples.index]
            if unknown:
                raise InputError(f"{self.source}: unknown samples {describe_rows(unknown)}")
            data = replace(
                data, counts=data.counts.sel(sample=samples), samples=data.samples.loc[samples],
                library_size=data.library_size.loc[samples],
            )
        return data

    def filter(
        self, min_mirna_logcpm: float = 5.0, min_isomir_logcpm: float = -1.0, min_isomirs: int = 2
    ) -> IsomirData:
        """miRglmm's filters; see :func:`bayesmir.data.filters.apply_filters`."""
        from bayesmir.data.filters import apply_filters

        return apply_filters(self, min_mirna_logcpm, min_isomir_logcpm, min_isomirs)

    # ------------------------------------------------------------------ export
    def to_dataframe(self, zeros: bool = False) -> pd.DataFrame:
        """Long table miRNA, sequence, sample, count (zero counts left out unless ``zeros``)."""
        values = self.counts.to_numpy()
        sample_idx, isomir_idx = np.nonzero(values >= (0 if zeros else 1))
        order = np.lexsort((sample_idx, isomir_idx))
        sample_idx, isomir_idx = sample_idx[order], isomir_idx[order]
        return pd.DataFrame(
            {
                "miRNA": self.counts["miRNA"].to_numpy()[isomir_idx].astype(str),
                "sequence": self.counts["sequence"].to_numpy()[isomir_idx].astype(str),
                "sample": self.counts["sample"].to_numpy()[sample_idx].astype(str),
                "count": values[sample_idx, isomir_idx].astype(np.int64),
            }
        )

    def to_wide(self) -> pd.DataFrame:
        """One row per isomiR: ``miRNA``, ``sequence``, then one count column per sample."""
        wide = pd.DataFrame(self.counts.to_numpy().T, columns=list(self.samples.index))
        wide.insert(0, "sequence", self.counts["sequence"].to_numpy().astype(str))
        wide.insert(0, "miRNA", self.counts["miRNA"].to_numpy().astype(str))
        return wide

    def to_anndata(self):
        """AnnData: ``X`` counts (samples x isomiRs), ``obs`` metadata plus ``library_size``,
        ``var`` with ``miRNA``, ``sequence`` and any per-isomiR annotation a reader kept
        (``canonical``, ``variant``, ``precursor``)."""
        import anndata

        names = ["miRNA", "sequence"] + [name for name in ("canonical", "variant", "precursor")
                                          if name in self.counts.coords]
        var = pd.DataFrame({name: self.counts[name].to_numpy().astype(str) for name in names},
                           index=self.counts["isomir"].to_numpy().astype(str))
        obs = self.samples.assign(library_size=self.library_size.to_numpy())
        obs.index = obs.index.astype(str)
        return anndata.AnnData(X=self.counts.to_numpy().astype(np.int64), obs=obs, var=var)

    def equals(self, other: IsomirData) -> bool:
        """Same counts (values and coordinates), sample metadata and library sizes."""
        return (
            self.counts.identical(other.counts)
            and self.samples.equals(other.samples)
            and self.library_size.equals(other.library_size)
        )

    def __repr__(self) -> str:
        values = self.counts.to_numpy()
        zeros = 1.0 - np.count_nonzero(values) / max(values.size, 1)
        lines = [
            f"IsomirData from {self.source}",
            f"  {self.n_samples} samples x {self.n_isomirs:,} isomiRs of {len(self.mirnas):,} miRNAs",
            f"  groups: {_group_summary(self.samples)}",
            f"  zeros: {zeros:.1%} of (sample, isomiR) counts",
            (f"  library sizes: {self.library_size.min():,.0f} to {self.library_size.max():,.0f} "
             f"(from {self.library_size_source})"),
        ]
        if self.sequence_collisions is not None and len(self.sequence_collisions):
            lines.append(f"  sequences merged by normalisation (case, U/T): {len(self.sequence_collisions):,}")
        if self.multimapped is not None and len(self.multimapped):
            action = self.multimapped["action"].iloc[0]
            lines.append(f"  multi-mapped sequences: {len(self.multimapped):,} ({action} under each miRNA)")
        if self.filter_report is not None:
            last = self.filter_report.iloc[-1]
            lines.append(f"  filtered: kept {last['mirnas']:,} miRNAs, {last['isomirs']:,} isomiRs")
        return "\n".join(lines)


# ---------------------------------------------------------------------- helpers
def _group_summary(samples: pd.DataFrame) -> str:
    if "group" not in samples.columns:
        return "none (no 'group' column in the sample metadata)"
    counts = samples["group"].value_counts(sort=False)
    return ", ".join(f"{level} ({n})" for level, n in counts.items())


def _sample_table(samples, long: pd.DataFrame, source: str, samples_source: str) -> pd.DataFrame:
    """Validated metadata for exactly the samples of the counts (metadata order kept)."""
    if samples is None:
        names = sorted(long["sample"].unique())
        return pd.DataFrame(index=pd.Index(names, name="sample"))
    if "sample" in samples.columns:
        samples = samples.set_index("sample")
    samples = validation.validate_samples(samples, samples_source)
    validation.check_sample_sets(long["sample"].unique(), samples.index, source, samples_source)
    return samples


def _distinct_sequence_totals(long: pd.DataFrame, samples: pd.Index) -> pd.Series:
    """Counts per sample with every distinct sequence counted once (first annotation)."""
    distinct = long.drop_duplicates(["sequence", "sample"])
    totals = distinct.groupby("sample")["count"].sum()
    return totals.reindex(samples, fill_value=0).astype(float).rename("library_size")


def _library_size(library_size, samples: pd.DataFrame, totals: pd.Series, source: str,
                  samples_source: str) -> tuple[pd.Series, str]:
    """``T_i`` by the module's rule, and a description of where it came from."""
    if library_size is None and LIBRARY_SIZE_COLUMN in samples.columns:
        library_size = LIBRARY_SIZE_COLUMN
    if library_size is None or (isinstance(library_size, str) and library_size == "counts"):
        return totals, f"{source}: sum of every distinct sequence per sample"
    if isinstance(library_size, str):
        if library_size not in samples.columns:
            raise InputError(
                f"{samples_source}: library size column {library_size!r} not found; columns are "
                f"{list(samples.columns)}"
            )
        where = f"{samples_source}, column {library_size!r}"
        return validation.check_library_size(samples[library_size], samples.index, where), where
    given = library_size if isinstance(library_size, pd.Series) else pd.Series(library_size)
    where = given.attrs.get("source", "library_size given")
    return validation.check_library_size(given, samples.index, where), where


def _without_library_size_column(samples: pd.DataFrame) -> pd.DataFrame:
    if LIBRARY_SIZE_COLUMN not in samples.columns:
        return samples
    attrs = dict(samples.attrs)
    samples = samples.drop(columns=LIBRARY_SIZE_COLUMN)
    samples.attrs = attrs
    return samples


def _count_array(long: pd.DataFrame, samples: pd.Index) -> xr.DataArray:
    """Dense (sample, isomir) int64 counts, isomiRs sorted by (miRNA, sequence)."""
    keys = long[["miRNA", "sequence"]].drop_duplicates().sort_values(["miRNA", "sequence"])
    keys = keys.reset_index(drop=True)
    key_index = pd.MultiIndex.from_frame(keys)
    columns = key_index.get_indexer(pd.MultiIndex.from_frame(long[["miRNA", "sequence"]]))
    rows = samples.get_indexer(long["sample"])
    values = np.zeros((len(samples), len(keys)), dtype=np.int64)
    values[rows, columns] = long["count"].to_numpy(dtype=np.int64)
    ids = (keys["miRNA"] + "|" + keys["sequence"]).to_numpy()
    return xr.DataArray(
        values,
        dims=("sample", "isomir"),
        coords={
            "sample": np.asarray(samples, dtype=object).astype(str),
            "isomir": ids.astype(str),
            "miRNA": ("isomir", keys["miRNA"].to_numpy().astype(str)),
            "sequence": ("isomir", keys["sequence"].to_numpy().astype(str)),
        },
        name="count",
    )
