"""The promotion statistics and rule, without MLflow: paired bootstrap, DeLong, the verdict."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ml.comparison import compare, delong, smallest_detectable_f1_gain
from ml.promote import ensure_reachable, promote_if_better
from ml.promotion_rule import F1_GAIN, REPLACES_FAILING_CHAMPION, judge
from safra.settings import Settings


def _world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two models' probabilities: the challenger sees the risk with less noise."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(-2.0, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    champion = 1 / (1 + np.exp(-(risk + rng.normal(0, 2.0, n))))
    challenger = 1 / (1 + np.exp(-(risk + rng.normal(0, 0.4, n))))
    return y, champion, challenger


def test_the_comparison_is_deterministic_at_a_seed_and_matches_sklearn() -> None:
    y, a, b = _world(3000, 1)
    first = compare(y, a, b, deny_above=0.3, seed=7)
    assert first == compare(y, a, b, deny_above=0.3, seed=7)
    assert first != compare(y, a, b, deny_above=0.3, seed=8)
    assert first.rows == 3000 and first.positives == int(y.sum()) and first.resamples == 2000
    assert first.champion_f1 == pytest.approx(f1_score(y, a > 0.3))
    assert first.challenger_f1 == pytest.approx(f1_score(y, b > 0.3))
    assert first.champion_auc == pytest.approx(roc_auc_score(y, a))
    assert first.challenger_auc == pytest.approx(roc_auc_score(y, b))
    assert first.f1_gain.low < first.f1_gain.estimate < first.f1_gain.high
    assert first.auc_gain.low > 0  # the less noisy model ranks significantly better
    assert first.brier_gain.low > 0


def test_an_identical_model_gains_nothing_with_certainty() -> None:
    y, a, _ = _world(2000, 2)
    same = compare(y, a, a.copy(), deny_above=0.3)
    assert (same.f1_gain.low, same.f1_gain.estimate, same.f1_gain.high) == (0.0, 0.0, 0.0)
    assert same.auc_gain_p_value == 1.0
    assert judge(same, [], [], margin=0.0).promote is False  # a gain must clear the margin


def test_delong_interval_covers_the_bootstrap_spread_of_the_auc_difference() -> None:
    y, a, b = _world(2000, 3)
    _, _, se, _ = delong(y, a, b)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        diffs.append(roc_auc_score(y[i], b[i]) - roc_auc_score(y[i], a[i]))
    assert se == pytest.approx(np.std(diffs), rel=0.15)


def test_fewer_than_1000_resamples_is_refused() -> None:
    y, a, b = _world(500, 4)
    with pytest.raises(ValueError, match="1,000 resamples"):
        compare(y, a, b, deny_above=0.3, resamples=999)


def test_the_verdict_follows_the_rule() -> None:
    y, a, b = _world(3000, 1)
    better = compare(y, a, b, deny_above=0.3)
    assert better.f1_gain.low > 0.01
    promoted = judge(better, [], [], margin=0.005)
    assert (promoted.promote, promoted.basis) == (True, F1_GAIN)
    assert "lower bound > margin 0.005" in promoted.reasons[0]
    # the margin is on the lower bound: a margin above it refuses
    high = judge(better, [], [], margin=better.f1_gain.low + 0.001)
    assert not high.promote and high.reasons[0].startswith("F1 gain")
    # a guardrail the challenger breaks refuses, whatever the gain
    broken = judge(better, ["calibration gap 0.09 > bound 0.05"], [], margin=0.0)
    assert not broken.promote and "breaks a guardrail" in broken.reasons[0]
    # a worse challenger: AUC significantly lower
    worse = judge(compare(y, b, a, deny_above=0.3), [], [], margin=0.0)
    assert not worse.promote and any("significantly lower" in r for r in worse.reasons)
    assert smallest_detectable_f1_gain(better, 0.005) == pytest.approx(
        0.005 + better.f1_gain.estimate - better.f1_gain.low
    )


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same ranking twice; the champion over-estimates every risk (log-odds + 0.5)."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(-2.0, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    noise = rng.normal(0, 0.6, n)
    return y, 1 / (1 + np.exp(-(risk + noise + 0.5))), 1 / (1 + np.exp(-(risk + noise)))


def test_a_failing_champion_is_replaced_by_a_better_calibrated_non_inferior_challenger() -> None:
    y, champion, challenger = _miscalibrated(1000, 6)
    c = compare(y, champion, challenger, deny_above=0.3)
    assert c.brier_gain.low > 0 and c.auc_gain.estimate == pytest.approx(0.0)
    assert c.f1_gain.low < 0 < c.f1_gain.high
    assert not judge(c, [], [], margin=0.005).promote  # no F1 evidence, champion holds
    verdict = judge(c, [], ["calibration gap 0.08 > bound 0.05"], margin=0.005)
    assert (verdict.promote, verdict.basis) == (True, REPLACES_FAILING_CHAMPION)
    assert verdict.reasons[0].startswith("the champion breaks a guardrail")
    # ... but not by a challenger whose F1 at the threshold is significantly lower
    y, champion, challenger = _miscalibrated(1000, 5)
    worse_f1 = compare(y, champion, challenger, deny_above=0.3)
    assert worse_f1.f1_gain.high < 0 and worse_f1.brier_gain.low > 0
    refused = judge(worse_f1, [], ["calibration gap 0.08 > bound 0.05"], margin=0.005)
    assert not refused.promote and "not a safe replacement" in refused.reasons[-1]


def test_an_unreachable_registry_fails_at_once_and_changes_nothing(tmp_path) -> None:
    s = Settings(data_dir=tmp_path, mlflow_tracking_uri="http://127.0.0.1:9")
    with pytest.raises(ConnectionError, match=r"MLflow server at http://127.0.0.1:9 .*nothing"):
        ensure_reachable(s, timeout_s=2)
    with pytest.raises(ConnectionError, match="does not answer"):
        promote_if_better(s, "any-model", holdout=None)
    assert not (tmp_path / "locks").exists()  # stopped before taking the lock
