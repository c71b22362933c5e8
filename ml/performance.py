"""Realized performance of the champion on matured outcomes — the pure computation.

A default is known 120 to 365 days after the application (a repayment 60 to 365): until an
application is ``maturity_days`` old (``SAFRA_LABEL_MATURITY_DAYS``, 365), the outcomes that have
arrived are mostly repayments, and counting the applications without one (or the early
repayments) as negatives would show a default rate far too low. So:

- **matured** rows are the applications at least ``maturity_days`` old at ``as_of``; the
  **matured window** is the ``window_days`` of applications before that cutoff;
- a matured row counts only with its outcome known at ``as_of`` (``data_desfecho`` ≤ ``as_of``);
  a matured row without one is counted apart (``matured_without_outcome``), never as a negative;
- a row younger than maturity is never counted, whatever its outcome (``unmatured`` /
  ``unmatured_with_outcome`` are reported, nothing more).

On the matured rows: ROC-AUC (with its Hanley–McNeil standard error), KS, Brier, mean predicted
probability against the realized default rate, overall, by score band and by segment
(:mod:`ml.segments`).

**The alarm rule**, with a false-alarm probability ≤ ``alpha`` per check when the champion is as
good as tolerated:

- AUC: realized AUC *significantly* below ``reference_auc − max_auc_drop`` (the champion's
  holdout AUC at training, minus the tolerated drop): one-sided z test with the Hanley–McNeil
  standard error, H0 "true AUC ≥ the bound";
- calibration, overall and per judged score band and segment: the realized default rate
  differs from the mean predicted probability p̄ by *significantly* more than the tolerance
  ``max(max_calibration_gap, max_relative_gap · p̄)``: one-sided z test of |gap| − tolerance
  with the binomial standard error √Σp(1−p) / n under the champion's own probabilities, H0
  "|true gap| ≤ tolerance". The relative part is for the riskiest band: a model fitted on
  baseline data predicts 0.67 where 0.56 default in its riskiest band (bench), a real but
  harmless miscalibration an absolute 0.03 would flag on every check; at the portfolio's ~12 %
  the absolute 0.03 is the larger;
- every test of the check forms one family, corrected with Holm's step-down method: the
  probability that any test fires when none should is ≤ ``alpha`` however many segments there
  are. Segments are :mod:`ml.segments`' families. A segment or band with fewer than
  ``min_segment_rows`` matured rows is **not judged** (reported with its size), never fine or
  failed; with fewer than ``min_rows`` (or one class only) the population is not judged
  either.

Why tests against a tolerance band rather than thresholds on the raw figures: on 2,000 matured
rows the realized AUC moves ±0.02 and a default rate of 12 % ±0.015 by chance alone, so a raw
threshold either alarms on noise or is set too wide to see a segment go wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from ml.evaluate import ks_statistic
from ml.features import REGION_BY_UF
from ml.segment_drift import holm as holm_adjusted
from ml.segments import FAMILIES, segment_labels

LABEL = "inadimplente"
PREDICTION = "prob_default"
APPLIED_AT = "data_solicitacao"
OUTCOME_AT = "data_desfecho"
SCORE_BAND = "faixa_score"
SEGMENTED_BY: tuple[str, ...] = tuple(f for f in FAMILIES if f != SCORE_BAND)
"""Segment families judged for calibration (:mod:`ml.segments`, shared with the drift check;
the score band has its own table). UF × crop matters: a shock to one crop in a few states (the
``drought``) is diluted in every single-column segment."""
MISSING = "<missing>"
"""The segment value of a row whose field is missing."""


@dataclass(frozen=True)
class Bounds:
    """What the check tolerates and how surely it must see a breach (the settings'
    ``performance_*``)."""

    max_auc_drop: float = 0.05
    max_calibration_gap: float = 0.03
    max_relative_gap: float = 0.25
    alpha: float = 0.01
    min_rows: int = 500
    min_segment_rows: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if min(self.max_auc_drop, self.max_calibration_gap, self.max_relative_gap) < 0:
            raise ValueError("max_auc_drop, max_calibration_gap, max_relative_gap must be ≥ 0")
        if self.min_rows < 1 or self.min_segment_rows < 1:
            raise ValueError("min_rows and min_segment_rows must be ≥ 1")


@dataclass
class PerformanceResult:
    """One realized-performance check of one source (:func:`evaluate_performance`)."""

    as_of: datetime
    window_start: datetime | None
    window_end: datetime
    """Applications before this (``as_of − maturity_days``) are matured."""
    maturity_days: int
    rows: dict[str, int]
    judged: bool
    """Whether the population had enough matured rows (both classes) to be judged."""
    message: str
    metrics: dict[str, float] = field(default_factory=dict)
    reference_auc: float | None = None
    auc_bound: float | None = None
    score_bands: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)
    """Every test of the Holm family: name, statistic, p-value, adjusted p-value, rejected."""
    alarm: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def matured(self) -> bool:
        """Whether any matured application had its outcome."""
        return self.rows.get("labelled", 0) > 0

    @property
    def not_judged(self) -> list[dict[str, Any]]:
        """Score bands and segments too small to judge, with their size."""
        return [
            {"segment": r["segment"], "value": r["value"], "n": r["n"]}
            for r in self.score_bands + self.segments
            if r["status"] == "not_judged"
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "alarm": self.alarm,
            "matured": self.matured,
            "judged": self.judged,
            "message": self.message,
            "reasons": list(self.reasons),
            "as_of": self.as_of.isoformat(),
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat(),
            "maturity_days": self.maturity_days,
            "rows": dict(self.rows),
            "metrics": {k: _round(v) for k, v in self.metrics.items()},
            "reference_auc": _round(self.reference_auc),
            "auc_bound": _round(self.auc_bound),
            "score_bands": [_rounded(r) for r in self.score_bands],
            "segments": [_rounded(r) for r in self.segments],
            "not_judged": self.not_judged,
            "tests": [_rounded(t) for t in self.tests],
        }


def _round(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else round(float(value), 6)
    return value


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _round(v) for k, v in row.items()}


def _utc(moment: Any) -> datetime:
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _timestamps(values: pd.Series) -> pd.Series:
    """``values`` as UTC timestamps (naive ones taken as UTC)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    return pd.to_datetime(values, utc=True, cache=False)


