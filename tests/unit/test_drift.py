"""Drift comparison (ml.drift.compare) on simulator data: no services.

A small model is fitted once on baseline data; the reference is a baseline sample scored by it,
as the champion's logged reference sample is.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.drift import (
    MIN_ROWS,
    MONITORED_CATEGORICAL,
    MONITORED_NUMERIC,
    PREDICTION,
    DriftResult,
    SourceDrift,
    compare,
    current_inputs,
    write_report,
)
from ml.train import fit_candidates
from pipelines.simulator import generate_applications, labelled_frame

SHARE = 0.1
ROWS = 3_000


def _applications(n: int, seed: int, scenario: str = "baseline") -> pd.DataFrame:
    apps = generate_applications(
        n, seed=seed, start=datetime(2024, 1, 1), end=datetime(2025, 1, 1), scenario=scenario
    )
    return labelled_frame(apps, seed, scenario)


@pytest.fixture(scope="module")
def model():
    train, valid = _applications(4_000, seed=101), _applications(1_000, seed=102)
    hgb = HistGradientBoostingClassifier(max_iter=60, random_state=0)
    return fit_candidates(train, valid, "inadimplente", candidates={"hgb": hgb}).best.pipeline


@pytest.fixture(scope="module")
def reference(model) -> pd.DataFrame:
    return current_inputs(_applications(ROWS, seed=103), model)


def _current(model, scenario: str, seed: int, n: int = ROWS) -> pd.DataFrame:
    return current_inputs(_applications(n, seed=seed, scenario=scenario), model)


def test_no_drift_between_two_baseline_samples(model, reference) -> None:
    result = compare(reference, _current(model, "baseline", seed=104), drift_share=SHARE)
    assert result.drift is False
    assert result.segments is not None and result.segments.drifted == []
    assert result.segments.judged > 20
    assert result.drifted_columns == []
    assert result.drifted_share == 0.0
    assert result.prediction_drift is False
    assert result.columns == list(MONITORED_NUMERIC) + list(MONITORED_CATEGORICAL)
    assert (result.rows_reference, result.rows_current) == (ROWS, ROWS)


def test_bureau_recalibration_is_drift(model, reference) -> None:
    """Scores 120 points lower, 15 % without one: the score, its absence and the prediction move,
    nothing else does."""
    result = compare(
        reference, _current(model, "bureau_recalibration", seed=105), drift_share=SHARE
    )
    assert result.drift is True
    assert set(result.drifted_columns) == {"serasa_score", "serasa_score_ausente", PREDICTION}
    assert result.drifted_share == pytest.approx(3 / 17)
    assert result.prediction_drift is True
    assert result.column_scores["serasa_score"] > 0.5


def test_drought_moves_too_few_columns_to_be_population_drift(model, reference) -> None:
    """The drought hits soybean farms in MT/GO/MS only (~10 % of applications): over the whole
    population no column moves past the distance threshold."""
    result = compare(reference, _current(model, "drought", seed=106), drift_share=SHARE)
    assert result.population_drift is False
    assert result.drifted_columns == []


def test_drought_is_found_in_its_segment(model) -> None:
    """At the monitoring's sizes (20,000 rows each) the drought shows where it is: soybean in
    Mato Grosso, amount per hectare (income fell, the amount asked did not); nowhere else."""
    reference = current_inputs(_applications(20_000, seed=120), model)
    result = compare(reference, _current(model, "drought", seed=121, n=20_000), drift_share=SHARE)
    assert (result.drift, result.population_drift) == (True, False)
    assert result.segments is not None
    found = {s.name: [c.column for c in s.shifts] for s in result.segments.drifted}
    assert "uf_cultura=MT/SOJA" in found, found
    assert found["uf_cultura=MT/SOJA"][0] == "valor_por_hectare"
    assert {n.split("=")[1].split("/")[-1] for n in found} <= {"SOJA", "CENTRO_OESTE", "MT"}
    assert result.summary()["drifted_segments"] == list(found)


def test_drift_share_is_the_decision(model, reference) -> None:
    current = _current(model, "bureau_recalibration", seed=107)
    assert compare(reference, current, drift_share=0.18).population_drift is False  # 3/17 = 0.176
    assert compare(reference, current, drift_share=3 / 17).population_drift is True


def test_columns_missing_from_current_are_not_compared(model, reference) -> None:
    """Scored requests carry numbers only: the categorical columns are left out."""
    current = _current(model, "baseline", seed=108).drop(columns=list(MONITORED_CATEGORICAL))
    result = compare(reference, current, drift_share=SHARE)
    assert result.columns == list(MONITORED_NUMERIC)
    assert result.drift is False


def test_large_inputs_are_sampled(model, reference) -> None:
    result = compare(
        reference, _current(model, "baseline", seed=109), drift_share=SHARE, sample_rows=1_500
    )
    assert (result.rows_reference, result.rows_current) == (1_500, 1_500)


def test_too_few_rows_or_no_common_column_is_refused(model, reference) -> None:
    small = _current(model, "baseline", seed=110, n=MIN_ROWS - 1)
    with pytest.raises(ValueError, match=f"only {MIN_ROWS - 1} current rows"):
        compare(reference, small, drift_share=SHARE)
    with pytest.raises(ValueError, match="no monitored column"):
        compare(reference, pd.DataFrame({"other": range(MIN_ROWS)}), drift_share=SHARE)
    with pytest.raises(ValueError, match="drift_share"):
        compare(reference, reference, drift_share=0)


def test_report_file_and_summary(model, reference, tmp_path: Path) -> None:
    comparison = compare(
        reference, _current(model, "bureau_recalibration", seed=111), drift_share=SHARE
    )
    path = write_report(comparison, tmp_path / "drift", "20260101T000000000Z", "given")
    assert path == tmp_path / "drift" / "20260101T000000000Z-given.html"
    html = path.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<html") or "<!doctype html" in html[:200].lower()
    assert "serasa_score" in html
    assert 'src="http' not in html  # self-contained: no script fetched from elsewhere
    assert (tmp_path / "drift" / "latest-given.html").read_bytes() == path.read_bytes()

    result = DriftResult(
        model_name="m", model_version="3", threshold=SHARE,
        sources={"given": SourceDrift("given", comparison, path)}, skipped={"x": "why"},
        mlflow_run_id="r", mlflow_run_url="u", seconds=1.0,
    )  # fmt: skip
    summary = result.summary()
    assert summary["drift"] is True
    assert summary["drifted_share"] == pytest.approx(3 / 17, abs=1e-6)
    assert summary["threshold"] == SHARE
    assert set(summary["drifted_columns"]) == {"serasa_score", "serasa_score_ausente", PREDICTION}
    assert (summary["rows_reference"], summary["rows_current"]) == (ROWS, ROWS)
    assert summary["report_path"] == str(path)
    assert (summary["model_version"], summary["mlflow_run_id"]) == ("3", "r")
    assert summary["skipped"] == {"x": "why"}
