"""Run folders through the API with an instant fake method: strict JSON, no absolute paths,
refusals, resume fingerprints, the lock, --retry-failed, save/load."""

from __future__ import annotations

import gc
import json
import weakref

import pandas as pd
import pytest
import xarray as xr
from mirna_sim import simulate_problem
from test_driver import FakeInference, isomir_data, problems

from bayesmir import fit_files, load_fit
from bayesmir.driver import fit
from bayesmir.fit_files import StoredPosteriors
from bayesmir.run_folder import RunFolder, RunFolderError


def run(tmp_path, **options):
    data = isomir_data(problems())
    return fit(data, method=FakeInference(), progress=False, out=tmp_path / "run", **options)


def refuse_constant(name):
    raise AssertionError(f"non-strict JSON constant {name}")


def test_streamed_run_loads_and_matches_in_memory_run(tmp_path):
    """The folder's result equals the in-memory fit; every JSON parses strictly, no absolute path."""
    streamed = run(tmp_path, seed=4)
    memory = fit(isomir_data(problems()), method=FakeInference(), progress=False, seed=4)
    loaded = load_fit(tmp_path / "run")
    for mirna in ("mir-1", "mir-3"):
        xr.testing.assert_identical(memory.posteriors[mirna].posterior, loaded.posteriors[mirna].posterior)
    assert streamed.mirnas == memory.mirnas == loaded.mirnas
    for path in (tmp_path / "run").rglob("*.json"):
        text = path.read_text()
        json.loads(text, parse_constant=refuse_constant)
        assert str(tmp_path) not in text, path


def test_used_folder_refused_then_overwritten(tmp_path):
    run(tmp_path)
    with pytest.raises(RunFolderError, match="already there"):
        run(tmp_path)
    (tmp_path / "run" / "mine.txt").write_text("kept")
    run(tmp_path, overwrite=True, seed=9)
    assert (tmp_path / "run" / "mine.txt").read_text() == "kept"
    assert load_fit(tmp_path / "run").options["seed"] == 9


def test_resume_refuses_other_data_and_continues_same(tmp_path):
    """A partial run (here: one fit stored, as after a kill) resumes only with the same data/options."""
    data = isomir_data(problems())
    manifest = {"fingerprint": {"data_sha256": "other"}}
    with RunFolder(tmp_path / "run", manifest):
        pass  # leaves run.partial with another fingerprint
    with pytest.raises(RunFolderError, match="other data"):
        run(tmp_path, resume=True)
    with pytest.raises(RunFolderError, match="--resume"):
        run(tmp_path)
    run(tmp_path, overwrite=True)
    assert load_fit(tmp_path / "run").mirnas == sorted(data.mirnas)


def test_lock_refuses_a_second_writer(tmp_path):
    with RunFolder(tmp_path / "run", {"fingerprint": {}}), pytest.raises(RunFolderError, match="another"):
        run(tmp_path)
    assert not (tmp_path / "run.lock").exists()


def test_retry_failed_refits_only_failed(tmp_path, monkeypatch):
    """The failed miRNA (bad-2) is fitted again, the others are kept as they were."""
    run(tmp_path)
    before = load_fit(tmp_path / "run")
    fitted = []
    original = FakeInference.fit_one

    def counting(self, problem, seed):
        fitted.append(problem.mirna)
        return original(self, problem, seed)

    monkeypatch.setattr(FakeInference, "fit_one", counting)
    run(tmp_path, retry_failed=True)
    assert fitted == ["bad-2"]
    after = load_fit(tmp_path / "run")
    xr.testing.assert_identical(before.posteriors["mir-1"].posterior, after.posteriors["mir-1"].posterior)


def test_save_and_load_round_trip(tmp_path):
    result = fit(isomir_data(problems()), method=FakeInference(), progress=False)
    path = result.save(tmp_path / "saved")
    loaded = load_fit(path)
    assert loaded.mirnas == result.mirnas
    assert loaded.diagnostics["converged"].tolist() == result.diagnostics["converged"].tolist()


