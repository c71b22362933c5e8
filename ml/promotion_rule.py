"""The promotion rule, as code: the guardrails and the verdict (pure: no MLflow, no I/O).

**Guardrails** (:func:`guardrail_breaks`), for any model on a labelled holdout: calibration gap
|mean probability − observed default rate| ≤ ``calibration_bound``; every segment (region, person
type, crop) with at least ``min_segment_rows`` rows and ``min_segment_positives`` defaults and
non-defaults has a ROC-AUC ≥ ``segment_floor`` (smaller segments are too noisy to judge and are
listed as not judged).

**The verdict** (:func:`judge`) on a :class:`ml.comparison.PairedComparison` of champion and
challenger on the same rows. The challenger is promoted only when

1. it keeps every guardrail, and
2. its ROC-AUC is not significantly lower (the DeLong interval of the AUC gain reaches 0), and
3. either **(a)** the lower bound of the interval of its F1 gain at the business threshold is at
   least ``margin`` (it is better where decisions are made), or **(b)** the champion breaks a
   guardrail on this holdout while the challenger's Brier gain is significantly positive and its
   F1 is not significantly lower (the champion no longer holds in this world; the challenger does
   and is not worse).

(b) is there because a world that moved often shows first in calibration: under the demo's bureau
recalibration the old champion over-estimates risk (calibration gap 0.059–0.092 against a bound
of 0.05) while its ranking, and so its F1, barely changes; a 3,000-row holdout cannot see an F1
gain below about 0.043 (measured: ``bench/promotion_bench.py``). Keeping a champion that breaks
its own guardrails because the F1 gain of its replacement is not yet significant would be the
wrong default for a lender.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml import evaluate
from ml.comparison import DEFAULT_RESAMPLES, DEFAULT_SEED, PairedComparison, compare

F1_GAIN = "f1-gain"
REPLACES_FAILING_CHAMPION = "replaces-failing-champion"


@dataclass(frozen=True)
class Guardrails:
    calibration_bound: float = 0.05
    segment_floor: float = 0.6
    min_segment_rows: int = 200
    min_segment_positives: int = 20


def rule_text(margin: float, confidence: float) -> str:
    """The rule in one line, as the decision record states it."""
    return (
        f"promote iff the challenger keeps the guardrails, its ROC-AUC is not significantly "
        f"lower (DeLong, {confidence:.0%}), and either the lower bound of the {confidence:.0%} "
        f"paired-bootstrap interval of its F1 gain > margin {margin:g}, or the champion breaks "
        f"a guardrail on the holdout while the challenger's Brier gain is significantly positive "
        f"and its F1 is not significantly lower"
    )


def guardrail_breaks(
    scores: dict[str, float], segments: pd.DataFrame, guardrails: Guardrails
) -> tuple[list[str], list[str]]:
    """(breaks, notes): the guardrails a model breaks on a holdout; what was not judged.

    ``scores``: :func:`ml.evaluate.metrics`; ``segments``: :func:`ml.evaluate.segment_metrics`.
    """
    g = guardrails
    breaks: list[str] = []
    if not scores["calibration_gap"] <= g.calibration_bound:
        breaks.append(
            f"calibration gap {scores['calibration_gap']:.4f} (mean prob "
            f"{scores['mean_prob']:.4f} vs observed {scores['observed_rate']:.4f}) > bound "
            f"{g.calibration_bound:.4f}"
        )
    judged = (
        (segments["n"] >= g.min_segment_rows)
        & (segments["positives"] >= g.min_segment_positives)
        & (segments["n"] - segments["positives"] >= g.min_segment_positives)
    )
    for row in segments[judged].itertuples(index=False):
        if not row.roc_auc >= g.segment_floor:
            breaks.append(
                f"segment {row.segment}={row.value} roc_auc {row.roc_auc:.4f} < floor "
                f"{g.segment_floor:.2f} (n={row.n})"
            )
    skipped = segments[~judged]
    notes = []
    if len(skipped):
        names = ", ".join(f"{r.segment}={r.value}" for r in skipped.itertuples(index=False))
        notes.append(f"{len(skipped)} small segments not judged: {names}")
    return breaks, notes


@dataclass(frozen=True)
class Verdict:
    promote: bool
    basis: str | None
    """:data:`F1_GAIN` or :data:`REPLACES_FAILING_CHAMPION` when promoted, else None."""
    reasons: list[str]


def judge(
    comparison: PairedComparison,
    challenger_breaks: list[str],
    champion_breaks: list[str],
    margin: float,
) -> Verdict:
    """The verdict of the rule (module docstring) on one paired comparison."""
    c = comparison
    level = f"{c.confidence:.0%}"
    f1 = f"F1 gain {c.f1_gain} ({level}, {c.resamples} paired resamples, seed {c.seed})"
    auc = f"AUC gain {c.auc_gain} (DeLong {level}, p={c.auc_gain_p_value:.3f})"
    brier = f"Brier gain {c.brier_gain}"
    refusals: list[str] = [f"challenger breaks a guardrail: {b}" for b in challenger_breaks]
    if c.auc_gain.high < 0:
        refusals.append(f"ROC-AUC significantly lower: {auc}")
    significant_f1 = c.f1_gain.low > margin
    failing_champion = bool(champion_breaks)
    replaces = failing_champion and c.brier_gain.low > 0 and c.f1_gain.high >= 0
    if not refusals and significant_f1:
        return Verdict(True, F1_GAIN, [f"{f1}: lower bound > margin {margin:g}; {auc}"])
    if not refusals and replaces:
        return Verdict(
            True,
            REPLACES_FAILING_CHAMPION,
            [
                "the champion breaks a guardrail on this holdout: " + "; ".join(champion_breaks),
                f"the challenger keeps them, is significantly closer to the outcomes ({brier}) "
                f"and not significantly worse ({f1}; {auc})",
            ],
        )
    if not significant_f1:
        refusals.insert(0, f"{f1}: lower bound <= margin {margin:g}")
    if failing_champion and not replaces and not challenger_breaks:
        refusals.append(
            "the champion breaks a guardrail ("
            + "; ".join(champion_breaks)
            + f") but the challenger is not a safe replacement ({brier}; {f1})"
        )
    return Verdict(False, None, refusals)


@dataclass(frozen=True)
class Judgement:
    """The rule applied to two models' probabilities on one holdout."""

    verdict: Verdict
    comparison: PairedComparison
    challenger_scores: dict[str, float]
    champion_scores: dict[str, float]
    notes: list[str]
    """What was not judged (small segments)."""


