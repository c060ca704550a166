"""The HTML report: self-contained, every miRNA in the diagnostics, sections on demand."""

from __future__ import annotations

from html.parser import HTMLParser

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from mirna_sim import simulate_problem

from bayesmir import InputError
from bayesmir.driver import fit_problems
from bayesmir.inference import METHODS, Inference, diagnostics_row
from bayesmir.inference.base import data_groups
from bayesmir.problem import MirnaProblem
from bayesmir.reporting import report
from bayesmir.reporting.comparison import disagreements, merged_table

CHAINS, DRAWS = 2, 100


class FakeFullInference(Inference):
    """Instant 'posteriors' with every variable and data group of the contract.

    beta[group] is centred on the last digit of ``problem.mirna`` / 2 (0.5 if not a digit),
    so the ranking by lfsr is known; miRNAs named ``bad*`` fail, ``slow*`` do not converge.
    """

    name = "fakefull"

    def fit_one(self, problem: MirnaProblem, seed: int):
        if problem.mirna.startswith("bad"):
            raise ValueError("cannot fit this one")
        rng = np.random.default_rng(seed)
        chains = self.options.get("chains", CHAINS)
        shape = (chains, DRAWS)
        q, p, J, n = problem.Z.shape[1], problem.X.shape[1], problem.n_isomirs, problem.n_samples
        effect = int(problem.mirna[-1]) / 2 if problem.mirna[-1].isdigit() else 0.5
        beta = np.stack([rng.normal(np.log(problem.counts.mean() + 1) - 4.6, 0.1, shape),
                         *[rng.normal(effect, 0.25, shape) for _ in range(p - 1)]], axis=-1)
        posterior = xr.Dataset(
            {
                "beta": (("chain", "draw", "coef"), beta),
                "sd_isomir": (("chain", "draw", "re_term"), np.abs(rng.normal(0.5, 0.2, (*shape, q)))),
                "sd_sample": (("chain", "draw"), np.abs(rng.normal(0.2, 0.05, shape))),
                "theta": (("chain", "draw"), np.abs(rng.normal(10, 1, shape))),
                "isomir_effect": (("chain", "draw", "isomir", "re_term"), rng.normal(0, 0.3, (*shape, J, q))),
                "sample_effect": (("chain", "draw", "sample"), rng.normal(0, 0.1, (*shape, n))),
            },
            coords={"chain": np.arange(chains), "draw": np.arange(DRAWS), "coef": problem.coef_names,
                    "re_term": problem.re_names, "isomir": problem.sequences, "sample": problem.samples},
            attrs={"method": self.name, "family": "nb", "mirna": problem.mirna},
        )
        converged = not problem.mirna.startswith("slow")
        row = diagnostics_row(problem.mirna, self.name, converged=converged, rhat=1.2 if not converged else 1.0,
                              message="" if converged else "R-hat 1.2 >= 1.01")
        return az.InferenceData(posterior=posterior, **data_groups(problem)), row


NAMES = ["mir-1", "mir-4", "bad-2", "slow-3", "mir-0", "mir-6"]


@pytest.fixture(scope="module")
def fit():
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(METHODS, "fakefull", "test_report:FakeFullInference")
        problems = [simulate_problem(10, 4 + k, seed=k, name=name) for k, name in enumerate(NAMES)]
        filters = pd.DataFrame({"miRNAs": [8, 6], "isomiRs": [60, 30]}, index=["input", "kept"])
        return fit_problems(problems, method="fakefull", progress=False, filter_report=filters)