def without_timings(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["seconds"], errors="ignore")


def test_streamed_tables_equal_in_memory_tables(tmp_path):
    """A run streamed to a folder reads its fits from there (nothing held) and builds the same tables
    as the same run kept in memory; the written CSVs are those tables; so does the loaded run."""
    streamed = run(tmp_path, seed=4, reduced=True)
    memory = fit(isomir_data(problems()), method=FakeInference(), progress=False, seed=4, reduced=True)
    loaded = load_fit(tmp_path / "run")
    for result in (streamed, loaded):  # the fits stay on disk (under the lazily attached shrinkage groups)
        assert isinstance(result.posteriors.fits, StoredPosteriors)
    assert streamed.posteriors.fits.folder == tmp_path / "run" / "posteriors" / "full"  # not the .partial
    assert isinstance(memory.posteriors.fits, dict)
    for name, table in memory.tables().items():
        for other in (streamed, loaded):
            pd.testing.assert_frame_equal(without_timings(other.tables()[name]), without_timings(table),
                                          check_dtype=False)  # optimizer_status: None (memory) or NaN
        written = pd.read_csv(tmp_path / "run" / f"{name}_table.csv")
        assert written["miRNA"].tolist() == table["miRNA"].tolist()


def test_tables_hold_one_fit_at_a_time(tmp_path, monkeypatch):
    """Building the tables of a folder-backed run of 12 miRNAs never keeps more than the fits of one
    miRNA (full and reduced) alive: memory does not grow with the number of miRNAs."""
    many = [simulate_problem(12, 2 + k % 4, seed=k, name=f"mir-{k:02d}") for k in range(12)]
    fit(isomir_data(many), method=FakeInference(), progress=False, out=tmp_path / "run", reduced=True)
    loaded = load_fit(tmp_path / "run")
    alive, most = [], [0]
    read = fit_files.read_idata

    def counting(path):
        gc.collect()
        most[0] = max(most[0], sum(ref() is not None for ref in alive))
        idata = read(path)
        alive.append(weakref.ref(idata))
        return idata

    monkeypatch.setattr(fit_files, "read_idata", counting)
    tables = loaded.tables()
    assert len(alive) == 24 and most[0] <= 2  # one miRNA's full and reduced fits
    assert tables["mirna"]["miRNA"].nunique() == 12
    assert loaded.mirna_table() is not tables["mirna"] and len(alive) == 24  # built once, copies returned


def test_runs_with_netcdf_fits_still_load(tmp_path):
    """A run folder of an earlier version (fits as netCDF .nc) loads and gives the same tables."""
    run(tmp_path, seed=2)
    before = load_fit(tmp_path / "run")
    table, posterior = before.mirna_table(), before.posteriors["mir-1"].posterior
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    for mirna, name in manifest["files"]["full"].items():
        folder = tmp_path / "run" / "posteriors" / "full"
        fit_files.read_idata(folder / name).to_netcdf(str(folder / name.replace(".npz", ".nc")))
        (folder / name).unlink()
        manifest["files"]["full"][mirna] = name.replace(".npz", ".nc")
    (tmp_path / "run" / "run.json").write_text(json.dumps(manifest))
    after = load_fit(tmp_path / "run")
    pd.testing.assert_frame_equal(after.mirna_table(), table)
    xr.testing.assert_equal(after.posteriors["mir-1"].posterior, posterior)


def test_saving_a_loaded_run_over_itself_keeps_it_readable(tmp_path):
    """load_fit(A).save(A): the fits are read from A while the new run is written beside it; the
    result then reads them from the new A."""
    run(tmp_path, seed=3)
    loaded = load_fit(tmp_path / "run")
    table = loaded.mirna_table()
    loaded.save(tmp_path / "run")
    xr.testing.assert_equal(loaded.posteriors["mir-1"].posterior, load_fit(tmp_path / "run").posteriors["mir-1"].posterior)
    pd.testing.assert_frame_equal(load_fit(tmp_path / "run").mirna_table(), table)
