"""ml.evaluate: decisions at the thresholds, metrics on hand-checked examples, segments, plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ml.evaluate import (
    APPROVE_BELOW,
    DENY_ABOVE,
    calibration_figure,
    confusion_figure,
    decide,
    decide_many,
    ks_statistic,
    metrics,
    roc_figure,
    segment_metrics,
)


@pytest.mark.parametrize(
    ("prob", "expected"),
    [
        (0.0, "APPROVE"),
        (0.0999, "APPROVE"),
        (0.10, "MANUAL_REVIEW"),  # the boundaries go to a human
        (0.2, "MANUAL_REVIEW"),
        (0.30, "MANUAL_REVIEW"),
        (0.3001, "DENY"),
        (1.0, "DENY"),
    ],
)
def test_decide_at_the_default_thresholds(prob: float, expected: str) -> None:
    assert (APPROVE_BELOW, DENY_ABOVE) == (0.10, 0.30)
    assert decide(prob) == expected
    assert decide_many([prob])[0] == expected


def test_decide_with_configured_thresholds() -> None:
    assert decide(0.15, approve_below=0.2, deny_above=0.5) == "APPROVE"
    assert decide(0.55, approve_below=0.2, deny_above=0.5) == "DENY"
    assert decide(0.2, approve_below=0.2, deny_above=0.2) == "MANUAL_REVIEW"


@pytest.mark.parametrize("bad", [(0.4, 0.3), (-0.1, 0.3), (0.1, 1.2)])
def test_decide_rejects_inconsistent_thresholds(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="approve_below"):
        decide(0.2, *bad)


def test_decide_rejects_a_non_probability() -> None:
    with pytest.raises(ValueError, match="probability"):
        decide(1.5)


def test_f1_at_the_business_threshold_by_hand() -> None:
    y = [1, 1, 0, 0, 1, 0]
    prob = [0.9, 0.2, 0.5, 0.1, 0.31, 0.30]  # > 0.30 predicted default: 0.9, 0.5, 0.31
    m = metrics(y, prob)
    # TP = 2 (0.9, 0.31), FP = 1 (0.5), FN = 1 (0.2); 0.30 itself is not "above"
    assert m["precision_at_threshold"] == pytest.approx(2 / 3)
    assert m["recall_at_threshold"] == pytest.approx(2 / 3)
    assert m["f1_at_threshold"] == pytest.approx(2 / 3)
    assert metrics(y, prob, deny_above=0.95)["f1_at_threshold"] == 0.0
    assert m["mean_prob"] == pytest.approx(np.mean(prob))
    assert m["calibration_gap"] == pytest.approx(abs(np.mean(prob) - 0.5))
    assert m["share_approve"] + m["share_manual_review"] + m["share_deny"] == pytest.approx(1.0)
    assert m["share_deny"] == pytest.approx(0.5)


def test_ks_by_hand() -> None:
    # defaults score {0.35, 0.8}, the others {0.1, 0.4}: the CDFs differ by at most 1/2
    assert ks_statistic([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5)
    assert ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    assert ks_statistic([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.0)
    assert np.isnan(ks_statistic([1, 1], [0.1, 0.2]))


def test_ranking_metrics_on_a_perfect_and_a_one_class_sample() -> None:
    perfect = metrics([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9])
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0 and perfect["ks"] == 1.0
    assert perfect["brier"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.01) / 4)
    one_class = metrics([0, 0, 0], [0.1, 0.2, 0.5])
    assert np.isnan(one_class["roc_auc"]) and np.isnan(one_class["ks"])
    assert one_class["f1_at_threshold"] == 0.0


def test_metrics_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        metrics([0, 1], [0.2])


def test_segment_metrics_one_row_per_value() -> None:
    df = pd.DataFrame(
        {"regiao": ["SUL", "SUL", "NORTE", "NORTE", None], "tipo_pessoa": ["FISICA"] * 5}
    )
    out = segment_metrics(
        df, [0, 1, 0, 1, 1], [0.1, 0.9, 0.6, 0.4, 0.5], segments=("regiao", "tipo_pessoa")
    )
    by = out.set_index(["segment", "value"])
    assert by.loc[("regiao", "SUL"), "roc_auc"] == 1.0
    assert by.loc[("regiao", "NORTE"), "roc_auc"] == 0.0
    assert by.loc[("regiao", "<missing>"), "n"] == 1
    assert by.loc[("tipo_pessoa", "FISICA"), "n"] == 5
    assert by.loc[("tipo_pessoa", "FISICA"), "positives"] == 3
    with pytest.raises(ValueError, match="cultura"):
        segment_metrics(df, [0] * 5, [0.1] * 5, segments=("cultura_principal",))


def test_plots_are_figures() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.2
    prob = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.1, 500), 0, 1)
    for fig in (roc_figure(y, prob), calibration_figure(y, prob), confusion_figure(y, prob)):
        assert isinstance(fig, Figure)
        assert fig.axes and fig.axes[0].get_title()
