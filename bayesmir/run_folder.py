"""Run folders: written crash-safe while a run goes, read back by :func:`load_fit`.

A run into ``OUT`` works in the sibling folder ``OUT.partial``:

1. ``manifest.json`` first: the run's fingerprint (SHA-256 of the data as fitted — counts,
   offsets, designs, names — and of the options: method, family, priors, seed, ...) and the
   package versions. Strict JSON (``null``, never ``NaN``), no paths.
2. Each finished fit once, as it finishes: ``posteriors/<kind>/<id>.npz``
   (:mod:`bayesmir.fit_files`) then its
   diagnostics row ``fits/<kind>/<id>.json`` (the row is the commit mark), each written to a
   temporary name and renamed (``os.replace``), so a file is either complete or absent.
3. At the end the tables, ``diagnostics*.csv``, ``mirna_info.csv`` and ``run.json`` (last),
   each atomically; then ``OUT.partial`` is renamed to ``OUT``. A complete earlier run in
   ``OUT`` (only with ``overwrite``) is swapped out at that moment and only then removed, and
   files that bayesmir did not write are moved into the new run.

A killed run leaves ``OUT.partial``; ``resume=True`` continues it when the fingerprint
matches and refuses otherwise. ``OUT.lock`` (``fcntl.flock``, held for the whole run and
removed at its end) stops a second process writing the same run. Every output-side problem
is a :class:`RunFolderError` (an :class:`~bayesmir.InputError`: one ``error:`` line, exit 2
in the CLI).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from bayesmir.errors import InputError
from bayesmir.fit_files import (
    FIT_SUFFIX,
    StoredPosteriors,
    fit_id,
    strict_json,
    write_csv,
    write_idata,
    write_json,
)

#: Files and folders a run consists of (what ``overwrite`` may remove).
RUN_ENTRIES = (
    "run.json", "manifest.json", "inputs.json", "diagnostics.csv", "diagnostics_reduced.csv",
    "mirna_info.csv", "filter_report.csv", "mirna_table.csv", "isomir_table.csv", "slope_table.csv",
    "frequentist.csv", "frequentist.json", "comparison.csv", "posteriors", "fits",
)
KINDS = ("full", "reduced")


class RunFolderError(InputError):
    """The run folder cannot be written or read (exists, locked, other data, unwritable)."""


# ---------------------------------------------------------------------- fingerprints
def data_sha256(problems: Iterable) -> str:
    """SHA-256 of what is fitted: each problem's names, counts, offset, X and Z (not file paths)."""
    digest = hashlib.sha256()
    for problem in problems:
        for text in (problem.mirna, *problem.sequences, *problem.samples, *problem.coef_names,
                     *problem.re_names):
            digest.update(str(text).encode() + b"\0")
        for array in (problem.counts, problem.offset, problem.X, problem.Z):
            array = np.ascontiguousarray(array, dtype=np.int64 if array is problem.counts else float)
            digest.update(str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------- the folder
class RunFolder:
    """Write one run crash-safe into ``out`` (see the module docstring). Use as a context manager.

    Parameters
    ----------
    out : path
        The run folder to produce.
    manifest : dict
        ``{"fingerprint": {...}, ...}``; ``fingerprint`` decides whether a partial run may be resumed.
    overwrite : bool
        Replace a complete run (or a partial one) in ``out``.
    resume : bool
        Continue ``out.partial`` (refused when its fingerprint differs).
    retry_failed : bool
        Start from the complete run in ``out`` without its failed fits (they are fitted again).

    Attributes
    ----------
    done : dict
        ``(kind, miRNA) -> diagnostics row`` of the fits already on disk.
    """

    def __init__(self, out, manifest: dict, overwrite: bool = False, resume: bool = False,
                 retry_failed: bool = False) -> None:
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.lock_path = self.out.with_name(self.out.name + ".lock")
        self.manifest = strict_json(manifest)
        self.overwrite, self.resume, self.retry_failed = overwrite, resume, retry_failed
        self.done: dict[tuple[str, str], dict] = {}
        self._lock = None

    def __enter__(self) -> Self:
        with _output_errors(self.out):
            check_target(self.out, self.overwrite, self.retry_failed)
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._lock = _acquire_lock(self.lock_path, self.out)
            try:
                self._open_partial()
            except BaseException:
                self._release()
                raise
        return self

    def __exit__(self, *exc) -> None:
        self._release()

    # ---------------------------------------------------------------- opening
    def _open_partial(self) -> None:
        if self.partial.exists() and not (self.resume or self.overwrite):
            raise RunFolderError(f"{self.partial}: an interrupted run is there; continue it with --resume "
                                 "or start again with --overwrite")
        if self.partial.exists() and self.resume:
            self._check_fingerprint(self.partial)
        else:
            shutil.rmtree(self.partial, ignore_errors=True)
            if self.retry_failed and is_run(self.out):
                self._check_fingerprint(self.out)
                shutil.copytree(self.out, self.partial,
                                ignore=shutil.ignore_patterns(*_tables_and_summaries()))
                _forget_failed(self.partial)
            else:
                self.partial.mkdir()
        for kind in KINDS:
            (self.partial / "fits" / kind).mkdir(parents=True, exist_ok=True)
            (self.partial / "posteriors" / kind).mkdir(parents=True, exist_ok=True)
        write_json(self.partial / "manifest.json", self.manifest)
        self.done = dict(_read_rows(self.partial))

    def _check_fingerprint(self, folder: Path) -> None:
        path = folder / "manifest.json"
        if not path.is_file():
            raise RunFolderError(f"{folder}: has no manifest.json; start again with --overwrite")
        theirs = json.loads(path.read_text()).get("fingerprint", {})
        ours = self.manifest.get("fingerprint", {})
        differ = sorted(key for key in set(ours) | set(theirs) if ours.get(key) != theirs.get(key))
        if differ:
            what = "other data" if "data_sha256" in differ else f"other options ({', '.join(differ)})"
            raise RunFolderError(f"{folder} was made from {what}; start again with --overwrite")

    # ---------------------------------------------------------------- writing
    def write_fit(self, kind: str, mirna: str, idata, row: dict) -> None:
        """Store one finished fit: its posterior (if any), then its diagnostics row."""
        name = fit_id(mirna)
        posterior = None
        if idata is not None:
            posterior = f"{name}{FIT_SUFFIX}"
            write_idata(self.partial / "posteriors" / kind / posterior, idata)
        write_json(self.partial / "fits" / kind / f"{name}.json",
                   {"miRNA": mirna, "posterior": posterior, "row": row})
        self.done[(kind, mirna)] = row

    def commit(self, result) -> Path:
        """Write ``result``'s tables and summaries into the partial folder, then swap it into place.

        The tables are built miRNA by miRNA (:meth:`FitResult.tables`), so a result read from
        the partial folder (:func:`read_result`) never holds more than one fit in memory. A
        result whose fits are read from a folder reads them from ``out`` afterwards.
        """
        folder = self.partial
        write_csv(folder / "diagnostics.csv", result.diagnostics)
        if result.diagnostics_reduced is not None:
            write_csv(folder / "diagnostics_reduced.csv", result.diagnostics_reduced)
        write_csv(folder / "mirna_info.csv", result.mirna_info, index=True)
        if isinstance(result.filter_report, pd.DataFrame):
            write_csv(folder / "filter_report.csv", result.filter_report)
        for name, table in result.tables().items():
            write_csv(folder / f"{name}_table.csv", table)
        files = _posterior_files(folder)
        write_json(folder / "run.json", {"options": result.options, "files": files,
                                         "design": _design_dict(result.design)})
        _swap(folder, self.out)
        result.posteriors = _moved(result.posteriors, _stored(self.out, "full", files["full"]))
        result.posteriors_reduced = _moved(result.posteriors_reduced, _stored(self.out, "reduced", files["reduced"]))
        return self.out

    def _release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
            os.close(self._lock)
            self._lock = None


def check_target(out, overwrite: bool = False, retry_failed: bool = False) -> None:
    """RunFolderError unless ``out`` may receive a run: absent, an empty folder, or a run to replace
    (``overwrite``) or to complete (``retry_failed``). Cheap: the CLI calls it before reading data."""
    out = Path(out)
    with _output_errors(out):
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"--out {out}: exists and is not a folder")
        if out.is_dir() and any(out.iterdir()):
            if not is_run(out):
                raise RunFolderError(f"--out {out}: folder is not empty and is not a bayesmir run; "
                                     "choose a new or empty folder")
            if not (overwrite or retry_failed):
                raise RunFolderError(f"--out {out}: a complete run is already there; use --overwrite "
                                     "to replace it or --retry-failed to refit its failed miRNAs")


