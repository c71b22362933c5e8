"""Evaluation of default probabilities: business decisions, metrics, segments and plots.

Pure functions: arrays and frames in, numbers, frames and matplotlib figures out.

The decision thresholds are arguments with the business defaults :data:`APPROVE_BELOW` and
:data:`DENY_ABOVE`; callers pass the configured values (``SAFRA_APPROVE_BELOW`` /
``SAFRA_DENY_ABOVE`` once the settings carry them).

"F1 at the business threshold" (DOMAIN.md) is the F1 of the default class when every application
whose probability is strictly above ``deny_above`` is predicted as a default.

The **expected calibration error** (:func:`expected_calibration_error`) is read off
:func:`calibration_table`: the rows sorted by predicted probability are cut into ``n_bins``
equal-frequency bins (:data:`CALIBRATION_BINS`), and ECE is the row-weighted mean over the bins of
|mean predicted probability − realized default rate|. Equal-frequency bins keep every bin's
realized rate equally noisy (fixed-width bins would leave the few high-risk rows in near-empty
bins). On a holdout of 3,000 rows a perfectly calibrated model still shows an ECE of about 0.01:
each bin's realized rate is a sample.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

logger = logging.getLogger(__name__)

APPROVE_BELOW = 0.10
"""Default: a probability of default strictly below this is approved."""
DENY_ABOVE = 0.30
"""Default: a probability of default strictly above this is denied (and counts as a predicted
default for F1 at the business threshold)."""

Decision = Literal["APPROVE", "MANUAL_REVIEW", "DENY"]
DECISIONS: tuple[Decision, ...] = ("APPROVE", "MANUAL_REVIEW", "DENY")
SEGMENTS: tuple[str, ...] = ("regiao", "tipo_pessoa", "cultura_principal")
CALIBRATION_BINS = 10
"""Equal-frequency bins of :func:`calibration_table` and :func:`expected_calibration_error`."""


def _check_thresholds(approve_below: float, deny_above: float) -> None:
    if not 0.0 <= approve_below <= deny_above <= 1.0:
        raise ValueError(
            f"need 0 <= approve_below <= deny_above <= 1, got {approve_below}, {deny_above}"
        )


def decide(
    prob: float, approve_below: float = APPROVE_BELOW, deny_above: float = DENY_ABOVE
) -> Decision:
    """APPROVE when ``prob < approve_below``, DENY when ``prob > deny_above``, else MANUAL_REVIEW.

    Both boundaries themselves go to MANUAL_REVIEW (a human looks at the edge cases).
    """
    _check_thresholds(approve_below, deny_above)
    p = float(prob)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a probability must lie in [0, 1], got {prob}")
    if p < approve_below:
        return "APPROVE"
    if p > deny_above:
        return "DENY"
    return "MANUAL_REVIEW"


def decide_many(
    prob: np.ndarray | Sequence[float],
    approve_below: float = APPROVE_BELOW,
    deny_above: float = DENY_ABOVE,
) -> np.ndarray:
    """:func:`decide` for an array of probabilities (same rules, vectorized)."""
    _check_thresholds(approve_below, deny_above)
    p = np.asarray(prob, dtype=float)
    return np.where(p < approve_below, "APPROVE", np.where(p > deny_above, "DENY", "MANUAL_REVIEW"))


def ks_statistic(y_true: np.ndarray | Sequence[int], prob: np.ndarray | Sequence[float]) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score CDFs of defaults and non-defaults
    (= max over thresholds of TPR − FPR). NaN with one class only."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(y, np.asarray(prob, dtype=float))
    return float(np.max(tpr - fpr))


def calibration_table(
    y_true: np.ndarray | Sequence[int] | pd.Series,
    prob: np.ndarray | Sequence[float] | pd.Series,
    n_bins: int = CALIBRATION_BINS,
) -> pd.DataFrame:
    """The calibration curve: one row per equal-frequency bin of predicted probability.

    The rows, sorted by ``prob`` (stable: ties keep their input order), are cut into ``n_bins``
    contiguous bins whose sizes differ by at most one (the first bins take the extra rows; fewer
    bins when there are fewer rows). Columns: ``bin`` (0 = lowest probabilities), ``count``,
    ``mean_predicted``, ``realized_rate`` (share of defaults), ``gap`` (their absolute
    difference).
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and prob {p.shape} differ in shape")
    if y.size == 0:
        raise ValueError("no rows to evaluate")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    order = np.argsort(p, kind="stable")
    bins = [rows for rows in np.array_split(order, min(n_bins, y.size)) if rows.size]
    predicted = np.array([p[rows].mean() for rows in bins])
    realized = np.array([y[rows].mean() for rows in bins])
    return pd.DataFrame(
        {
            "bin": np.arange(len(bins)),
            "count": np.array([rows.size for rows in bins]),
            "mean_predicted": predicted,
            "realized_rate": realized,
            "gap": np.abs(predicted - realized),
        }
    )


def expected_calibration_error(
    y_true: np.ndarray | Sequence[int] | pd.Series,
    prob: np.ndarray | Sequence[float] | pd.Series,
    n_bins: int = CALIBRATION_BINS,
) -> float:
    """ECE: the row-weighted mean, over :func:`calibration_table`'s equal-frequency bins, of
    |mean predicted probability − realized default rate|. 0 is perfect; with one bin it is the
    calibration gap |mean prob − observed rate|."""
    return _weighted_gap(calibration_table(y_true, prob, n_bins))


