"""Simulated isomiR counts from the model's own NB GLMM, with the truth kept.

Per miRNA ``m``, sample ``i`` and isomiR ``j``::

    log mu_ij = log(D_i / 1e4) + beta0 + beta1 * x_i + tau_i + tau0_j + tau1_j * x_i
    C_ij ~ NB(mu_ij, theta)        (gamma-Poisson)

``x_i`` is 1 for the second level of ``groups`` and 0 for the reference (first)
level. The generating process follows the monocyte-scale benchmark of
``../shared/anchors/sim_monocyte_scale`` (after the miRglmm paper's protocol):

- sequencing depth ``D_i`` log-normal within ``library_size`` (the bounds are
  about the 2.5% and 97.5% quantiles, clipped to them);
- miRNA abundances heavy-tailed (log-normal shares of the library with sd
  ``ABUNDANCE_LOG_SD``), so a few miRNAs dominate as in monocytes; ``beta0`` is
  set so that the expected miRNA total is its share of ``D_i``;
- isomiR counts per miRNA geometric, clipped to ``n_isomirs``;
- differentially expressed miRNAs come in abundance-matched up/down pairs with
  the same size of fold change, the up miRNA's share ``exp(-logfc)`` times its
  partner's so the pair's expected total, hence the library size, does not move
  with the group (isomiR slopes still move a miRNA's total a little, as in data);
  fold change ``normal(2, 1)`` clipped to ``[1.05, 3]`` as in the paper, or
  ``|normal(0, beta_sd)|`` on the log scale when ``beta_sd`` is given;
  ``de_direction="up"`` instead makes every DE miRNA go up, unpaired, with the most
  abundant miRNA among them (the composition-stress scenario: the library size, and
  any offset that assumes a balanced change, moves with the group);
- a fraction ``frac_slope`` of miRNAs has isomiR-specific slopes ``tau1_j``
  with sd ``sd_slope`` (the others none); per-sample effects ``tau_i`` are drawn
  per miRNA with sd ``sd_sample``;
- ``theta`` fixed, or uniform per miRNA when ``dispersion`` is a ``(low, high)``
  pair (the benchmark used ``(5, 20)``).

The library size reported (``T_i``, the model's offset) is the total count of
the sample over all simulated isomiRs, as the readers compute it for real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmir.errors import InputError

ABUNDANCE_LOG_SD = 2.0
"""SD of the miRNAs' log library shares (heavy tail, as the monocyte benchmark)."""
GEOMETRIC_P = 0.25
"""Success probability of the geometric number of extra isomiRs per miRNA."""
FOLD_CHANGE_MEAN, FOLD_CHANGE_SD, FOLD_CHANGE_RANGE = 2.0, 1.0, (1.05, 3.0)
"""The miRglmm paper's fold-change protocol (used when ``beta_sd`` is None)."""
DE_DIRECTIONS = ("paired", "up")
"""``simulate(de_direction=...)``: balanced up/down pairs, or every DE miRNA up."""
SEQUENCE_LENGTHS = (18, 24)
NUCLEOTIDES = np.array(list("ACGT"))
"""DNA alphabet, as the readers normalise sequences (U -> T), so truth_isomir matches fitted isomiRs."""


