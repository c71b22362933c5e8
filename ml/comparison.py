"""Champion against challenger on the same rows, with statistics: is the gain real?

Both models score the same holdout rows, so their errors are paired: the test is on the per-row
pairing, not on two independent scores (which would need far more rows to see the same gain).

- **F1 at the business threshold** (a default is predicted when ``prob > deny_above``): a paired
  bootstrap of the difference challenger − champion. Each of ``resamples`` draws takes n rows with
  replacement (the same rows for both models) and computes both F1s on them; the interval is the
  percentile interval of the differences. The draws come from ``numpy.random.default_rng(seed)``,
  so the same inputs give the same interval, bit for bit.
- **ROC-AUC**: DeLong's test for two correlated ROC curves (DeLong, DeLong & Clarke-Pearson 1988,
  in Sun & Xu's O(n log n) form): the variance of the AUC difference from the placement values of
  both models on the same positives and negatives; a normal interval. No resampling, no seed.

:func:`compare` returns a :class:`PairedComparison`; :func:`smallest_detectable_f1_gain` says
how large a true F1 gain the holdout can see (the interval's half-width: a gain smaller than that
cannot put the lower bound above zero).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.stats import rankdata

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 2026
DEFAULT_CONFIDENCE = 0.95
_CHUNK = 250  # resamples per block: bounds memory to _CHUNK x n indices


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided interval at ``confidence``."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


@dataclass(frozen=True)
class PairedComparison:
    """Champion and challenger scored on the same ``rows`` rows."""

    rows: int
    positives: int
    confidence: float
    seed: int
    resamples: int
    champion_f1: float
    challenger_f1: float
    f1_gain: Interval
    """challenger − champion F1 at the threshold, paired bootstrap percentile interval."""
    champion_auc: float
    challenger_auc: float
    auc_gain: Interval
    """challenger − champion ROC-AUC, DeLong interval."""
    auc_gain_p_value: float
    """DeLong's two-sided p-value of 'equal AUCs'."""
    champion_brier: float
    challenger_brier: float
    brier_gain: Interval
    """champion − challenger Brier score (positive: the challenger is closer to the outcomes),
    paired bootstrap percentile interval (the same draws as the F1 gain's)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros(tp.shape, float), where=denominator > 0)


def f1_at(y: np.ndarray, prob: np.ndarray, deny_above: float) -> float:
    """F1 of the default class when ``prob > deny_above`` predicts a default (0 when undefined)."""
    y = np.asarray(y).astype(bool)
    predicted = np.asarray(prob, dtype=float) > deny_above
    tp = np.array([np.sum(y & predicted)], float)
    fp = np.array([np.sum(~y & predicted)], float)
    fn = np.array([np.sum(y & ~predicted)], float)
    return float(_f1_from_counts(tp, fp, fn)[0])


def paired_bootstrap(
    y: np.ndarray,
    champion_prob: np.ndarray,
    challenger_prob: np.ndarray,
    deny_above: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """``resamples`` paired bootstrap replicates of (F1 gain, Brier gain) of the challenger:
    F1(challenger) − F1(champion) at the threshold, and Brier(champion) − Brier(challenger)
    (positive: the challenger's probabilities are closer to the outcomes). Each draw takes the
    same rows for both models."""
    y = np.asarray(y).astype(bool)
    pa = np.asarray(champion_prob, dtype=float)
    pb = np.asarray(challenger_prob, dtype=float)
    a, b = pa > deny_above, pb > deny_above
    n = y.size
    # per-row contributions: (tp, fp, fn) of each model and the Brier difference; a draw's
    # values are sums over its rows
    rows = np.stack(
        [y & a, ~y & a, y & ~a, y & b, ~y & b, y & ~b, (pa - y) ** 2 - (pb - y) ** 2], axis=1
    ).astype(float)
    rng = np.random.default_rng(seed)
    f1_gain, brier_gain = np.empty(resamples, float), np.empty(resamples, float)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        sums = rows[rng.integers(0, n, size=(size, n))].sum(axis=1)
        block = slice(start, start + size)
        f1_gain[block] = _f1_from_counts(sums[:, 3], sums[:, 4], sums[:, 5]) - _f1_from_counts(
            sums[:, 0], sums[:, 1], sums[:, 2]
        )
        brier_gain[block] = sums[:, 6] / n
    return f1_gain, brier_gain


def delong(
    y: np.ndarray, champion_prob: np.ndarray, challenger_prob: np.ndarray
) -> tuple[float, float, float, float]:
    """(champion AUC, challenger AUC, standard error of their difference, two-sided p-value).

    Sun & Xu (2014), "Fast implementation of DeLong's algorithm for comparing the areas under
    correlated receiver operating characteristic curves", IEEE SPL 21(11).
    """
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong's test needs both classes on the holdout")
    scores = np.stack([np.asarray(champion_prob, float), np.asarray(challenger_prob, float)])
    positives, negatives = scores[:, y], scores[:, ~y]
    tx = np.stack([rankdata(row) for row in positives])
    ty = np.stack([rankdata(row) for row in negatives])
    tz = np.stack([rankdata(row) for row in np.concatenate([positives, negatives], axis=1)])
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    covariance = np.cov(v01) / m + np.cov(v10) / n
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    se = float(np.sqrt(max(variance, 0.0)))
    diff = float(aucs[1] - aucs[0])
    if se == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
    else:
        p = 2.0 * (1.0 - NormalDist().cdf(abs(diff) / se))
    return float(aucs[0]), float(aucs[1]), se, p


def compare(
    y: np.ndarray,
    champion_prob: np.ndarray,
    challenger_prob: np.ndarray,
    deny_above: float,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedComparison:
    """The paired comparison of two models' default probabilities on the same rows ``y``."""
    y = np.asarray(y).astype(int)
    if not (len(y) == len(champion_prob) == len(challenger_prob)):
        raise ValueError("champion, challenger and labels must be row-aligned")
    if resamples < 1000:
        raise ValueError(f"a bootstrap of the F1 gain needs >= 1,000 resamples, got {resamples}")
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    champion_f1 = f1_at(y, champion_prob, deny_above)
    challenger_f1 = f1_at(y, challenger_prob, deny_above)
    f1_draws, brier_draws = paired_bootstrap(
        y, champion_prob, challenger_prob, deny_above, resamples, seed
    )
    low, high = np.quantile(f1_draws, [tail, 1.0 - tail])
    brier_low, brier_high = np.quantile(brier_draws, [tail, 1.0 - tail])
    champion_brier = float(np.mean((np.asarray(champion_prob, float) - y) ** 2))
    challenger_brier = float(np.mean((np.asarray(challenger_prob, float) - y) ** 2))
    champion_auc, challenger_auc, se, p = delong(y, champion_prob, challenger_prob)
    z = NormalDist().inv_cdf(1.0 - tail)
    auc_diff = challenger_auc - champion_auc
    return PairedComparison(
        rows=int(len(y)),
        positives=int(y.sum()),
        confidence=confidence,
        seed=seed,
        resamples=resamples,
        champion_f1=champion_f1,
        challenger_f1=challenger_f1,
        f1_gain=Interval(challenger_f1 - champion_f1, float(low), float(high)),
        champion_auc=champion_auc,
        challenger_auc=challenger_auc,
        auc_gain=Interval(auc_diff, auc_diff - z * se, auc_diff + z * se),
        auc_gain_p_value=p,
        champion_brier=champion_brier,
        challenger_brier=challenger_brier,
        brier_gain=Interval(champion_brier - challenger_brier, float(brier_low), float(brier_high)),
    )


def smallest_detectable_f1_gain(comparison: PairedComparison, margin: float = 0.0) -> float:
    """The smallest observed F1 gain whose interval's lower bound would clear ``margin`` on this
    holdout: ``margin`` + the interval's lower half-width (the bootstrap's spread does not depend
    much on where its centre lies)."""
    gain = comparison.f1_gain
    return margin + (gain.estimate - gain.low)
