"""`bayesmir fit` run folders end to end: SIGKILL + --resume, SIGINT, two runs into one folder,
refusals and exit codes. Real subprocesses of ``python -m bayesmir`` on a 3-miRNA simulation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """3 miRNAs x 6 samples with few isomiRs (fast fits), written by `bayesmir simulate`."""
    folder = tmp_path_factory.mktemp("small")
    done = bayesmir("simulate", "--out", str(folder), "--mirnas", "3", "--samples", "6", "--seed", "2")
    assert done.returncode == 0, done.stderr
    return folder


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bayesmir", *args]


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def bayesmir(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), check=False, capture_output=True, text=True, env=environment(),
                          cwd=cwd, timeout=900)


def fit_args(small: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", str(small / "counts_long.csv"), "--samples", str(small / "samples.csv"), "--out", str(out),
            "--no-filter", "--quiet", "--jobs", "1", *extra]


def tables(run: Path) -> dict[str, pd.DataFrame]:
    """The three tables without the wall-time column (the only one allowed to differ)."""
    return {name: pd.read_csv(run / f"{name}_table.csv").drop(columns=["seconds"], errors="ignore")
            for name in ("mirna", "isomir", "slope")}


def start(small: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(command(*fit_args(small, out, *extra)), env=environment(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_fits(out: Path, process: subprocess.Popen, n: int = 1, timeout: float = 600) -> None:
    """Until ``n`` fits are on disk in OUT.partial (or the process ended)."""
    fits = out.with_name(out.name + ".partial") / "fits" / "full"
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if fits.is_dir() and len(list(fits.glob("*.json"))) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no fit appeared (exit {process.returncode})")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in stderr, stderr
    return lines[0]


def test_sigkill_then_resume_gives_identical_tables(small, tmp_path):
    """Killed with SIGKILL after its first saved fit, resumed: tables equal an uninterrupted run's
    (exactly; only the wall-time column differs); a second run into the same folder while the
    first holds it is refused with one line."""
    whole = bayesmir(*fit_args(small, tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.strip().splitlines()[-1].startswith("3 miRNAs") and "0 failed" in whole.stdout

    out = tmp_path / "killed"
    process = start(small, out)
    wait_for_fits(out, process)
    process.send_signal(signal.SIGSTOP)  # frozen while it holds the lock (its fits take ~0.1 s each)
    second = bayesmir(*fit_args(small, out))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert second.returncode == 2 and "another bayesmir process" in one_error_line(second.stderr)
    assert not (out / "run.json").exists() and out.with_name("killed.partial").is_dir()

    resumed = bayesmir(*fit_args(small, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    for name, table in tables(tmp_path / "whole").items():
        pd.testing.assert_frame_equal(table, tables(out)[name], check_exact=True, obj=name)
    assert not list(tmp_path.glob("killed.*")), "no partial, old or lock file is left"


@pytest.mark.slow
def test_resume_refuses_other_options_and_used_folder_needs_overwrite(small, tmp_path):
    """One error line for --resume with another seed and for a used --out; --overwrite replaces the
    run and keeps a file bayesmir did not write."""
    out = tmp_path / "killed"
    process = start(small, out)
    wait_for_fits(out, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    refused = bayesmir(*fit_args(small, out, "--seed", "5", "--resume"))
    assert refused.returncode == 2 and "other options (seed)" in one_error_line(refused.stderr)
    assert bayesmir(*fit_args(small, out, "--resume")).returncode == 0
    again = bayesmir(*fit_args(small, out))
    assert again.returncode == 2 and "--overwrite" in one_error_line(again.stderr)
    (out / "notes.txt").write_text("mine")
    replaced = bayesmir(*fit_args(small, out, "--overwrite", "--seed", "1"))
    assert replaced.returncode == 0 and (out / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_sigint_exits_130_and_leaves_a_resumable_run(small, tmp_path):
    out = tmp_path / "run"
    process = start(small, out)
    wait_for_fits(out, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "--resume" in stderr
    resumed = bayesmir(*fit_args(small, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    from bayesmir import load_fit

    assert load_fit(out).diagnostics["miRNA"].nunique() == 3


def test_output_errors_are_one_line(small, tmp_path):
    """--out naming a file, a non-empty folder that is not a run, an unwritable place: exit 2."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("x")
    cases = {afile: "not a folder", other: "not a bayesmir run", afile / "sub": "cannot write"}
    for out, message in cases.items():
        done = bayesmir(*fit_args(small, out))
        assert done.returncode == 2 and message in one_error_line(done.stderr), (out, done.stderr)


def test_all_fits_failed_exits_1(small, tmp_path, monkeypatch):
    """Every fit failing: the last line says so and the exit code is 1 (documented)."""
    from bayesmir import driver
    from bayesmir.cli import app
    from bayesmir.inference import diagnostics_row

    def always_fails(inference, problem, seed, loo=False):
        return None, diagnostics_row(problem.mirna, inference.name, message="failed: RuntimeError: no")

    monkeypatch.setattr(driver, "fit_safely", always_fails)
    result = CliRunner().invoke(app, fit_args(small, tmp_path / "run"))
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].endswith(f"3 failed; saved to {tmp_path / 'run'}")


@pytest.mark.slow
def test_dask_local_cluster_equals_serial(small, tmp_path):
    """`--scheduler dask --jobs 2` (a LocalCluster of 2 workers) gives the serial run's tables exactly:
    the CLI runs XLA/BLAS on one thread in its own process as in the workers."""
    serial = bayesmir(*fit_args(small, tmp_path / "serial"))
    cluster = bayesmir(*fit_args(small, tmp_path / "dask", "--scheduler", "dask", "--jobs", "2"))
    assert serial.returncode == 0 and cluster.returncode == 0, cluster.stderr
    for name, table in tables(tmp_path / "serial").items():
        pd.testing.assert_frame_equal(table, tables(tmp_path / "dask")[name], check_exact=True, obj=name)