def is_run(folder: Path) -> bool:
    """Whether ``folder`` holds a complete bayesmir run (``run.json``)."""
    return (Path(folder) / "run.json").is_file()


def read_result(folder: Path, order: list[str], design, mirna_info: dict, options: dict,
                filter_report=None, reduced: bool = False):
    """The :class:`~bayesmir.results.FitResult` of the fits stored in ``folder``, rows in ``order``.

    Its posteriors are read from ``folder`` when looked up (:class:`StoredPosteriors`).
    """
    from bayesmir.results import FitResult

    entries = _read_entries(folder)
    rows, posteriors = {}, {}
    for kind in KINDS:
        stored = [(m, *entries[(kind, m)]) for m in order if (kind, m) in entries]
        rows[kind] = [row for _, row, _ in stored]
        posteriors[kind] = _stored(folder, kind, {m: p for m, _, p in stored if p is not None})
    return FitResult(
        posteriors=posteriors["full"], diagnostics=rows["full"], posteriors_reduced=posteriors["reduced"],
        diagnostics_reduced=rows["reduced"] if reduced else None, design=design, mirna_info=mirna_info,
        options=options, filter_report=filter_report,
    )


def save(result, path) -> Path:
    """Write a finished :class:`~bayesmir.results.FitResult` to ``path`` as a run folder.

    The same crash-safe steps as a streamed run; ``path`` must be new, empty or a run
    (replaced). Returns ``path``.
    """
    manifest = {"fingerprint": {"saved": True, "options": result.options}}
    with RunFolder(path, manifest, overwrite=True) as folder:
        for kind, posteriors, rows in (("full", result.posteriors, result.diagnostics),
                                       ("reduced", result.posteriors_reduced, result.diagnostics_reduced)):
            for row in ([] if rows is None else rows.to_dict("records")):
                folder.write_fit(kind, row["miRNA"], posteriors.get(row["miRNA"]), row)
        return folder.commit(result)


