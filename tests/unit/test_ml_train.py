"""ml.train without MLflow: the out-of-time split, candidate selection, and model behaviour
(direction and invariance tests on a small model trained on simulator data)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.features import model_inputs
from ml.registry import SKOPS_TRUSTED_TYPES
from ml.train import (
    SELECTION_AUC_SLACK,
    SELECTION_MAX_ECE,
    Selection,
    calibration_curves,
    candidate_classifiers,
    fit_candidates,
    out_of_time_split,
    select_winner,
)
from pipelines.simulator import applications_frame, generate_applications, generate_outcomes


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    apps = generate_applications(
        8_000, seed=21, start=datetime(2023, 1, 1), end=datetime(2024, 1, 1)
    )
    outcomes = generate_outcomes(apps, seed=21)
    frame = applications_frame(apps)
    frame["inadimplente"] = [o["inadimplente"] for o in outcomes]
    return frame


@pytest.fixture(scope="module")
def selection(labelled: pd.DataFrame) -> Selection:
    train, valid = out_of_time_split(labelled)
    return fit_candidates(
        train,
        valid,
        candidates={
            "baseline": DummyClassifier(strategy="prior"),
            "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=150, random_state=0),
        },
    )


def test_out_of_time_split_keeps_the_future_out_of_training() -> None:
    df = pd.DataFrame({"data_solicitacao": [5, 1, 3, 3, 2, 4, 3, 6, 7, 8], "v": range(10)})
    train, valid = out_of_time_split(df, valid_fraction=0.3)
    assert train["data_solicitacao"].max() < valid["data_solicitacao"].min()
    assert len(train) + len(valid) == len(df)
    assert sorted(valid["data_solicitacao"]) == [6, 7, 8]
    tied = pd.DataFrame({"data_solicitacao": [1, 2, 2, 2, 2]})
    train, valid = out_of_time_split(tied, valid_fraction=0.4)  # ties at the cutoff: all valid
    assert train["data_solicitacao"].tolist() == [1] and len(valid) == 4
    with pytest.raises(ValueError):
        out_of_time_split(df, valid_fraction=1.0)
    with pytest.raises(ValueError, match="no training rows"):
        out_of_time_split(pd.DataFrame({"data_solicitacao": [1, 1, 1]}), valid_fraction=0.5)


def test_the_better_candidate_by_validation_auc_wins(selection: Selection) -> None:
    aucs = {n: c.metrics["roc_auc"] for n, c in selection.candidates.items()}
    assert selection.winner == "hist_gradient_boosting"
    assert aucs["hist_gradient_boosting"] > 0.75 > aucs["baseline"]


def _scores(**candidates: tuple[float, float]) -> dict[str, dict[str, float]]:
    return {name: {"roc_auc": auc, "ece": ece} for name, (auc, ece) in candidates.items()}


def test_selection_sets_a_miscalibrated_candidate_aside_within_the_auc_slack() -> None:
    assert (SELECTION_MAX_ECE, SELECTION_AUC_SLACK) == (0.03, 0.01)
    scores = _scores(forest=(0.830, 0.040), linear=(0.825, 0.010), boosting=(0.820, 0.015))
    assert select_winner(scores) == ("linear", ["linear", "boosting"])
    # the bound itself is calibrated enough
    assert select_winner(_scores(a=(0.83, 0.03), b=(0.82, 0.01)))[0] == "a"


def test_selection_keeps_the_best_ranking_when_calibration_costs_more_than_the_slack() -> None:
    # a calibrated model that hardly ranks (a constant prior) does not beat a real one
    scores = _scores(prior=(0.50, 0.001), boosting=(0.80, 0.045))
    assert select_winner(scores) == ("boosting", ["prior"])
    assert select_winner(_scores(a=(0.80, 0.05), b=(0.81, 0.04))) == ("b", [])
    assert select_winner(_scores(a=(float("nan"), 0.0), b=(0.6, 0.0)))[0] == "b"
    with pytest.raises(ValueError, match="no candidates"):
        select_winner({})


@pytest.fixture(scope="module")
def linear(labelled: pd.DataFrame) -> Selection:
    train, valid = out_of_time_split(labelled)
    classifier = candidate_classifiers(len(train))["logistic_regression"]
    return fit_candidates(train, valid, candidates={"logistic_regression": classifier})


def test_the_linear_candidate_ranks_and_is_calibrated(linear: Selection) -> None:
    fit = linear.best
    steps = fit.pipeline.named_steps
    assert list(steps) == ["preprocess", "classifier"]
    assert [name for name, *_ in steps["preprocess"].transformers] == [
        "numeric",
        "categorical",
        "crosses",
    ]
    assert fit.metrics["roc_auc"] > 0.78
    assert fit.metrics["ece"] < SELECTION_MAX_ECE
    curves = calibration_curves(linear)
    assert curves.columns.tolist() == [
        "candidate",
        "winner",
        "bin",
        "count",
        "mean_predicted",
        "realized_rate",
        "gap",
    ]
    assert curves["count"].sum() == len(linear.y_valid) and curves["winner"].all()


def test_the_linear_candidate_survives_skops_and_scores_what_serving_sends(
    labelled: pd.DataFrame, linear: Selection
) -> None:
    pipeline = linear.best.pipeline
    loaded = skops.io.loads(skops.io.dumps(pipeline), trusted=SKOPS_TRUSTED_TYPES)
    sample = model_inputs(labelled.tail(50))
    np.testing.assert_allclose(loaded.predict_proba(sample), pipeline.predict_proba(sample))
    # one row with unknowns, an unseen crop and an amount far outside the training range
    odd = labelled.tail(1).assign(
        serasa_score=np.nan, cultura_principal="QUINOA", valor_solicitado_credito=1e12
    )
    prob = loaded.predict_proba(model_inputs(odd))[:, 1]
    assert prob.shape == (1,) and 0.0 < prob[0] < 1.0


def test_linear_direction_more_debt_lower_score_more_risk(
    labelled: pd.DataFrame, linear: Selection
) -> None:
    sample = labelled.tail(400)
    base = _prob(linear, sample)
    more_debt = _prob(
        linear, sample.assign(valor_solicitado_credito=sample["valor_solicitado_credito"] * 4)
    )
    lower = _prob(
        linear, sample.assign(serasa_score=np.clip(sample["serasa_score"] - 250, 0, 1000))
    )
    assert more_debt.mean() > base.mean() + 0.02
    assert lower.mean() > base.mean() + 0.02


def test_random_forest_subsamples_large_training_sets() -> None:
    assert candidate_classifiers(50_000)["random_forest"].max_samples is None
    assert candidate_classifiers(1_000_000)["random_forest"].max_samples == pytest.approx(0.1)


def _prob(selection: Selection, applications: pd.DataFrame) -> np.ndarray:
    return selection.best.pipeline.predict_proba(model_inputs(applications))[:, 1]


def test_direction_more_debt_per_income_means_more_risk(
    labelled: pd.DataFrame, selection: Selection
) -> None:
    sample = labelled.tail(400)
    base = _prob(selection, sample)
    more_debt = _prob(
        selection, sample.assign(valor_solicitado_credito=sample["valor_solicitado_credito"] * 4)
    )
    assert more_debt.mean() > base.mean() + 0.02
    assert (more_debt >= base - 0.02).mean() > 0.9


def test_direction_lower_score_and_fines_mean_more_risk(
    labelled: pd.DataFrame, selection: Selection
) -> None:
    sample = labelled.tail(400)
    base = _prob(selection, sample)
    lower = _prob(
        selection, sample.assign(serasa_score=np.clip(sample["serasa_score"] - 250, 0, 1000))
    )
    fined = _prob(selection, sample.assign(ibama_autuacoes_ativas=True))
    assert lower.mean() > base.mean() + 0.02
    assert fined.mean() > base.mean()


def test_invariance_name_and_tax_id_cannot_change_a_score(
    labelled: pd.DataFrame, selection: Selection
) -> None:
    sample = labelled.tail(200)
    renamed = sample.assign(
        nome_razao_social="Outro Nome", cpf_cnpj="11144477735", proponente_id="outro", municipio="X"
    )
    np.testing.assert_array_equal(_prob(selection, renamed), _prob(selection, sample))


def test_out_of_time_split_from_a_given_time() -> None:
    frame = pd.DataFrame({"data_solicitacao": pd.date_range("2026-01-01", periods=10, freq="D")})
    train, valid = out_of_time_split(frame, valid_from=pd.Timestamp("2026-01-08"))
    assert len(train) == 7 and len(valid) == 3
    assert train["data_solicitacao"].max() < valid["data_solicitacao"].min()
    with pytest.raises(ValueError, match="no validation rows"):
        out_of_time_split(frame, valid_from=pd.Timestamp("2027-01-01"))