class Collector(HTMLParser):
    """Tags with their attributes, and the text of each table under an element id."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(path) -> Collector:
    parser = Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def frequentist_table(fit) -> pd.DataFrame:
    """Frequentist-like numbers: the Bayesian mean shifted, so signs and some calls differ."""
    table = fit.mirna_table()
    table = table[table["estimate"].notna()]
    return pd.DataFrame({
        "miRNA": table["miRNA"], "coef": table["coef"], "estimate": table["estimate"] + 0.05,
        "se": table["sd"], "ci_low": table["estimate"] - 0.5, "ci_high": table["estimate"] + 0.5,
        "wald_p": np.where(table["miRNA"] == "mir-1", 0.001, 0.5),
        "lrt_p_mixture": np.where(table["miRNA"] == "mir-4", 0.001, 0.6),
        "converged": True, "singular": False,
    })


def test_report_is_self_contained_and_lists_every_mirna(fit, tmp_path):
    path = report(fit, tmp_path / "sub" / "run.html", top=2)
    assert path.is_file()
    parsed = parse(path)
    sources = [attrs.get("src", "") for _, attrs in parsed.tags] + [attrs.get("href", "") for _, attrs in parsed.tags]
    assert not [s for s in sources if s.startswith(("http://", "https://", "//"))]
    assert not [tag for tag, attrs in parsed.tags if tag in ("script", "link") and (attrs.get("src") or attrs.get("href"))]
    images = [attrs["src"] for tag, attrs in parsed.tags if tag == "img"]
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    html = path.read_text()
    diagnostics = html.split('id="diagnostics-table"')[1].split("</table>")[0]
    for name in NAMES:
        assert f"<td>{name}</td>" in diagnostics, name
    # worst first: the failed and the unconverged fit precede every converged one
    positions = {name: diagnostics.index(f"<td>{name}</td>") for name in NAMES}
    assert max(positions["bad-2"], positions["slow-3"]) < min(positions[m] for m in NAMES if m[0] == "m")
    assert "Bayesian vs frequentist" not in html
    assert "cannot fit this one" in html and "kept" in html  # failure message, filter report


def test_panels_for_top_and_flagged_only(fit, tmp_path):
    """top=2 -> the two largest effects (mir-6, mir-4, effect 3 and 2 with sd 0.25: lfsr ~ 0)
    plus both flagged fits; never mir-0 (effect 0) or mir-1."""
    html = report(fit, tmp_path / "run.html", top=2).read_text()
    panels = [chunk.split("</h3>")[0] for chunk in html.split('<div class="panel"')[1:]]
    names = {panel.split("<h3>")[1] for panel in panels}
    assert names == {"mir-6", "mir-4", "bad-2", "slow-3"}
    four_figures = html.split("<h3>mir-6</h3>")[1].split('<div class="panel"')[0]
    assert four_figures.count("<img") == 4  # rank plot, forest, PPC, slope SD vs prior


def test_frequentist_section_only_when_given(fit, tmp_path):
    html = report(fit, tmp_path / "run.html", frequentist=frequentist_table(fit), top=1).read_text()
    assert "Bayesian vs frequentist" in html
    section = html.split('id="disagreements"')[1].split("</table>")[0]
    assert "<td>mir-1</td>" in section  # significant by Wald only (Bayesian q of mir-1 ~ 0.5)
    with pytest.raises(InputError, match="missing column"):
        report(fit, tmp_path / "bad.html", frequentist=pd.DataFrame({"miRNA": ["mir-1"]}))


def test_disagreements_follow_the_calls():
    """Hand-made rows: DE called by Bayes only, slopes by the LRT only, one agreement."""

    class Fit:
        def mirna_table(self):
            return pd.DataFrame({"miRNA": ["a", "b"], "coef": "g", "estimate": [1.0, 0.0], "sd": 0.3,
                                 "ci_low": [0.5, -1], "ci_high": [1.5, 1], "lfsr": [0.001, 0.4],
                                 "qvalue": [0.001, 0.2], "converged": True})

        def slope_table(self):
            return pd.DataFrame({"miRNA": ["a", "b"], "sd_slope_median": [0.1, 0.1],
                                 "log_bayes_factor": [-1.0, 2.0], "converged": True})

    frequentist = pd.DataFrame({"miRNA": ["a", "b"], "coef": "g", "estimate": [1.0, 0.0], "se": 0.5,
                                "ci_low": 0, "ci_high": 1, "wald_p": [0.5, 0.9], "lrt_p_mixture": [0.01, 0.01],
                                "converged": True})
    table = disagreements(merged_table(Fit(), frequentist))
    got = set(zip(table["miRNA"], table["question"], table["bayesian"]))
    assert got == {("a", "differential expression", "yes"), ("a", "isomiR usage", "no")}


def test_no_figures_left_open(fit, tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    report(fit, tmp_path / "run.html", top=1)
    assert len(plt.get_fignums()) == before


def test_single_chain_fit_gets_density_plots(tmp_path):
    """Methods with one chain of independent draws (laplace, advi): posterior densities
    instead of rank plots, and the panel still has its four figures."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(METHODS, "fakefull", "test_report:FakeFullInference")
        one = fit_problems([simulate_problem(10, 4, seed=1, name="mir-5")], method="fakefull",
                           progress=False, chains=1)
    assert one.posteriors["mir-5"].posterior.sizes["chain"] == 1
    html = report(one, tmp_path / "one.html", top=1).read_text()
    assert html.split("<h3>mir-5</h3>")[1].count("<img") == 4
    assert 'class="error"' not in html


def test_bayesmir_report_stays_callable(fit, tmp_path):
    """`bayesmir.report` is the function on every access, also after the reporting package is imported."""
    import bayesmir
    import bayesmir.reporting.plots

    for _ in range(2):
        assert bayesmir.report(fit, tmp_path / "again.html", top=0).is_file()
