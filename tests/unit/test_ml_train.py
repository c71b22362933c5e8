"""ml.train without MLflow: the out-of-time split, candidate selection, and model behaviour
(direction and invariance tests on a small model trained on simulator data)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.features import model_inputs
from ml.train import Selection, candidate_classifiers, fit_candidates, out_of_time_split
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