def _weighted_gap(table: pd.DataFrame) -> float:
    return float(np.sum(table["count"] * table["gap"]) / table["count"].sum())


def metrics(
    y_true: np.ndarray | Sequence[int] | pd.Series,
    prob: np.ndarray | Sequence[float] | pd.Series,
    deny_above: float = DENY_ABOVE,
    approve_below: float = APPROVE_BELOW,
) -> dict[str, float]:
    """Classification and calibration metrics of default probabilities ``prob``.

    ``f1_at_threshold`` (with ``precision_at_threshold`` / ``recall_at_threshold``) predicts a
    default when ``prob > deny_above``; ``roc_auc``, ``pr_auc`` (average precision) and ``ks`` are
    NaN when ``y_true`` holds one class; ``calibration_gap`` = |mean prob − observed rate|; ``ece``
    the expected calibration error (:func:`expected_calibration_error`, :data:`CALIBRATION_BINS`
    equal-frequency bins); the ``share_*`` entries are the decision mix.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and prob {p.shape} differ in shape")
    if y.size == 0:
        raise ValueError("no rows to evaluate")
    predicted = (p > deny_above).astype(int)
    two_classes = 0 < y.sum() < y.size
    decisions = decide_many(p, approve_below, deny_above)
    out = {
        "n": float(y.size),
        "f1_at_threshold": float(f1_score(y, predicted, zero_division=0.0)),
        "precision_at_threshold": float(precision_score(y, predicted, zero_division=0.0)),
        "recall_at_threshold": float(recall_score(y, predicted, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ks": ks_statistic(y, p),
        "mean_prob": float(p.mean()),
        "observed_rate": float(y.mean()),
        "calibration_gap": float(abs(p.mean() - y.mean())),
        "ece": expected_calibration_error(y, p),
    }
    for decision in DECISIONS:
        out[f"share_{decision.lower()}"] = float(np.mean(decisions == decision))
    return out


def segment_metrics(
    df: pd.DataFrame,
    y: np.ndarray | Sequence[int] | pd.Series,
    prob: np.ndarray | Sequence[float] | pd.Series,
    segments: Sequence[str] = SEGMENTS,
    deny_above: float = DENY_ABOVE,
) -> pd.DataFrame:
    """One row per (segment column, value): n, positives, roc_auc, f1_at_threshold, mean_prob,
    observed_rate. ``df`` is row-aligned with ``y`` and ``prob`` (for example the output of
    :func:`ml.features.model_inputs`); missing values form the segment value ``"<missing>"``."""
    yy = np.asarray(y).astype(int)
    pp = np.asarray(prob, dtype=float)
    if not len(df) == len(yy) == len(pp):
        raise ValueError(f"df ({len(df)}), y ({len(yy)}) and prob ({len(pp)}) differ in length")
    rows = []
    for column in segments:
        if column not in df.columns:
            raise ValueError(f"segment column {column!r} not in df")
        keys = df[column].astype(object).where(df[column].notna(), "<missing>").astype(str)
        for value in sorted(keys.unique()):
            mask = (keys == value).to_numpy()
            m = metrics(yy[mask], pp[mask], deny_above=deny_above)
            rows.append(
                {
                    "segment": column,
                    "value": value,
                    "n": int(mask.sum()),
                    "positives": int(yy[mask].sum()),
                    "roc_auc": m["roc_auc"],
                    "f1_at_threshold": m["f1_at_threshold"],
                    "mean_prob": m["mean_prob"],
                    "observed_rate": m["observed_rate"],
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "segment",
            "value",
            "n",
            "positives",
            "roc_auc",
            "f1_at_threshold",
            "mean_prob",
            "observed_rate",
        ],
    )


def roc_figure(y_true: np.ndarray | pd.Series, prob: np.ndarray | pd.Series) -> Figure:
    """ROC curve with its AUC and KS."""
    y = np.asarray(y_true).astype(int)
    fpr, tpr, _ = roc_curve(y, np.asarray(prob, dtype=float))
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, prob):.3f}, KS {ks_statistic(y, prob):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    return fig


def calibration_figure(
    y_true: np.ndarray | pd.Series, prob: np.ndarray | pd.Series, n_bins: int = CALIBRATION_BINS
) -> Figure:
    """Reliability diagram: realized default rate against mean probability per bin of
    :func:`calibration_table` (the bins ECE is computed on), ECE in the legend."""
    table = calibration_table(y_true, prob, n_bins)
    ece = _weighted_gap(table)
    predicted, observed = table["mean_predicted"], table["realized_rate"]
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(predicted, observed, marker="o", label=f"model (ECE {ece:.4f}, {len(table)} bins)")
    top = max(float(np.max(predicted)), float(np.max(observed)), 0.05)
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="realized default rate", title="Calibration")
    ax.legend(loc="upper left")
    return fig


def confusion_figure(
    y_true: np.ndarray | pd.Series, prob: np.ndarray | pd.Series, deny_above: float = DENY_ABOVE
) -> Figure:
    """Confusion matrix at the business threshold (default predicted when prob > deny_above)."""
    y = np.asarray(y_true).astype(int)
    predicted = (np.asarray(prob, dtype=float) > deny_above).astype(int)
    cm = confusion_matrix(y, predicted, labels=[0, 1])
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{count:,}", ha="center", va="center")
    ax.set_xticks([0, 1], ["paid", "default"])
    ax.set_yticks([0, 1], ["paid", "default"])
    ax.set(xlabel="predicted", ylabel="actual", title=f"Confusion at prob > {deny_above:.2f}")
    return fig
