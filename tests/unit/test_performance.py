"""Realized performance on matured outcomes (ml.performance) and the shared segments
(ml.segments): exact figures on small hand-made frames."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from ml.performance import Bounds, evaluate_performance, hanley_mcneil_se, holm, roc_auc

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)  # matured: applied before 2024-06-01 (365 days)
MATURED = datetime(2024, 3, 1, tzinfo=UTC)
YOUNG = datetime(2025, 1, 1, tzinfo=UTC)


def _rows(n: int, prob: float, defaults: int, when: datetime = MATURED, **fields) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "data_solicitacao": [when] * n,
            "prob_default": [prob] * n,
            "inadimplente": [True] * defaults + [False] * (n - defaults),
            "uf": fields.get("uf", "MT"),
            "cultura_principal": fields.get("cultura_principal", "SOJA"),
            "tipo_pessoa": "FISICA",
            "valor_solicitado_credito": 300_000.0,
        }
    )


def _check(frame: pd.DataFrame, **kwargs) -> object:
    bounds = kwargs.pop("bounds", Bounds(min_rows=4, min_segment_rows=3))
    return evaluate_performance(frame, as_of=AS_OF, maturity_days=365, bounds=bounds, **kwargs)


def test_figures_on_four_matured_rows_and_what_is_left_out() -> None:
    frame = pd.DataFrame(
        {
            "data_solicitacao": [MATURED] * 4
            + [MATURED, MATURED, YOUNG, YOUNG, datetime(2025, 7, 1, tzinfo=UTC)],
            "prob_default": [0.1, 0.4, 0.35, 0.8, 0.2, 0.3, 0.9, 0.9, 0.5],
            # a matured row without outcome; a matured one whose outcome arrives after as_of;
            # two young ones repaid early; one applied after as_of
            "inadimplente": [False, False, True, True, None, True, False, False, True],
            "data_desfecho": [datetime(2024, 9, 1, tzinfo=UTC)] * 5
            + [datetime(2025, 7, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC),
               datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC)],
            "uf": ["MT", "MT", "MT", "SP", "MT", "MT", "MT", "MT", "MT"],
        }
    )  # fmt: skip
    result = _check(frame)
    assert result.rows == {
        "matured": 6,
        "labelled": 4,
        "matured_without_outcome": 2,
        "unmatured": 2,
        "unmatured_with_outcome": 2,
    }
    m = result.metrics
    assert (m["n"], m["defaults"]) == (4.0, 2.0)
    assert m["roc_auc"] == pytest.approx(0.75)  # 3 of the 4 (default, repaid) pairs in order
    assert m["ks"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["mean_prob"] == pytest.approx(0.4125)
    assert m["observed_rate"] == pytest.approx(0.5)
    assert m["calibration_gap"] == pytest.approx(0.0875)
    assert m["roc_auc_se"] == pytest.approx(hanley_mcneil_se(0.75, 2, 2))
    assert result.window_end == datetime(2024, 6, 1, tzinfo=UTC)
    assert result.matured and result.judged
    # SP holds one matured row: not judged, with its size; never fine or failed
    sp = next(r for r in result.segments if (r["segment"], r["value"]) == ("uf", "SP"))
    assert (sp["status"], sp["n"]) == ("not_judged", 1)
    assert {"segment": "uf", "value": "SP", "n": 1} in result.not_judged
    mt = next(r for r in result.segments if (r["segment"], r["value"]) == ("uf", "MT"))
    assert mt["status"] in ("fine", "failed") and mt["n"] == 3
    assert "calibration:uf=SP" not in {t["test"] for t in result.tests}


def test_hanley_mcneil_and_rank_auc_exact() -> None:
    q1, q2 = 0.75 / 1.25, 2 * 0.75**2 / 1.75
    var = (0.75 * 0.25 + (q1 - 0.5625) + (q2 - 0.5625)) / 4
    assert hanley_mcneil_se(0.75, 2, 2) == pytest.approx(math.sqrt(var))
    assert math.sqrt(var) == pytest.approx(0.276296, abs=1e-6)
    assert math.isnan(hanley_mcneil_se(0.75, 0, 3))
    y = np.array([True, False, True, False])
    assert roc_auc(y, np.array([0.5, 0.5, 0.9, 0.1])) == pytest.approx(0.875)  # a tie is half
    assert math.isnan(roc_auc(np.array([False, False]), np.array([0.1, 0.2])))


def test_holm_adjusts_step_down() -> None:
    adjusted, rejected = holm([0.01, 0.04, 0.03], alpha=0.05)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert rejected == [True, False, False]
    assert holm([], 0.05) == ([], [])


def test_a_gap_past_the_bound_alarms_with_its_z() -> None:
    # 1,000 rows predicted 0.1, 200 defaults: gap 0.1; se = sqrt(1000 * 0.09) / 1000
    result = _check(_rows(1_000, 0.1, 200), bounds=Bounds(min_rows=500, min_segment_rows=200))
    overall = next(t for t in result.tests if t["test"] == "calibration")
    assert overall["z"] == pytest.approx((0.1 - 0.03) / (math.sqrt(90) / 1000))
    assert overall["z"] == pytest.approx(7.378648, abs=1e-6)
    assert result.alarm
    assert result.reasons[0].startswith("realized default rate 0.200 vs predicted 0.100")
    assert any(r.startswith("uf=MT (1000 rows)") for r in result.reasons)


def test_a_gap_inside_the_bound_or_not_significant_does_not_alarm() -> None:
    bounds = Bounds(min_rows=500, min_segment_rows=200)
    # 0.125 realized vs 0.1 predicted: inside the tolerated 0.03
    assert not _check(_rows(1_000, 0.1, 125), bounds=bounds).alarm
    # 0.15 vs 0.1 (past 0.03) on 500 rows: z = 0.02 / 0.0134 = 1.49, not significant at 0.01
    small = _check(_rows(500, 0.1, 75), bounds=bounds)
    assert not small.alarm and small.judged
    test = next(t for t in small.tests if t["test"] == "calibration")
    assert test["z"] == pytest.approx(0.02 / (math.sqrt(500 * 0.09) / 500))


def test_early_repayments_are_never_negatives_before_maturity() -> None:
    """Calibrated matured rows plus young rows repaid early: a check counting the young ones
    would see a default rate of 5 % against 10 % predicted; this one sees 10 % and stays quiet."""
    frame = pd.concat([_rows(1_000, 0.1, 100), _rows(1_000, 0.1, 0, when=YOUNG)], ignore_index=True)
    result = _check(frame, bounds=Bounds(min_rows=500, min_segment_rows=200))
    assert result.rows["labelled"] == 1_000
    assert result.rows["unmatured_with_outcome"] == 1_000
    assert result.metrics["observed_rate"] == pytest.approx(0.1)
    assert not result.alarm


def test_no_matured_outcome_says_so() -> None:
    result = _check(_rows(800, 0.1, 0, when=YOUNG))
    assert not result.matured and not result.alarm and not result.judged
    assert result.message.startswith("no matured outcomes yet")
    assert "800 younger applications (800 with an early outcome)" in result.message
    assert result.summary()["rows"]["labelled"] == 0


def test_window_days_bounds_the_matured_window() -> None:
    old = _rows(600, 0.1, 300, when=datetime(2023, 1, 1, tzinfo=UTC))  # before the window
    result = _check(
        pd.concat([old, _rows(600, 0.1, 60)], ignore_index=True),
        bounds=Bounds(min_rows=500, min_segment_rows=200), window_days=180,
    )  # fmt: skip
    assert result.window_start == datetime(2023, 12, 4, tzinfo=UTC)
    assert result.rows["labelled"] == 600 and not result.alarm


def test_auc_alarm_only_when_significantly_below_the_reference_minus_the_drop() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.5, 4_000)
    y = rng.random(4_000) < p  # calibrated; AUC about 0.7
    frame = pd.DataFrame({"data_solicitacao": MATURED, "prob_default": p, "inadimplente": y})
    bounds = Bounds(min_rows=500, min_segment_rows=200)
    auc = roc_auc(y, p)
    worse = _check(frame, bounds=bounds, reference_auc=auc + 0.15)
    assert worse.alarm and worse.auc_bound == pytest.approx(auc + 0.10)
    assert worse.reasons[0].startswith(f"realized ROC-AUC {auc:.3f}")
    assert not _check(frame, bounds=bounds, reference_auc=auc + 0.06).alarm
    assert "roc_auc" not in {t["test"] for t in _check(frame, bounds=bounds).tests}


def test_the_tolerance_grows_with_the_predicted_rate_in_risky_bands() -> None:
    """Predicted 0.6: the tolerance is 0.25 × 0.6 = 0.15, not 0.03."""
    bounds = Bounds(min_rows=500, min_segment_rows=200)
    close = _check(_rows(1_000, 0.6, 500), bounds=bounds)  # 0.50 realized: gap 0.10 < 0.15
    assert close.metrics["calibration_tolerance"] == pytest.approx(0.15)
    assert not close.alarm
    far = _check(_rows(1_000, 0.6, 350), bounds=bounds)  # 0.35 realized: gap 0.25
    test = next(t for t in far.tests if t["test"] == "calibration")
    assert test["z"] == pytest.approx((0.25 - 0.15) / (math.sqrt(1_000 * 0.24) / 1_000))
    assert far.alarm and "significantly beyond 0.150" in far.reasons[0]