@dataclass
class Simulation:
    """Simulated counts with the truth that generated them.

    Attributes
    ----------
    counts : pandas.DataFrame
        Long table ``miRNA, sequence, sample, count``; zero counts omitted.
    samples : pandas.DataFrame
        Indexed by sample, column ``group`` (first level of ``groups`` is the reference).
    library_size : pandas.Series
        ``T_i``: total count per sample over all isomiRs of all miRNAs.
    truth_mirna : pandas.DataFrame
        ``miRNA, logfc`` (natural log, second group vs reference), ``is_de, has_slope,
        sd_slope, n_isomirs, intercept`` (``beta0``), ``dispersion`` (``theta``), ``share``
        (expected fraction of the library).
    truth_isomir : pandas.DataFrame
        ``miRNA, sequence, logfc`` (``beta1 + tau1_j``), ``intercept`` (``tau0_j``).
    depth : pandas.Series
        ``D_i``, the depth used in the generating offset (``library_size`` is its
        realised counterpart).
    """

    counts: pd.DataFrame
    samples: pd.DataFrame
    library_size: pd.Series
    truth_mirna: pd.DataFrame
    truth_isomir: pd.DataFrame
    depth: pd.Series

    @property
    def reference(self) -> dict[str, str]:
        """Reference level of ``group`` for fitting (``build_design`` defaults to sorted order)."""
        return {"group": str(self.samples["group"].iloc[0])}

    def to_data(self):
        """The simulation as an :class:`~bayesmir.data.IsomirData`."""
        from bayesmir.data import IsomirData

        return IsomirData.from_long(
            self.counts, self.samples, library_size=self.library_size, source="<simulation>"
        )

    def __repr__(self) -> str:
        return (
            f"Simulation({len(self.truth_mirna)} miRNAs, {len(self.truth_isomir)} isomiRs, "
            f"{len(self.samples)} samples, {int(self.truth_mirna['is_de'].sum())} DE, "
            f"{int(self.truth_mirna['has_slope'].sum())} with slopes)"
        )


def simulate(
    n_mirnas: int = 20,
    n_samples: int = 12,
    n_isomirs: tuple[int, int] = (2, 12),
    groups: tuple[str, str] = ("ctrl", "case"),
    beta_sd: float | None = None,
    frac_de: float = 0.3,
    frac_slope: float = 0.3,
    sd_isomir: float = 1.0,
    sd_slope: float = 0.5,
    sd_sample: float = 0.2,
    dispersion: float | tuple[float, float] = 10.0,
    library_size: tuple[float, float] = (5e5, 2e6),
    de_direction: str = "paired",
    seed: int = 0,
) -> Simulation:
    """Simulate isomiR-level counts from the NB GLMM with known truth.

    Parameters
    ----------
    n_mirnas, n_samples : int
        Size of the data set; samples are split evenly between the groups.
    n_isomirs : (int, int)
        Smallest and largest number of isomiRs per miRNA (geometric in between).
    groups : (str, str)
        Group labels; the first is the reference.
    beta_sd : float, optional
        SD of the log fold changes of DE miRNAs (``|normal(0, beta_sd)|``); None
        uses the paper's fold change ``normal(2, 1)`` clipped to ``[1.05, 3]``.
    frac_de, frac_slope : float
        Fractions of miRNAs that are differentially expressed / have random slopes.
    sd_isomir, sd_slope, sd_sample : float
        SDs of isomiR intercepts, isomiR slopes and per-sample effects.
    dispersion : float or (float, float)
        NB ``theta`` (variance ``mu + mu^2 / theta``), or bounds of a uniform per miRNA.
    library_size : (float, float)
        Range of sequencing depths ``D_i``.
    de_direction : {"paired", "up"}
        ``"paired"``: DE miRNAs in abundance-matched up/down pairs (library size
        unmoved); ``"up"``: every DE miRNA up, the most abundant miRNA among them
        (composition stress).
    seed : int
        Seed of ``numpy.random.default_rng``; same seed, same data.

    Returns
    -------
    Simulation
    """
    _check_arguments(n_mirnas, n_samples, n_isomirs, groups, frac_de, frac_slope, library_size)
    if de_direction not in DE_DIRECTIONS:
        raise InputError(f"simulate: de_direction must be one of {DE_DIRECTIONS}, not {de_direction!r}")
    rng = np.random.default_rng(seed)
    samples = _samples(n_samples, groups)
    x = (samples["group"] == groups[1]).to_numpy(dtype=float)
    depth = pd.Series(_depths(rng, n_samples, library_size), index=samples.index, name="depth")
    mirnas = _mirna_truth(rng, n_mirnas, n_isomirs, beta_sd, frac_de, frac_slope, sd_slope, dispersion,
                          de_direction)
    counts, isomirs = [], []
    for row in mirnas.itertuples():
        table, truth, intercept = _one_mirna(rng, row, x, depth, samples.index, sd_isomir, sd_sample)
        counts.append(table)
        isomirs.append(truth)
        mirnas.loc[row.Index, "intercept"] = intercept
    long = pd.concat(counts, ignore_index=True)
    long = long[long["count"] > 0].reset_index(drop=True)
    totals = long.groupby("sample")["count"].sum().reindex(samples.index, fill_value=0)
    return Simulation(
        counts=long,
        samples=samples,
        library_size=totals.astype(float).rename("library_size"),
        truth_mirna=mirnas,
        truth_isomir=pd.concat(isomirs, ignore_index=True),
        depth=depth,
    )


