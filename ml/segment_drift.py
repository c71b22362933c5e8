"""Drift per segment: which segments (:mod:`ml.segments`) and which of their columns changed.

A shift confined to a place — a drought in three states, for soybean only — is diluted in the
whole population (the ``drought`` scenario moves no population-wide column past the threshold)
but is large inside its segment (``uf_cultura=MT/SOJA``). Judging ~100 segments × ~20 columns
means ~2,000 tests per check, so the method must keep the false-alarm rate of the *whole* check
bounded, not each test's:

1. **A two-sample test per segment and column**: Kolmogorov-Smirnov for numbers (it also sees
   changes of shape, not only of the mean), chi-square on the category counts for categories.
2. **Clustered rows counted honestly.** Applicants come back (some often), and a returning
   applicant's farm, area, crop and UF are the same in each application: rows are not
   independent, and a test that counts each row as new evidence calls a frequent borrower's
   farm a shift (measured: baseline against baseline, plain KS with Bonferroni flagged 1 to 3
   segment-columns in every window). Rows are grouped by farm (:data:`FARM_KEY`, what a
   returning applicant keeps) and each test uses an effective size ``n / deff`` with Kish's
   design effect ``deff = 1 + (m_w - 1) ρ``: ``m_w = Σ m_k² / n`` is the segment's
   size-weighted mean rows per farm, ``ρ`` the column's intra-farm correlation (one-way ANOVA
   on the column's ranks, over both frames). A farm attribute (area) has ρ ≈ 1, so its rows
   count once per farm; the amount asked varies between applications, so they count more.
   Categories take ρ = 1 (conservative).
3. **Holm's correction** over every test of the check: the chance that the check flags any
   segment by chance is at most ``alpha`` (family-wise error), whatever the number of segments.
4. **A material shift only**: a significant column must also move by at least
   :data:`MIN_DISTANCE` (the Wasserstein distance normed by the reference's deviation for
   numbers, Jensen-Shannon for categories — the distances of the population-wide check), so a
   trivial shift on a huge sample is not drift.
5. **Too small to judge**: a segment with fewer than ``min_rows`` rows in the reference or the
   current frame is reported as not judged, with its sizes — never as drifted or as fine.

Pure: frames in (model inputs with ``prob_default``), a :class:`SegmentDrift` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from ml.segments import FAMILIES, segment_labels

FARM_KEY: tuple[str, ...] = ("area_total_hectares", "uf", "cultura_principal", "tipo_pessoa")
"""What a returning applicant keeps from one application to the next (the ones a frame has are
used): rows agreeing on all of them are counted as one farm's."""
MIN_DISTANCE = 0.1
"""The smallest shift that counts (normed Wasserstein / Jensen-Shannon): Evidently's default
threshold for a column."""
MAX_DRIFTED_COLUMNS_SHOWN = 5


