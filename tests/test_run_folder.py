"""Run folders through the API with an instant fake method: strict JSON, no absolute paths,
refusals, resume fingerprints, the lock, --retry-failed, save/load."""

from __future__ import annotations

import json

import pytest
import xarray as xr
from test_driver import FakeInference, isomir_data, problems

from bayesmir import load_fit
from bayesmir.driver import fit
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