def _check_arguments(n_mirnas, n_samples, n_isomirs, groups, frac_de, frac_slope, library_size):
    if n_mirnas < 1:
        raise InputError(f"simulate: n_mirnas must be at least 1, not {n_mirnas}")
    if len(groups) != 2 or groups[0] == groups[1]:
        raise InputError(f"simulate: groups must be two distinct labels, not {groups!r}")
    if n_samples < 4:
        raise InputError(f"simulate: n_samples must be at least 4 (2 per group), not {n_samples}")
    low, high = n_isomirs
    if not 1 <= low <= high:
        raise InputError(f"simulate: n_isomirs must be (low, high) with 1 <= low <= high, not {n_isomirs}")
    for name, value in (("frac_de", frac_de), ("frac_slope", frac_slope)):
        if not 0 <= value <= 1:
            raise InputError(f"simulate: {name} must be in [0, 1], not {value}")
    if not 0 < library_size[0] <= library_size[1]:
        raise InputError(f"simulate: library_size must be (low, high) with 0 < low <= high, not {library_size}")


def _samples(n_samples: int, groups: tuple[str, str]) -> pd.DataFrame:
    """Sample table: the first half (rounded down) in the reference group."""
    width = len(str(n_samples - 1))
    names = [f"S{i:0{width}d}" for i in range(n_samples)]
    labels = [groups[0] if i < n_samples // 2 else groups[1] for i in range(n_samples)]
    return pd.DataFrame({"group": labels}, index=pd.Index(names, name="sample"))


def _depths(rng: np.random.Generator, n_samples: int, bounds: tuple[float, float]) -> np.ndarray:
    """Log-normal depths with ``bounds`` about the 2.5%/97.5% quantiles, clipped to them."""
    low, high = np.log(bounds[0]), np.log(bounds[1])
    log_depth = rng.normal((low + high) / 2, max(high - low, 1e-12) / (2 * 1.96), size=n_samples)
    return np.exp(np.clip(log_depth, low, high))


def _mirna_truth(rng, n_mirnas, n_isomirs, beta_sd, frac_de, frac_slope, sd_slope, dispersion,
                 de_direction="paired"):
    """Per-miRNA truth: library share, isomiR count, fold change, slope SD, theta."""
    width = len(str(n_mirnas - 1))
    names = [f"sim-miR-{k:0{width}d}" for k in range(n_mirnas)]
    log_share = rng.normal(0.0, ABUNDANCE_LOG_SD, size=n_mirnas)
    share = np.exp(log_share - np.log(np.exp(log_share).sum()))
    low, high = n_isomirs
    sizes = low + np.minimum(rng.geometric(GEOMETRIC_P, size=n_mirnas) - 1, high - low)
    n_de = round(frac_de * n_mirnas)
    if de_direction == "up":
        logfc = _upward_fold_changes(rng, share, n_de, beta_sd)
    else:
        logfc, share = _paired_fold_changes(rng, share, n_de, beta_sd)
    has_slope = np.zeros(n_mirnas, dtype=bool)
    has_slope[rng.choice(n_mirnas, size=round(frac_slope * n_mirnas), replace=False)] = True
    if np.ndim(dispersion) == 0:
        theta = np.full(n_mirnas, float(dispersion))
    else:
        theta = rng.uniform(float(dispersion[0]), float(dispersion[1]), size=n_mirnas)
    return pd.DataFrame({
        "miRNA": names, "logfc": logfc, "is_de": logfc != 0, "has_slope": has_slope,
        "sd_slope": np.where(has_slope, sd_slope, 0.0), "n_isomirs": sizes.astype(int),
        "intercept": np.nan, "dispersion": theta, "share": share,
    })


def _fold_change_sizes(rng, n: int, beta_sd: float | None) -> np.ndarray:
    """``n`` absolute log fold changes: the paper's protocol, or ``|normal(0, beta_sd)|``."""
    if beta_sd is None:
        return np.log(np.clip(rng.normal(FOLD_CHANGE_MEAN, FOLD_CHANGE_SD, n), *FOLD_CHANGE_RANGE))
    return np.abs(rng.normal(0.0, beta_sd, n))


def _upward_fold_changes(rng, share: np.ndarray, n_de: int, beta_sd: float | None) -> np.ndarray:
    """Log fold changes of ``n_de`` miRNAs that all go up, the most abundant miRNA among them."""
    logfc = np.zeros(len(share))
    if n_de == 0:
        return logfc
    top = int(np.argmax(share))
    others = rng.choice(np.delete(np.arange(len(share)), top), size=n_de - 1, replace=False)
    logfc[np.r_[top, others]] = _fold_change_sizes(rng, n_de, beta_sd)
    return logfc


def _paired_fold_changes(rng, share: np.ndarray, n_de: int, beta_sd: float | None):
    """Log fold changes of DE miRNAs in abundance-matched up/down pairs, and adjusted shares.

    Pairs are neighbours in abundance and share the size ``delta`` of their fold change.
    The up miRNA's share is set to ``exp(-delta)`` times its partner's, so that the pair's
    expected total is the same in both groups and the library size does not move with the
    group (no composition bias in a ``log(T)`` offset). With an odd number of DE miRNAs the
    least abundant one has no partner.
    """
    logfc, share = np.zeros(len(share)), share.copy()
    if n_de == 0:
        return logfc, share
    chosen = rng.choice(len(share), size=n_de, replace=False)
    chosen = chosen[np.argsort(-share[chosen], kind="stable")]
    n_pairs = (n_de + 1) // 2
    size = _fold_change_sizes(rng, n_pairs, beta_sd)
    signs = rng.permuted(np.tile([1.0, -1.0], (n_pairs, 1)), axis=1).ravel()[:n_de]
    logfc[chosen] = np.repeat(size, 2)[:n_de] * signs
    for first, second in zip(chosen[0::2], chosen[1::2]):
        up, down = (first, second) if logfc[first] > 0 else (second, first)
        share[up] = share[down] * np.exp(-logfc[up])
    return logfc, share / share.sum()


def _one_mirna(rng, row, x, depth, sample_names, sd_isomir, sd_sample):
    """Counts (long, zeros kept), isomiR truth and ``beta0`` of one miRNA."""
    n_iso = int(row.n_isomirs)
    tau0 = rng.normal(0.0, sd_isomir, size=n_iso)
    tau1 = rng.normal(0.0, row.sd_slope, size=n_iso) if row.has_slope else np.zeros(n_iso)
    tau_sample = rng.normal(0.0, sd_sample, size=len(x))
    # expected miRNA total at the reference = its share of the depth
    beta0 = np.log(1e4 * row.share) - np.log(np.exp(tau0).sum())
    log_mu = (np.log(depth.to_numpy() / 1e4) + beta0 + row.logfc * x + tau_sample)[:, None] \
        + tau0[None, :] + np.outer(x, tau1)
    mu = np.exp(log_mu)
    theta = row.dispersion
    count = rng.poisson(rng.gamma(theta, mu / theta))
    sequences = _sequences(rng, n_iso)
    table = pd.DataFrame({
        "miRNA": row.miRNA,
        "sequence": np.tile(sequences, len(x)),
        "sample": np.repeat(np.asarray(sample_names), n_iso),
        "count": count.ravel().astype(np.int64),
    })
    truth = pd.DataFrame({
        "miRNA": row.miRNA, "sequence": sequences, "logfc": row.logfc + tau1, "intercept": tau0,
    })
    return table, truth, float(beta0)


def _sequences(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct random RNA strings of length 18-24."""
    found: list[str] = []
    while len(found) < n:
        length = int(rng.integers(SEQUENCE_LENGTHS[0], SEQUENCE_LENGTHS[1] + 1))
        sequence = "".join(rng.choice(NUCLEOTIDES, size=length))
        if sequence not in found:
            found.append(sequence)
    return found
