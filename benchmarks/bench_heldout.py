"""Held-out check of the defaults on a simulation that is not bayesmir's: ../shared/anchors/sim_monocyte_scale.

One ``bayesmir.fit`` with its defaults (robust normalisation, empirical-Bayes shrinkage; full and
reduced models, for the isomiR-usage Bayes factor) of the monocyte-scale simulation (120 miRNAs, 19 +
20 samples, 30 miRNAs with isomiR slopes; its README in ../shared/anchors), scored against the truth
beside glmer.nb's fits of the same data (miRglmm's model, lme4). The same fits are also scored with
``shrinkage=False`` (the shrinkage is a reweighting of the stored mixtures, so no refit is needed).

Per method: coverage of the 95% intervals (all; null miRNAs), null bias (mean estimate of the null
miRNAs), MSE, AUC and TPR at TNR >= 0.95 of ``|estimate| / sd`` (Wald ``|logFC| / SE`` for glmer.nb),
TPR/TNR of the DE call (bayesmir: ``qvalue < 0.05``; glmer.nb: BH q < 0.05 of the Wald p), and the
isomiR-usage call (bayesmir: log BF > log 3; glmer.nb: LRT p < 0.05) against the true slopes.

Run (repository root; ``BAYESMIR_SHARED`` if ``shared/`` is not beside it):
``PYTHONPATH=$PWD python benchmarks/bench_heldout.py`` -> ``results/heldout_monocyte.md``
and ``.csv``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from bench_calibration import machine, tpr_at_tnr

ROOT = Path(__file__).resolve().parents[1]
SIM = Path(os.environ.get("BAYESMIR_SHARED", ROOT.parent / "shared")) / "anchors" / "sim_monocyte_scale"
RESULTS = ROOT / "benchmarks" / "results"
COEF = "group[T.case]"


def scores(estimate, sd, low, high, de_call, usage_call, truth: pd.DataFrame) -> dict:
    """Calibration, ranking and call figures of one method (arrays aligned with ``truth``)."""
    de, slope = (truth["logFC"] != 0).to_numpy(), (truth["sd_slope"] > 0).to_numpy()
    logfc = truth["logFC"].to_numpy()
    covered = (low <= logfc) & (logfc <= high)
    score = np.abs(estimate) / sd
    auc = stats.mannwhitneyu(score[de], score[~de]).statistic / (de.sum() * (~de).sum())
    return {
        "coverage": float(covered.mean()), "coverage_null": float(covered[~de].mean()),
        "bias_null": float(estimate[~de].mean()), "bias_null_se": float(estimate[~de].std() / np.sqrt((~de).sum())),
        "mse": float(np.mean((estimate - logfc) ** 2)), "auc": float(auc), "tpr_at_tnr95": tpr_at_tnr(score, de),
        "de_tpr": float(de_call[de].mean()), "de_tnr": float((~de_call[~de]).mean()),
        "usage_true": int((usage_call & slope).sum()), "usage_false": int((usage_call & ~slope).sum()),
        "n_true_slopes": int(slope.sum()),
    }


def bayesmir_scores(fit, truth: pd.DataFrame) -> dict:
    from bayesmir import calls

    table = fit.mirna_table().query("coef == @COEF").set_index("miRNA").reindex(truth.index)
    slopes = fit.slope_table().set_index("miRNA").reindex(truth.index)
    usage = calls.usage_calls(slopes["log_bayes_factor"], slopes["converged"])
    de_call = calls.de_calls(table["qvalue"], table["converged"])
    return scores(table["estimate"].to_numpy(), table["sd"].to_numpy(), table["ci_low"].to_numpy(),
                  table["ci_high"].to_numpy(), np.asarray(de_call, dtype=bool), np.asarray(usage, dtype=bool), truth)


def glmer_scores(truth: pd.DataFrame) -> dict:
    """glmer.nb's fits; R's reference level is 'case', so its estimates are ctrl - case = -truth."""
    glmer = pd.read_csv(SIM / "lme4_glmer_nb.csv").set_index("miRNA").reindex(truth.index)
    p = glmer["wald_p"].fillna(1.0).to_numpy()
    order = np.argsort(p)
    q = np.empty_like(p)
    q[order] = np.minimum.accumulate((p[order] * len(p) / np.arange(1, len(p) + 1))[::-1])[::-1]
    return scores(-glmer["logFC"].to_numpy(), glmer["SE"].to_numpy(), -glmer["ci_high"].to_numpy(),
                  -glmer["ci_low"].to_numpy(), q < 0.05, (glmer["lrt_p"] < 0.05).to_numpy(), truth)


def main() -> None:
    import bayesmir
    from bayesmir.results import FitResult

    truth = pd.read_csv(SIM / "truth_mirna.csv").set_index("miRNA")
    data = bayesmir.read_counts(SIM / "counts_long.csv", samples=SIM / "samples.csv")
    load = os.getloadavg()
    start = time.perf_counter()
    fit = bayesmir.fit(data, reference={"group": "ctrl"}, progress=False)
    seconds = time.perf_counter() - start
    plain = FitResult(fit.posteriors, fit.diagnostics, fit.posteriors_reduced, fit.diagnostics_reduced,
                      fit.design, fit.mirna_info, {**fit.options, "shrinkage": False})
    rows = [{"method": "bayesmir defaults (shrinkage)", **bayesmir_scores(fit, truth), "seconds": round(seconds, 1)},
            {"method": "bayesmir shrinkage=False", **bayesmir_scores(plain, truth), "seconds": round(seconds, 1)},
            {"method": "glmer.nb (lme4, miRglmm model)", **glmer_scores(truth), "seconds": 853.0}]
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "heldout_monocyte.csv", index=False)
    lines = ["# Held-out check: sim_monocyte_scale (../shared/anchors), bayesmir defaults", "",
             "Command: `BAYESMIR_SHARED=/work/shared PYTHONPATH=$PWD python benchmarks/bench_heldout.py`", "",
             f"Machine: {machine()}; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", "",
             f"Shrinkage: {fit.options.get('shrinkage_note')}", "",
             ("Targets (defaults): coverage >= 0.93, |null bias| < 0.01, AUC >= glmer.nb's. `seconds`: bayesmir "
             "full + reduced fits of 120 miRNAs on one core; glmer.nb's from anchors/README.md. DE call: "
             "q < 0.05; usage: log BF > log 3 (bayesmir), LRT p < 0.05 (glmer.nb), of 30 true slopes."), "",
             "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    (RESULTS / "heldout_monocyte.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