@dataclass
class ColumnShift:
    """One drifted column of a segment."""

    column: str
    distance: float
    p_value: float
    p_adjusted: float
    """Holm-adjusted over every test of the check."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "distance": round(self.distance, 4),
            "p_value": float(f"{self.p_value:.3g}"),
            "p_adjusted": float(f"{self.p_adjusted:.3g}"),
        }


@dataclass
class Segment:
    family: str
    label: str
    rows_reference: int
    rows_current: int
    judged: bool
    effective_reference: float = 0.0
    effective_current: float = 0.0
    shifts: list[ColumnShift] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.family}={self.label}"

    @property
    def drifted(self) -> bool:
        return bool(self.shifts)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "segment": self.name,
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
        }
        if self.judged:
            out["effective_rows_reference"] = round(self.effective_reference, 1)
            out["effective_rows_current"] = round(self.effective_current, 1)
            out["columns"] = [s.as_dict() for s in self.shifts]
        return out


@dataclass
class SegmentDrift:
    """Every segment of the check: judged (drifted or not) and not judged (too small)."""

    segments: list[Segment]
    alpha: float
    min_rows: int
    min_distance: float
    tests: int

    @property
    def drifted(self) -> list[Segment]:
        """The drifted segments, the largest shift first."""
        found = [s for s in self.segments if s.drifted]
        return sorted(found, key=lambda s: -max(c.distance for c in s.shifts))

    @property
    def not_judged(self) -> list[Segment]:
        return [s for s in self.segments if not s.judged]

    @property
    def judged(self) -> int:
        return sum(s.judged for s in self.segments)

    def summary(self) -> dict[str, Any]:
        return {
            "drift": bool(self.drifted),
            "drifted_segments": [s.name for s in self.drifted],
            "drifted": [s.as_dict() for s in self.drifted],
            "judged": self.judged,
            "not_judged": [s.as_dict() for s in self.not_judged],
            "tests": self.tests,
            "alpha": self.alpha,
            "min_rows": self.min_rows,
            "min_distance": self.min_distance,
            "method": "KS / chi-square per segment and column, Kish effective sizes over farms, "
            "Holm over all tests, material shift >= min_distance",
        }


def farms(frame: pd.DataFrame) -> np.ndarray:
    """A farm number per row of ``frame`` (rows agreeing on :data:`FARM_KEY`); each row its own
    farm when the frame has none of those columns."""
    key = [c for c in FARM_KEY if c in frame.columns]
    if not key or frame.empty:
        return np.arange(len(frame))
    return frame.groupby(key, dropna=False, sort=False).ngroup().to_numpy()


def effective_rows(farm: np.ndarray, rho: float = 1.0) -> float:
    """Kish's effective size of rows belonging to farms ``farm``, at intra-farm correlation
    ``rho``: ``n / (1 + (m_w - 1) rho)``."""
    n = len(farm)
    if n == 0:
        return 0.0
    sizes = np.unique(farm, return_counts=True)[1].astype("float64")
    weighted_mean_size = float(np.square(sizes).sum()) / n
    return n / (1.0 + (weighted_mean_size - 1.0) * min(max(rho, 0.0), 1.0))


def intra_farm_correlation(values: np.ndarray, farm: np.ndarray) -> float:
    """One-way ANOVA intra-class correlation of ``values``' ranks within farms, in [0, 1]
    (0 when no farm has two rows)."""
    ok = ~np.isnan(values)
    values, farm = values[ok], farm[ok]
    labels, groups = np.unique(farm, return_inverse=True)
    k, n = len(labels), len(values)
    if n <= k or k < 2:
        return 0.0
    ranks = stats.rankdata(values)
    sizes = np.bincount(groups).astype("float64")
    means = np.bincount(groups, weights=ranks) / sizes
    grand = ranks.mean()
    msb = float(np.sum(sizes * (means - grand) ** 2)) / (k - 1)
    msw = float(np.sum((ranks - means[groups]) ** 2)) / (n - k)
    m0 = (n - float(np.square(sizes).sum()) / n) / (k - 1)
    denominator = msb + (m0 - 1.0) * msw
    return 0.0 if denominator <= 0 else float(np.clip((msb - msw) / denominator, 0.0, 1.0))


def _numeric_test(a: np.ndarray, b: np.ndarray, n_a: float, n_b: float) -> tuple[float, float]:
    """(normed Wasserstein distance, KS p-value at effective sizes n_a, n_b)."""
    a, b = np.sort(a), np.sort(b)
    values = np.concatenate([a, b])
    values.sort(kind="mergesort")
    cdf_a = np.searchsorted(a, values, side="right") / len(a)
    cdf_b = np.searchsorted(b, values, side="right") / len(b)
    gap = np.abs(cdf_a - cdf_b)
    d = float(gap.max())
    wasserstein = float(np.sum(gap[:-1] * np.diff(values)))
    spread = float(np.std(a))
    normed = wasserstein / spread if spread > 0 else (0.0 if wasserstein == 0 else np.inf)
    en = n_a * n_b / (n_a + n_b)
    return normed, float(stats.kstwobign.sf(d * np.sqrt(en)))


def _categorical_test(a: pd.Series, b: pd.Series, deff: float) -> tuple[float, float]:
    """(Jensen-Shannon distance, chi-square p-value with the statistic divided by ``deff``)."""
    counts = pd.concat([a.value_counts(), b.value_counts()], axis=1).fillna(0.0)
    if len(counts) < 2:
        return 0.0, 1.0
    table = counts.to_numpy(dtype="float64").T  # 2 x categories
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    chi2 = float(np.sum((table - expected) ** 2 / np.where(expected > 0, expected, 1.0)))
    dof = table.shape[1] - 1
    shares = table / table.sum(axis=1, keepdims=True)
    js = float(distance.jensenshannon(shares[0], shares[1]))
    return js, float(stats.chi2.sf(chi2 / deff, dof))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    p = np.asarray(p_values, dtype="float64")
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="mergesort")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def segment_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    alpha: float,
    min_rows: int,
    min_distance: float = MIN_DISTANCE,
    families: Sequence[str] = FAMILIES,
) -> SegmentDrift:
    """Judge every segment both frames can be cut into; see the module doc for the method."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_rows < 2:
        raise ValueError(f"min_rows must be >= 2, got {min_rows}")
    reference, current = reference.reset_index(drop=True), current.reset_index(drop=True)
    ref_labels, cur_labels = segment_labels(reference, families), segment_labels(current, families)
    ref_farm = farms(reference)
    cur_farm = farms(current) + (ref_farm.max() + 1 if len(ref_farm) else 0)
    rho = {
        column: intra_farm_correlation(
            np.concatenate(
                [
                    pd.to_numeric(reference[column], errors="coerce").to_numpy("float64"),
                    pd.to_numeric(current[column], errors="coerce").to_numpy("float64"),
                ]
            ),
            np.concatenate([ref_farm, cur_farm]),
        )  # fmt: skip
        for column in numeric
    }
    segments: list[Segment] = []
    pending: list[tuple[Segment, str, float, float]] = []  # segment, column, distance, p
    for family in [f for f in families if f in ref_labels.columns and f in cur_labels.columns]:
        ref_groups = reference.groupby(ref_labels[family].to_numpy(), sort=True).groups
        cur_groups = current.groupby(cur_labels[family].to_numpy(), sort=True).groups
        for label in sorted(set(ref_groups) | set(cur_groups)):
            ref = reference.loc[ref_groups.get(label, [])]
            cur = current.loc[cur_groups.get(label, [])]
            seg = Segment(family, str(label), len(ref), len(cur), judged=False)
            segments.append(seg)
            if len(ref) < min_rows or len(cur) < min_rows:
                continue
            seg.judged = True
            f_ref, f_cur = ref_farm[ref.index.to_numpy()], cur_farm[cur.index.to_numpy()]
            seg.effective_reference, seg.effective_current = (
                effective_rows(f_ref),
                effective_rows(f_cur),
            )
            deff = (len(ref) + len(cur)) / (seg.effective_reference + seg.effective_current)
            defined_by = (
                {"uf", "cultura_principal", "regiao"} if family == "uf_cultura" else {family}
            )
            if family == "uf":
                defined_by.add("regiao")
            for column in numeric:
                a_all = pd.to_numeric(ref[column], errors="coerce").to_numpy("float64")
                b_all = pd.to_numeric(cur[column], errors="coerce").to_numpy("float64")
                a_ok, b_ok = ~np.isnan(a_all), ~np.isnan(b_all)
                if a_ok.sum() < min_rows or b_ok.sum() < min_rows:
                    continue
                dist, p = _numeric_test(
                    a_all[a_ok], b_all[b_ok], effective_rows(f_ref[a_ok], rho[column]),
                    effective_rows(f_cur[b_ok], rho[column]),
                )  # fmt: skip
                pending.append((seg, column, dist, p))
            for column in categorical:
                if column in defined_by:
                    continue
                a_cat, b_cat = ref[column].dropna().astype(str), cur[column].dropna().astype(str)
                if len(a_cat) < min_rows or len(b_cat) < min_rows:
                    continue
                dist, p = _categorical_test(a_cat, b_cat, deff)
                pending.append((seg, column, dist, p))
    adjusted = holm([p for *_, p in pending])
    for (seg, column, dist, p), p_adj in zip(pending, adjusted, strict=True):
        if p_adj <= alpha and dist >= min_distance:
            seg.shifts.append(ColumnShift(column, dist, p, float(p_adj)))
    for seg in segments:
        seg.shifts.sort(key=lambda s: -s.distance)
    return SegmentDrift(segments, alpha, min_rows, min_distance, tests=len(pending))