def judge_one(
    inputs: pd.DataFrame,
    y: np.ndarray,
    prob: np.ndarray,
    guardrails: Guardrails,
    *,
    deny_above: float,
    approve_below: float,
) -> tuple[dict[str, float], list[str], list[str]]:
    """(scores, breaks, notes) of one model's probabilities on a holdout (``inputs``: its model
    inputs, for the segments): :func:`ml.evaluate.metrics` and :func:`guardrail_breaks`."""
    scores = evaluate.metrics(y, prob, deny_above=deny_above, approve_below=approve_below)
    segments = evaluate.segment_metrics(inputs, y, prob, deny_above=deny_above)
    return (scores, *guardrail_breaks(scores, segments, guardrails))


def judge_pair(
    inputs: pd.DataFrame,
    y: np.ndarray,
    champion_prob: np.ndarray,
    challenger_prob: np.ndarray,
    *,
    margin: float,
    guardrails: Guardrails,
    deny_above: float,
    approve_below: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Judgement:
    """Scores, guardrails of both, the paired comparison and the verdict."""
    thresholds = {"deny_above": deny_above, "approve_below": approve_below}
    champion = judge_one(inputs, y, champion_prob, guardrails, **thresholds)
    challenger = judge_one(inputs, y, challenger_prob, guardrails, **thresholds)
    comparison = compare(
        y, champion_prob, challenger_prob, deny_above, resamples=resamples, seed=seed
    )
    verdict = judge(comparison, challenger[1], champion[1], margin)
    return Judgement(verdict, comparison, challenger[0], champion[0], challenger[2])
