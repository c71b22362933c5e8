"""Training, registry and promotion against the local stack's real MLflow server.

Each test uses its own registered model name; runs go to a test experiment, decisions to the real
promotion log (filtered by model name)."""

from __future__ import annotations

import uuid
from datetime import datetime

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from ml.alias_history import promotion_log
from ml.features import FEATURE_COLUMNS, model_inputs
from ml.promote import promote_if_better, rollback
from ml.registry import (
    CHALLENGER,
    CHAMPION,
    reference_sample,
    tracking_client,
    version_by_alias,
)
from ml.train import (
    CALIBRATION_ARTIFACT,
    REFERENCE_SAMPLE_ROWS,
    out_of_time_split,
    train_and_register,
)
from pipelines.simulator import (
    applications_frame,
    best_achievable_auc,
    generate_applications,
    generate_outcomes,
)
from safra.settings import Settings

pytestmark = pytest.mark.stack

EXPERIMENT = "safra-credit-integration-tests"


@pytest.fixture(scope="module")
def windows() -> dict[str, pd.DataFrame]:
    """20,000 labelled simulator applications: train / valid / holdout, oldest to newest."""
    apps = generate_applications(
        20_000, seed=11, start=datetime(2023, 1, 1), end=datetime(2025, 1, 1)
    )
    outcomes = generate_outcomes(apps, seed=11)
    frame = applications_frame(apps)
    frame["inadimplente"] = [o["inadimplente"] for o in outcomes]
    rest, holdout = out_of_time_split(frame, valid_fraction=0.2)
    train, valid = out_of_time_split(rest, valid_fraction=0.2)
    return {"train": train, "valid": valid, "holdout": holdout}


def _forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=40, min_samples_leaf=20, n_jobs=1, random_state=1)


def _candidates() -> dict:
    return {
        "random_forest": _forest(),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.08, random_state=1
        ),
        "logistic_regression": LogisticRegression(C=0.03, max_iter=2_000, random_state=1),
    }


def _model_name() -> str:
    return f"it-safra-credit-{uuid.uuid4().hex[:8]}"


def test_training_run_is_logged_registered_and_loadable(
    local_stack: Settings, windows: dict[str, pd.DataFrame]
) -> None:
    name = _model_name()
    valid = windows["valid"]
    ceiling = best_achievable_auc(valid, valid["inadimplente"].to_numpy())
    result = train_and_register(
        windows["train"],
        valid,
        settings=local_stack,
        model_name=name,
        lineage={"iceberg.snapshot.silver_applications": "1234", "feature_service": "none-yet"},
        best_achievable_auc=ceiling,
        candidates=_candidates(),
        experiment_name=EXPERIMENT,
    )
    client = tracking_client(local_stack)
    run = client.get_run(result.run_id)
    m, tags, params = run.data.metrics, run.data.tags, run.data.params

    # the linear model on its transforms ranks best here and is calibrated
    assert result.winner == "logistic_regression"
    assert result.candidate_aucs["logistic_regression"] > result.candidate_aucs["random_forest"]
    assert result.candidate_aucs["hist_gradient_boosting"] > result.candidate_aucs["random_forest"]
    for key in (
        "valid_f1_at_threshold",
        "valid_roc_auc",
        "valid_pr_auc",
        "valid_brier",
        "valid_ks",
        "valid_ece",
    ):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["valid_ece"] == pytest.approx(result.metrics["ece"]) and m["valid_ece"] < 0.03
    assert m["candidate.random_forest.valid_ece"] == pytest.approx(
        result.candidate_eces["random_forest"]
    )
    assert tags["selection_calibration"] == "within-bound"
    assert params["selection_max_ece"] == "0.03" and params["ece_bins"] == "10"
    assert m["valid_roc_auc"] > 0.78
    assert m["valid_best_achievable_auc"] == pytest.approx(ceiling)
    assert m["valid_auc_fraction_of_best"] == pytest.approx(m["valid_roc_auc"] / ceiling)
    assert m["valid_auc_fraction_of_best"] > 0.95
    assert "candidate.random_forest.valid_roc_auc" in m
    assert "segment.regiao.NORDESTE.roc_auc" in m and "segment.tipo_pessoa.JURIDICA.n" in m
    assert params["winner"] == "logistic_regression"
    assert params["logistic_regression.C"] == "0.03"
    assert params["random_forest.n_estimators"] == "40"
    assert tags["iceberg.snapshot.silver_applications"] == "1234"
    assert tags["feature_set_version"] == "1"
    assert len(tags["git_commit"]) >= 40

    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {
        "plots/roc.png",
        "plots/calibration.png",
        "plots/confusion_at_threshold.png",
    } <= artifacts
    curves = client.load_table(run.info.experiment_id, CALIBRATION_ARTIFACT, [result.run_id])
    assert set(curves["candidate"]) == set(_candidates())
    winner_curve = curves[curves["winner"]]
    assert set(winner_curve["candidate"]) == {"logistic_regression"}
    assert winner_curve["bin"].tolist() == list(range(10))
    assert winner_curve["count"].sum() == len(valid)
    assert np.sum(winner_curve["count"] * winner_curve["gap"]) / len(valid) == pytest.approx(
        m["valid_ece"]
    )
    reference = reference_sample(client, name, str(result.version))  # the version's own run
    assert len(reference) == min(REFERENCE_SAMPLE_ROWS, len(windows["train"]))
    assert set(FEATURE_COLUMNS) <= set(reference.columns)
    assert not {"cpf_cnpj", "nome_razao_social"} & set(reference.columns)

    assert result.version is not None
    assert version_by_alias(client, name, CHALLENGER) == result.version
    inputs = model_inputs(windows["holdout"].head(100))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{CHALLENGER}")
    assert pyfunc.metadata.get_input_schema().input_names() == list(FEATURE_COLUMNS)
    proba = np.asarray(pyfunc.predict(inputs), dtype=float)
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    sk = mlflow.sklearn.load_model(f"models:/{name}@{CHALLENGER}")
    np.testing.assert_allclose(sk.predict_proba(inputs)[:, 1], proba[:, 1])
    # an unknown applicant from a short request scores too (nulls where the request is silent)
    short = inputs.head(1).assign(
        area_total_hectares=np.nan, cultura_principal=None, serasa_score=np.nan
    )
    assert 0.0 < float(np.asarray(pyfunc.predict(short))[0, 1]) < 1.0