def load_fit(path):
    """Read a run folder written by :func:`bayesmir.fit` (``out=``) or :meth:`FitResult.save`.

    Raises
    ------
    InputError
        ``path`` is not a complete run folder.
    """
    from bayesmir.results import FitResult, _read_diagnostics

    path = Path(path)
    if not is_run(path):
        hint = " (an interrupted run: continue it with --resume)" if path.with_name(
            path.name + ".partial").is_dir() else ""
        raise InputError(f"{path}: not a bayesmir run directory (no run.json){hint}")
    manifest = json.loads((path / "run.json").read_text())
    reduced_file, filter_file = path / "diagnostics_reduced.csv", path / "filter_report.csv"
    return FitResult(
        posteriors=_stored(path, "full", manifest["files"]["full"]),
        diagnostics=_read_diagnostics(path / "diagnostics.csv"),
        posteriors_reduced=_stored(path, "reduced", manifest["files"]["reduced"]),
        diagnostics_reduced=_read_diagnostics(reduced_file) if reduced_file.is_file() else None,
        design=_design_from_dict(manifest["design"]),
        mirna_info=pd.read_csv(path / "mirna_info.csv", index_col=0, float_precision="round_trip"),
        options=manifest["options"],
        filter_report=pd.read_csv(filter_file) if filter_file.is_file() else None,
    )


# ---------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _output_errors(out: Path) -> Iterator[None]:
    """OS errors on the output side as one RunFolderError line."""
    try:
        yield
    except OSError as error:
        raise RunFolderError(f"--out {out}: cannot write there ({error.strerror or error})") from None


