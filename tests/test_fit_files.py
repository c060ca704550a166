"""Per-miRNA fit files (.npz): exact round trip, no pickle, old netCDF fits still read, lazy mapping."""

from __future__ import annotations

import json
import math
import zipfile

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayesmir.fit_files import StoredPosteriors, read_idata, write_idata


def idata_with_every_kind_of_value() -> az.InferenceData:
    rng = np.random.default_rng(3)
    posterior = xr.Dataset(
        {"beta": (("chain", "draw", "coef"), rng.normal(size=(2, 7, 2))),
         "theta": (("chain", "draw"), rng.gamma(2.0, size=(2, 7)))},
        coords={"chain": [0, 1], "draw": np.arange(7), "coef": ["Intercept", "group[T.o]"]},
        attrs={"method": "laplace", "log_marginal_likelihood": np.float64(-403.0586040840374),
               "log_marginal_likelihood_se": math.nan, "n_points": np.int64(128)},
    )
    observed = xr.Dataset({"count": (("sample", "isomir"), rng.integers(0, 10**12, (3, 2)))},
                          coords={"sample": np.array(["001", "002", "b"], dtype=object),
                                  "isomir": ["ACGT", "ACGTA"]})
    mixture = xr.Dataset({"weight": (("point",), np.full(4, 0.25)),
                          "beta_mean": (("point", "coef"), rng.normal(size=(4, 2)))},
                         coords={"point": np.arange(4), "coef": ["Intercept", "group[T.o]"]})
    idata = az.InferenceData(posterior=posterior, observed_data=observed)
    idata.add_groups({"mixture": mixture}, warn_on_custom_groups=False)
    return idata


def test_round_trip_is_exact(tmp_path):
    """Every group, value, dtype, coordinate and attribute comes back (object strings as unicode)."""
    idata = idata_with_every_kind_of_value()
    write_idata(tmp_path / "fit.npz", idata)
    back = read_idata(tmp_path / "fit.npz")
    assert back.groups() == idata.groups()
    for group in idata.groups():
        xr.testing.assert_identical(back[group], idata[group])
        for name, variable in idata[group].variables.items():
            expected = variable.dtype if variable.dtype != object else np.dtype("<U3")
            assert back[group][name].dtype == expected, (group, name)
    attrs = back.posterior.attrs
    assert attrs["log_marginal_likelihood"] == -403.0586040840374 and math.isnan(attrs["log_marginal_likelihood_se"])
    assert back.observed_data["count"].values.max() == idata.observed_data["count"].values.max()
    assert list(back.observed_data["sample"].values) == ["001", "002", "b"]


def test_file_is_plain_npy_arrays_without_pickle(tmp_path):
    """Readable by numpy alone with allow_pickle=False; the header is JSON; no temporary file left."""
    write_idata(tmp_path / "fit.npz", idata_with_every_kind_of_value())
    with np.load(tmp_path / "fit.npz", allow_pickle=False) as archive:
        header = json.loads(archive["meta"].tobytes().decode())
        assert all(archive[key].dtype != object for key in archive.files)
    assert set(header["groups"]) == {"posterior", "observed_data", "mixture"}
    assert zipfile.is_zipfile(tmp_path / "fit.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["fit.npz"]


def test_netcdf_fits_of_older_runs_are_still_read(tmp_path):
    idata = idata_with_every_kind_of_value()
    idata.to_netcdf(str(tmp_path / "fit.nc"))
    back = read_idata(tmp_path / "fit.nc")
    xr.testing.assert_equal(back.posterior, idata.posterior)


def test_stored_posteriors_read_each_fit_when_looked_up(tmp_path):
    """A mapping over files: membership and length without reading; every lookup reads the file
    (a fit written again is seen at once: nothing is kept in memory)."""
    idata = idata_with_every_kind_of_value()
    write_idata(tmp_path / "a.npz", idata)
    stored = StoredPosteriors(tmp_path, {"mir-a": "a.npz", "mir-b": "b.npz"})
    assert len(stored) == 2 and "mir-b" in stored and "mir-c" not in stored and list(stored) == ["mir-a", "mir-b"]
    xr.testing.assert_identical(stored["mir-a"].posterior, idata.posterior)
    assert stored.get("mir-c") is None
    with pytest.raises(FileNotFoundError):
        stored["mir-b"]
    idata.posterior["beta"] += 1.0
    write_idata(tmp_path / "a.npz", idata)
    xr.testing.assert_identical(stored["mir-a"].posterior, idata.posterior)
    moved = tmp_path / "elsewhere"
    (tmp_path / "a.npz").rename(tmp_path / "a2.npz")
    moved.mkdir()
    (tmp_path / "a2.npz").rename(moved / "a.npz")
    xr.testing.assert_identical(stored.relocated(moved)["mir-a"].posterior, idata.posterior)