def test_promotion_refuses_a_worse_model_and_a_dry_run_records_nothing(
    local_stack: Settings, windows: dict[str, pd.DataFrame]
) -> None:
    """The basics on real models (the rule and the mechanics in depth: test_promotion.py)."""
    name = _model_name()
    client = tracking_client(local_stack)
    train, valid, holdout = windows["train"], windows["valid"], windows["holdout"]

    def train_version(frame: pd.DataFrame, candidates: dict) -> str:
        result = train_and_register(
            frame, valid, settings=local_stack, model_name=name, candidates=candidates,
            experiment_name=EXPERIMENT,
        )  # fmt: skip
        assert result.version is not None
        return result.version

    with pytest.raises(ValueError, match="previous-champion"):
        rollback(local_stack, name)  # nothing registered yet

    # 1. the first model (the seed's random forest) becomes champion
    v1 = train_version(train, {"random_forest": _forest()})
    first = promote_if_better(local_stack, name, holdout)
    assert first.action == "first-champion" and first.promoted
    assert version_by_alias(client, name, CHAMPION) == v1

    # 2. a model trained on shuffled labels is refused, and the record says why
    shuffled = train.assign(
        inadimplente=np.random.default_rng(0).permutation(train["inadimplente"].to_numpy())
    )
    v2 = train_version(shuffled, _candidates())
    dry = promote_if_better(local_stack, name, holdout, dry_run=True)
    assert dry.action == "refused" and dry.log_run_id is None
    refused = promote_if_better(local_stack, name, holdout)
    assert refused.action == "refused" and not refused.promoted
    assert refused.reasons[0].startswith("F1 gain")
    assert any(r.startswith("ROC-AUC significantly lower") for r in refused.reasons)
    assert refused.comparison["auc_gain"]["high"] < 0
    assert version_by_alias(client, name, CHAMPION) == v1
    tags = client.get_model_version(name, v2).tags
    assert tags["promotion.action"] == "refused"
    assert tags["promotion.reason"].startswith("F1 gain")
    assert tags["promotion.log_run_id"] == refused.log_run_id
    assert float(tags["promotion.champion_f1_at_threshold"]) == pytest.approx(
        refused.champion_metrics["f1_at_threshold"], abs=1e-6
    )

    # 3. the log holds every record, in order, with who and why; the dry run is not in it
    log = promotion_log(client, name)
    assert log["action"].tolist() == ["trained", "first-champion", "trained", "refused"]
    assert log["challenger_version"].tolist() == [v1, v1, v2, v2]
    assert log["champion_version_after"].tolist() == [None, v1, v1, v1]
    assert log["actor"].notna().all() and log["reason"].str.len().gt(0).all()
    assert log["holdout_fingerprint"].iloc[[1, 3]].nunique() == 1  # the same holdout
    assert log["decided_at"].is_monotonic_increasing
    assert promotion_log(client, f"{name}-absent").empty