def _acquire_lock(lock_path: Path, out: Path) -> int:
    """An exclusive ``flock`` on ``lock_path`` (RunFolderError if another process holds it).

    The file is removed at release while still locked; a process that opened the old file
    meanwhile sees the path point elsewhere and tries again.
    """
    while True:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunFolderError(f"--out {out}: another bayesmir process is writing this run "
                                 f"(lock {lock_path.name})") from None
        try:
            if os.stat(lock_path).st_ino == os.fstat(descriptor).st_ino:
                os.ftruncate(descriptor, 0)
                os.write(descriptor, str(os.getpid()).encode())
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)


def _swap(partial: Path, out: Path) -> None:
    """Rename ``partial`` to ``out``; an earlier run there is moved aside first, then removed,
    keeping any file bayesmir did not write."""
    if not out.exists():
        os.replace(partial, out)
        return
    old = out.with_name(out.name + f".old-{os.getpid()}")
    os.replace(out, old)
    os.replace(partial, out)
    for entry in old.iterdir():
        if entry.name not in RUN_ENTRIES and not (out / entry.name).exists():
            os.replace(entry, out / entry.name)
    shutil.rmtree(old, ignore_errors=True)


def _tables_and_summaries() -> tuple[str, ...]:
    return ("run.json", "diagnostics.csv", "diagnostics_reduced.csv", "*_table.csv", "frequentist.csv",
            "frequentist.json", "comparison.csv")


def _read_entries(folder: Path) -> dict:
    """``(kind, miRNA) -> (row, posterior file or None)`` of the fits stored in ``folder``."""
    entries = {}
    for kind in KINDS:
        for path in sorted((folder / "fits" / kind).glob("*.json")):
            record = json.loads(path.read_text())
            posterior = record["posterior"]
            if posterior is not None and not (folder / "posteriors" / kind / posterior).is_file():
                continue  # a posterior removed by hand: fit it again
            entries[(kind, record["miRNA"])] = (record["row"], posterior)
    return entries


def _read_rows(folder: Path) -> Iterator[tuple[tuple[str, str], dict]]:
    for key, (row, _) in _read_entries(folder).items():
        yield key, row


def _forget_failed(folder: Path) -> None:
    """Remove the records of fits that failed (raised), so that they are fitted again."""
    for kind in KINDS:
        for path in (folder / "fits" / kind).glob("*.json"):
            record = json.loads(path.read_text())
            if record["posterior"] is None:
                path.unlink()


def _posterior_files(folder: Path) -> dict[str, dict[str, str]]:
    """``kind -> {miRNA: posterior file}`` of the fits stored in ``folder``."""
    files = {kind: {} for kind in KINDS}
    for (kind, mirna), (_, posterior) in _read_entries(folder).items():
        if posterior is not None:
            files[kind][mirna] = posterior
    return files


def _moved(posteriors, stored: StoredPosteriors):
    """``posteriors`` read from ``stored`` (where their files now are) if they were read from files,
    directly or under the empirical-Bayes groups (:class:`bayesmir.shrinkage.ShrunkPosteriors`)."""
    if isinstance(posteriors, StoredPosteriors):
        return stored
    if isinstance(getattr(posteriors, "fits", None), StoredPosteriors):
        return type(posteriors)(stored, posteriors.groups)
    return posteriors


def _stored(folder: Path, kind: str, files: dict[str, str]) -> StoredPosteriors:
    """The fits of ``kind`` in run folder ``folder``, read when looked up."""
    return StoredPosteriors(Path(folder) / "posteriors" / kind, files)


def _design_dict(design) -> dict | None:
    if design is None:
        return None
    return {"formula": design.formula, "X": np.asarray(design.X).tolist(), "coef_names": design.coef_names,
            "coef": design.coef, "slope_names": design.slope_names, "samples": list(design.samples)}


def _design_from_dict(values: dict | None):
    from bayesmir.design import Design

    if values is None:
        return None
    return Design(values["formula"], np.asarray(values["X"], dtype=float), values["coef_names"],
                  values["coef"], values["slope_names"], values["samples"])