def _segments(data: pd.DataFrame, prob: np.ndarray) -> pd.DataFrame:
    """Every family of :mod:`ml.segments` for each row (:data:`MISSING` where unknown); the
    region from the UF when the frame has none."""
    frame = data.assign(**{PREDICTION: prob})
    if "regiao" not in frame.columns and "uf" in frame.columns:
        frame["regiao"] = [REGION_BY_UF.get(str(u).strip().upper()) for u in frame["uf"]]
    labels = segment_labels(frame)
    for family in FAMILIES:
        labels[family] = (
            labels[family].astype(object).where(labels[family].notna(), MISSING)
            if family in labels.columns
            else MISSING
        )
    return labels


def hanley_mcneil_se(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an ROC-AUC from ``positives`` and ``negatives`` (Hanley & McNeil,
    1982); NaN without both classes."""
    if positives < 1 or negatives < 1 or not math.isfinite(auc):
        return float("nan")
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (ties count half); NaN with one class."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(p).rank(method="average").to_numpy()
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def holm(p_values: Sequence[float], alpha: float) -> tuple[list[float], list[bool]]:
    """Holm's step-down correction (:func:`ml.segment_drift.holm`): (adjusted p-values,
    rejected) in the input order."""
    adjusted = [float(a) for a in holm_adjusted(p_values)]
    return adjusted, [a <= alpha for a in adjusted]


def _calibration_row(
    segment: str, value: str, y: np.ndarray, p: np.ndarray, bounds: Bounds
) -> dict[str, Any]:
    """n, defaults, mean predicted, realized rate, the gap (realized − predicted), its
    tolerance, and, when judged, the z statistic and p-value of |gap| beyond the tolerance."""
    n = len(y)
    row: dict[str, Any] = {"segment": segment, "value": value, "n": n, "defaults": int(y.sum())}
    if n == 0:
        return {**row, "status": "not_judged"}
    predicted, realized = float(p.mean()), float(y.mean())
    tolerance = max(bounds.max_calibration_gap, bounds.max_relative_gap * predicted)
    row.update(
        mean_prob=predicted, observed_rate=realized, gap=realized - predicted, tolerance=tolerance
    )
    if n < bounds.min_segment_rows:
        return {**row, "status": "not_judged"}
    se = math.sqrt(float(np.sum(p * (1 - p)))) / n
    z = (abs(realized - predicted) - tolerance) / se if se > 0 else math.inf
    return {**row, "status": "judged", "z": z, "p_value": float(norm.sf(z))}


def evaluate_performance(
    frame: pd.DataFrame,
    *,
    as_of: datetime,
    maturity_days: int,
    bounds: Bounds,
    window_days: int | None = None,
    reference_auc: float | None = None,
) -> PerformanceResult:
    """The realized performance of the probabilities in ``frame`` on its matured outcomes.

    ``frame``: one row per scored application: ``data_solicitacao``, ``prob_default``,
    ``inadimplente`` (True / False; None or NaN when no outcome has arrived) and, optionally,
    ``data_desfecho`` (when the outcome became known: later than ``as_of`` means not yet) and
    the fields :func:`ml.segments.add_segments` reads. ``reference_auc``: the champion's holdout
    AUC (no AUC test without it). Pure; see the module docstring for the rule.
    """
    as_of = _utc(as_of)
    window_end = as_of - timedelta(days=maturity_days)
    window_start = window_end - timedelta(days=window_days) if window_days else None
    applied = _timestamps(frame[APPLIED_AT])
    outcome = frame[LABEL].astype(object).where(frame[LABEL].notna(), None)
    known = outcome.notna().to_numpy()
    if OUTCOME_AT in frame.columns:
        arrived = _timestamps(frame[OUTCOME_AT])
        known &= (arrived.isna() | (arrived <= pd.Timestamp(as_of))).to_numpy()
    up_to_now = (applied <= pd.Timestamp(as_of)).to_numpy()
    matured = (applied < pd.Timestamp(window_end)).to_numpy()
    if window_start is not None:
        matured &= (applied >= pd.Timestamp(window_start)).to_numpy()
    unmatured = up_to_now & (applied >= pd.Timestamp(window_end)).to_numpy()
    labelled = matured & known
    rows = {
        "matured": int(matured.sum()),
        "labelled": int(labelled.sum()),
        "matured_without_outcome": int((matured & ~known).sum()),
        "unmatured": int(unmatured.sum()),
        "unmatured_with_outcome": int((unmatured & known).sum()),
    }
    result = PerformanceResult(
        as_of=as_of, window_start=window_start, window_end=window_end,
        maturity_days=maturity_days, rows=rows, judged=False, message="",
        reference_auc=reference_auc,
    )  # fmt: skip
    if rows["labelled"] == 0:
        when = f"{window_start:%Y-%m-%d} .. " if window_start else "before "
        result.message = (
            f"no matured outcomes yet: no application of {when}{window_end:%Y-%m-%d} (at least "
            f"{maturity_days} days old at {as_of:%Y-%m-%d}) has its outcome; "
            f"{rows['unmatured']} younger applications ({rows['unmatured_with_outcome']} with an "
            "early outcome) are not judged before maturity"
        )
        return result

    data = frame.loc[labelled].reset_index(drop=True)
    y = np.array([bool(v) for v in outcome[labelled]], dtype=bool)
    p = pd.to_numeric(data[PREDICTION], errors="coerce").to_numpy(dtype="float64")
    if np.isnan(p).any():
        raise ValueError(f"{int(np.isnan(p).sum())} matured rows have no {PREDICTION}")
    positives = int(y.sum())
    auc = roc_auc(y, p)
    result.metrics = {
        "n": float(len(y)),
        "defaults": float(positives),
        "roc_auc": auc,
        "roc_auc_se": hanley_mcneil_se(auc, positives, len(y) - positives),
        "ks": ks_statistic(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "mean_prob": float(p.mean()),
        "observed_rate": float(y.mean()),
        "calibration_gap": float(y.mean() - p.mean()),
    }
    result.judged = len(y) >= bounds.min_rows and 0 < positives < len(y)

    segmented = _segments(data, p)

    def table(column: str) -> list[dict[str, Any]]:
        codes, values = pd.factorize(segmented[column], sort=True)
        return [
            _calibration_row(column, str(value), y[codes == k], p[codes == k], bounds)
            for k, value in enumerate(values)
        ]

    result.score_bands = table(SCORE_BAND)
    result.segments = [row for column in SEGMENTED_BY for row in table(column)]

    tests: list[dict[str, Any]] = []
    if result.judged:
        if reference_auc is not None:
            result.auc_bound = reference_auc - bounds.max_auc_drop
            se = result.metrics["roc_auc_se"]
            z = (result.auc_bound - auc) / se if se > 0 else math.inf
            tests.append({"test": "roc_auc", "z": z, "p_value": float(norm.sf(z))})
        overall = _calibration_row("*", "*", y, p, bounds)
        result.metrics["calibration_tolerance"] = overall["tolerance"]
        tests.append({"test": "calibration", "z": overall["z"], "p_value": overall["p_value"]})
    # the score bands and segments are judged on their own size, the population's aside
    for row in result.score_bands + result.segments:
        if row["status"] == "judged":
            tests.append(
                {"test": f"calibration:{row['segment']}={row['value']}", "z": row["z"],
                 "p_value": row["p_value"]}
            )  # fmt: skip
    adjusted, rejected = holm([t["p_value"] for t in tests], bounds.alpha)
    for test, adj, rej in zip(tests, adjusted, rejected, strict=True):
        test.update(p_adjusted=adj, rejected=rej)
    by_name = {t["test"]: t for t in tests}
    for row in result.score_bands + result.segments:
        if row["status"] == "judged":
            test = by_name[f"calibration:{row['segment']}={row['value']}"]
            row["p_adjusted"] = test["p_adjusted"]
            row["status"] = "failed" if test["rejected"] else "fine"
    result.tests = tests
    result.reasons = [_reason(t, result, bounds) for t in tests if t["rejected"]]
    result.alarm = bool(result.reasons)
    judged = sum(r["status"] in ("fine", "failed") for r in result.score_bands + result.segments)
    result.message = (
        f"{rows['labelled']} matured outcomes ({positives} defaults) of applications "
        + (f"{window_start:%Y-%m-%d} .. " if window_start else "before ")
        + f"{window_end:%Y-%m-%d}: AUC {auc:.3f}, realized default rate "
        f"{result.metrics['observed_rate']:.3f} vs predicted {result.metrics['mean_prob']:.3f}; "
        f"{judged} bands/segments judged, {len(result.not_judged)} too small"
        + (
            ""
            if result.judged
            else f" (population not judged: fewer than {bounds.min_rows} rows or one class only)"
        )  # fmt: skip
    )
    return result


def _reason(test: dict[str, Any], result: PerformanceResult, bounds: Bounds) -> str:
    """A human sentence for a rejected test."""
    m = result.metrics
    if test["test"] == "roc_auc":
        return (
            f"realized ROC-AUC {m['roc_auc']:.3f} (± {m['roc_auc_se']:.3f}) is significantly "
            f"below {result.auc_bound:.3f} (holdout AUC {result.reference_auc:.3f} − "
            f"{bounds.max_auc_drop}; adjusted p {test['p_adjusted']:.2g})"
        )
    if test["test"] == "calibration":
        return (
            f"realized default rate {m['observed_rate']:.3f} vs predicted {m['mean_prob']:.3f}: "
            f"the gap is significantly beyond {m['calibration_tolerance']:.3f} "
            f"(adjusted p {test['p_adjusted']:.2g})"
        )
    _, _, where = test["test"].partition(":")
    row = next(
        r for r in result.score_bands + result.segments if f"{r['segment']}={r['value']}" == where
    )
    return (
        f"{where} ({row['n']} rows): realized default rate {row['observed_rate']:.3f} vs "
        f"predicted {row['mean_prob']:.3f}, gap significantly beyond "
        f"{row['tolerance']:.3f} (adjusted p {test['p_adjusted']:.2g})"
    )
