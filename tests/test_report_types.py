"""The report's "isomiR effects by type" section: canonical source stated, table = effects_by_type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayesmir
from bayesmir.cli import app
from bayesmir.design import build_design
from bayesmir.driver import fit_problems
from bayesmir.inference import METHODS
from bayesmir.isomir_types import effects_by_type, fitted_isomirs, isomir_types
from bayesmir.problem import mirna_problems
from bayesmir.reporting import report
from bayesmir.reporting.types_section import SOURCES, types_section

MIRNAS = ["hsa-miR-181c-5p", "hsa-miR-488-5p"]


@pytest.fixture(scope="module")
def data():
    return bayesmir.load_example().filter().subset(mirnas=MIRNAS)


@pytest.fixture(scope="module")
def example_fit(data):
    return bayesmir.fit(data, progress=False, n_hyper=16, reduced=False)


def test_fitted_isomirs_are_the_data_isomirs_with_their_totals(example_fit, data):
    fitted = fitted_isomirs(example_fit).set_index(["miRNA", "sequence"])["total"]
    truth = pd.Series(data.counts.to_numpy().sum(axis=0).astype(float),
                      index=pd.MultiIndex.from_arrays([data.counts["miRNA"].values, data.counts["sequence"].values]))
    assert len(fitted) == len(truth)
    np.testing.assert_array_equal(fitted.reindex(truth.index).to_numpy(), truth.to_numpy())


def test_section_is_the_study_rows_of_effects_by_type_and_names_the_proxy(example_fit, data):
    section = types_section(example_fit)
    assert section["source"].startswith(SOURCES["most_abundant"])
    expected = effects_by_type(example_fit, fitted_isomirs(example_fit), level=0.95)
    study = expected[expected["miRNA"] == "all"].reset_index(drop=True)
    pd.testing.assert_frame_equal(section["study"].drop(columns="n_mirnas"), study.drop(columns="n_isomirs"))
    assert (section["study"]["n_mirnas"] <= len(MIRNAS)).all()
    assert set(section["study"]["category"]) <= {"ref_miRNA", "iso_5p", "iso_3p", "iso_add3p", "iso_snv",
                                                "seed_shift"}
    # the data fitted, without a canonical annotation, gives the same proxy types as the fit's own isomiRs
    pd.testing.assert_frame_equal(types_section(example_fit, data=data)["study"], section["study"])


def test_canonical_sequences_change_the_source_and_only_through_the_types(example_fit):
    proxy = isomir_types(fitted_isomirs(example_fit)).drop_duplicates("miRNA").set_index("miRNA")["canonical"]
    same = types_section(example_fit, canonical=proxy.to_dict())
    assert same["source"].startswith(SOURCES["reference"])
    pd.testing.assert_frame_equal(same["study"], types_section(example_fit)["study"])
    # a canonical one base longer at the 5' end turns every isomiR of that miRNA into iso_5p
    mirna = MIRNAS[0]
    shifted = {mirna: "A" + proxy[mirna]}
    per_mirna = types_section(example_fit, canonical=shifted)["per_mirna"]
    rows = per_mirna[per_mirna["miRNA"] == mirna]
    assert "ref_miRNA" not in set(rows["category"])
    n_isomirs = int((fitted_isomirs(example_fit)["miRNA"] == mirna).sum())
    assert rows.loc[rows["category"] == "iso_5p", "n_isomirs"].tolist() == [n_isomirs]


def test_report_shows_the_section_and_cli_equals_api(example_fit, tmp_path):
    fasta = tmp_path / "mature.fa"
    proxy = isomir_types(fitted_isomirs(example_fit)).drop_duplicates("miRNA")
    fasta.write_text("".join(f">{m} MIMAT\n{s.replace('T', 'U')}\n" for m, s in zip(proxy["miRNA"], proxy["canonical"])))
    api = report(example_fit, tmp_path / "api.html", top=1, canonical=fasta).read_text()
    assert 'id="types"' in api and SOURCES["reference"] in api
    run = example_fit.save(tmp_path / "run")
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out), "--top", "1", "--quiet",
                                      "--canonical", str(fasta)])
    assert result.exit_code == 0, result.output
    cli = out.read_text()
    table = api[api.index('id="types"'):api.index("</table>", api.index('id="types"'))]
    assert table in cli
    proxy_report = report(example_fit, tmp_path / "proxy.html", top=1).read_text()
    assert SOURCES["most_abundant"] in proxy_report


def test_input_annotation_is_used_first_and_named(test_data_dir):
    """mirtop input carries each isomiR's canonical sequence: the section types by it, and says so."""
    formats = test_data_dir / "formats"
    mirtop = bayesmir.read_counts(formats / "mirtop.gff", samples=formats / "samples.csv")
    problems = mirna_problems(mirtop, build_design(mirtop.samples, "~ group"))
    with pytest.MonkeyPatch.context() as patch:  # instant posteriors of the right shape (test_report's)
        patch.setitem(METHODS, "fakefull", "test_report:FakeFullInference")
        result = fit_problems(problems, method="fakefull", progress=False)
    section = types_section(result, data=mirtop)
    assert section["source"] == f"{SOURCES['input']} (13 isomiRs)"
    # the canonical sequence of the input is its own class; a proxy would not know it
    per_mirna = section["per_mirna"]
    canonical_in_data = {str(m) for m, s, c in zip(mirtop.counts["miRNA"].values, mirtop.counts["sequence"].values,
                                                   mirtop.counts["canonical"].values) if s == c}
    assert set(per_mirna.loc[per_mirna["category"] == "ref_miRNA", "miRNA"]) == canonical_in_data
