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
    calibration_table,
    confusion_figure,
    decide,
    decide_many,
    expected_calibration_error,
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


def test_ece_by_hand_two_equal_frequency_bins() -> None:
    # given out of order: sorted by probability, the low bin is 0.1, 0.2, 0.3 (defaults 0, 0, 1)
    # and the high bin 0.6, 0.7, 0.8 (defaults 0, 1, 1)
    y = [1, 0, 1, 0, 0, 1]
    prob = [0.7, 0.2, 0.3, 0.6, 0.1, 0.8]
    table = calibration_table(y, prob, n_bins=2)
    assert table["bin"].tolist() == [0, 1]
    assert table["count"].tolist() == [3, 3]
    assert table["mean_predicted"].tolist() == pytest.approx([0.2, 0.7])
    assert table["realized_rate"].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert table["gap"].tolist() == pytest.approx([2 / 15, 1 / 30])
    # (3 * 2/15 + 3 * 1/30) / 6
    assert expected_calibration_error(y, prob, n_bins=2) == pytest.approx(1 / 12)
    # one bin: the calibration gap |mean prob - observed rate| = |0.45 - 0.5|
    assert expected_calibration_error(y, prob, n_bins=1) == pytest.approx(0.05)
    # one row per bin: the mean of |prob - y|
    assert expected_calibration_error(y, prob, n_bins=6) == pytest.approx(
        np.mean(np.abs(np.array(prob) - np.array(y)))
    )


def test_ece_uneven_bins_weigh_by_count() -> None:
    # 7 rows in 3 bins: sizes 3, 2, 2 (the first bins take the extra row)
    y = [0, 0, 0, 1, 0, 1, 1]
    prob = [0.0, 0.1, 0.2, 0.4, 0.4, 0.9, 0.5]
    table = calibration_table(y, prob, n_bins=3)
    assert table["count"].tolist() == [3, 2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.1, 0.4, 0.7])
    assert table["realized_rate"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    # (3 * 0.1 + 2 * 0.1 + 2 * 0.3) / 7
    assert expected_calibration_error(y, prob, n_bins=3) == pytest.approx(1.1 / 7)
    assert metrics(y, prob)["ece"] == pytest.approx(expected_calibration_error(y, prob))


def test_ece_of_perfect_and_of_shifted_probabilities() -> None:
    # each bin's mean probability equals its realized rate: 0
    y = [0, 0, 0, 1] * 2 + [0, 1, 1, 1] * 2
    prob = [0.25] * 8 + [0.75] * 8
    assert expected_calibration_error(y, prob, n_bins=2) == pytest.approx(0.0)
    # every probability 0.1 too high: 0.1 in every bin
    assert expected_calibration_error(y, np.array(prob) + 0.1, n_bins=2) == pytest.approx(0.1)
    # more bins than rows: one bin per row
    assert len(calibration_table([0, 1], [0.2, 0.6], n_bins=10)) == 2


def test_ece_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        expected_calibration_error([0, 1], [0.5])
    with pytest.raises(ValueError, match="no rows"):
        expected_calibration_error([], [])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0, 1], [0.1, 0.2], n_bins=0)


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
