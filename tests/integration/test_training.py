"""`safra train | promote | rollback` end to end on the real stack: simulator applications in the
test's own silver schema, gold built by the real dbt models, Feast's point-in-time join over
Trino, the real MLflow registry (a model name of the test's own)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from typer.testing import CliRunner

from commands import cli
from ml.alias_history import promotion_log
from ml.compiled import onnx_file
from ml.feature_store import feature_store, registry_path, run_features
from ml.promote import run_promote
from ml.registry import (
    CHALLENGER,
    CHAMPION,
    tracking_client,
    verified_version,
    version_by_alias,
)
from ml.train import run_train
from pipelines.dbt_runner import run_dbt
from pipelines.publish import publish
from pipelines.simulator import (
    applications_frame,
    best_achievable_auc,
    generate_applications,
    generate_outcomes,
)
from pipelines.simulator.hidden_model import best_achievable_auc_by_origin
from safra.settings import Settings, get_settings
from tests.integration.lakehouse_tables import SILVER_APPLICATIONS, SILVER_OUTCOMES, TestLakehouse

pytestmark = pytest.mark.stack

NOW = datetime.now(UTC).replace(microsecond=0)
ROWS = 1200
EXPERIMENT = "safra-credit-integration-tests"


def _faixa(score: float | None) -> str:
    if score is None or np.isnan(score):
        return "SEM_SCORE"
    return "BAIXO" if score >= 700 else "MEDIO" if score >= 500 else "ALTO" if score >= 300 else (
        "MUITO_ALTO"
    )  # fmt: skip


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    apps = generate_applications(ROWS, seed=7, start=NOW - timedelta(days=330),
                                 end=NOW - timedelta(days=30))  # fmt: skip
    outcomes = generate_outcomes(apps, seed=7)
    frame = applications_frame(apps)
    frame["data_solicitacao"] = pd.to_datetime(frame["data_solicitacao"], unit="ms", utc=True)
    frame["inadimplente"] = [o["inadimplente"] for o in outcomes]
    frame["data_desfecho"] = [
        datetime.fromtimestamp(o["data_desfecho"] / 1000, UTC) for o in outcomes
    ]
    return frame


@pytest.fixture(scope="module")
def lake(local_stack: Settings, simulated: pd.DataFrame) -> Iterator[TestLakehouse]:
    lake = TestLakehouse(local_stack, "train")
    try:
        rows = []
        for r in simulated.itertuples(index=False):
            row = r._asdict()
            score = None if pd.isna(row["serasa_score"]) else int(row["serasa_score"])
            row.update(
                data_solicitacao=row["data_solicitacao"].to_pydatetime(), serasa_score=score,
                classificacao_propriedade="MEDIA", faixa_risco_credito=_faixa(score),
                registro_valido=True, _loaded_at=NOW,
            )  # fmt: skip
            rows.append([row.get(c) for c in SILVER_APPLICATIONS])
        apps = lake.create("silver", "silver_applications", SILVER_APPLICATIONS)
        lake.insert(apps, list(SILVER_APPLICATIONS), rows)
        outcomes = lake.create("silver", "silver_outcomes", SILVER_OUTCOMES)
        lake.insert(outcomes, list(SILVER_OUTCOMES), [
            [r.id_solicitacao, r.proponente_id, r.data_solicitacao.to_pydatetime(),
             r.data_desfecho, bool(r.inadimplente), 0, NOW]
            for r in simulated.itertuples(index=False)
        ])  # fmt: skip
        gold = run_dbt(["run", "--select", "path:models/gold"], local_stack,
                       schema_prefix=lake.prefix)  # fmt: skip
        assert gold.success, gold.failures
        publish(local_stack, f"{lake.prefix}gold", "gold")  # as a passed gold audit does
        yield lake
    finally:
        lake.drop()


@pytest.fixture(scope="module")
def train_settings(local_stack: Settings, lake: TestLakehouse) -> Iterator[Settings]:
    s = local_stack.model_copy(
        update={
            "schema_prefix": lake.prefix,
            "feast_project": f"it_train_{uuid.uuid4().hex[:8]}",
            "model_name": f"it-train-{uuid.uuid4().hex[:8]}",
            "label_maturity_days": 0,  # the test's outcomes are all known already
        }
    )
    run_features(s)
    yield s
    try:
        feature_store(s).teardown()
    finally:
        shutil.rmtree(registry_path(s).parent, ignore_errors=True)


def _candidates() -> dict:
    return {
        "random_forest": RandomForestClassifier(
            n_estimators=30, min_samples_leaf=10, n_jobs=1, random_state=1
        ),
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=60, random_state=1),
    }


def _train(s: Settings):
    return run_train(
        s, valid_fraction=0.3, experiment_name=EXPERIMENT, candidates=_candidates(),
        ceiling=best_achievable_auc_by_origin,
    )  # fmt: skip


def test_train_promote_rollback(
    train_settings: Settings, lake: TestLakehouse, simulated: pd.DataFrame, monkeypatch
) -> None:
    settings = train_settings
    client = tracking_client(settings)
    name = settings.model_name

    first = _train(settings)
    assert first.version == "1" and version_by_alias(client, name, CHALLENGER) == "1"
    assert first.train_rows + first.valid_rows == ROWS
    assert first.scenarios == ["baseline"]
    # the ceiling, computed by the simulator on the same validation rows
    valid = simulated[simulated["data_solicitacao"] >= pd.Timestamp(first.valid_from)]
    assert len(valid) == first.valid_rows
    expected = best_achievable_auc(valid, valid["inadimplente"].to_numpy())
    assert first.best_achievable_auc == pytest.approx(expected)
    assert first.auc_fraction_of_best == pytest.approx(first.metrics["roc_auc"] / expected)
    run = client.get_run(first.run_id)
    assert run.data.metrics["valid_best_achievable_auc"] == pytest.approx(expected)
    # the winner's ONNX graph: parity on the whole holdout + 200 edge rows, tagged on the run and
    # the version, and inside the signed model directory when it passed
    tags = client.get_model_version(name, "1").tags
    assert run.data.tags["compiled"] == tags["compiled"]
    assert run.data.metrics["compiled_parity_rows"] == first.valid_rows + 200
    if first.winner == "random_forest":
        assert tags["compiled"] == "onnx"
        assert run.data.metrics["compiled_max_abs_diff"] <= 1e-5
        assert run.data.metrics["compiled_decision_mismatches"] == 0
        with verified_version(settings, name, "1") as local:
            assert onnx_file(local) is not None
    else:  # gradient boosting: onnxruntime's tree ensemble has no double output
        assert tags["compiled"].startswith("reference-only: ")
    for table, layer in (("silver_applications", "silver"), ("silver_outcomes", "silver"),
                         ("proponente_features", "gold")):  # fmt: skip
        assert run.data.tags[f"iceberg.snapshot.{table}"] == lake.snapshot(layer, table)
    assert run.data.tags["feature_service"] == "credit_model_v1"
    assert run.data.tags["feature_service_version"] == "1"
    assert first.run_url.endswith(f"/runs/{first.run_id}")

    # the first model becomes champion, judged on the rows it did not train on
    p1 = run_promote(settings)
    assert p1.action == "first-champion", p1.reasons
    assert p1.holdout_rows == first.valid_rows
    assert version_by_alias(client, name, CHAMPION) == "1"

    # the same data and seeds train the same model: a gain of exactly 0, refused (the lower
    # bound of the paired interval must clear the margin)
    second = _train(settings)
    assert second.version == "2"
    p2 = run_promote(settings)
    assert p2.action == "refused" and not p2.promoted
    assert p2.reasons[0].startswith("F1 gain +0.0000 [+0.0000, +0.0000]")
    assert p2.comparison["rows"] == p1.holdout_rows == p2.holdout_rows
    assert p2.challenger_metrics["f1_at_threshold"] == p2.champion_metrics["f1_at_threshold"]
    assert version_by_alias(client, name, CHAMPION) == "1"
    assert promotion_log(tracking_client(settings), name)["action"].tolist() == [
        "trained", "first-champion", "trained", "refused",
    ]  # fmt: skip

    # the CLI: a refusal is a decision (exit 0, JSON on stdout); nothing to roll back is exit 1
    for key, value in (("SAFRA_SCHEMA_PREFIX", settings.schema_prefix),
                       ("SAFRA_FEAST_PROJECT", settings.feast_project),
                       ("SAFRA_MODEL_NAME", name),
                       ("SAFRA_LABEL_MATURITY_DAYS", "0")):  # fmt: skip
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        dry = runner.invoke(cli.app, ["promote", "--dry-run", "--json"])
        assert dry.exit_code == 0, dry.output
        decision = json.loads(dry.stdout)
        assert decision["action"] == "refused" and decision["dry_run"] is True
        assert decision["champion_version_before"] == "1"
        assert decision["comparison"]["f1_gain"] == {"estimate": 0.0, "low": 0.0, "high": 0.0}
        none_left = runner.invoke(cli.app, ["rollback"])
        assert none_left.exit_code == 1
        assert "nothing to roll back" in none_left.output
        history = runner.invoke(cli.app, ["promotions", "--json"])
        assert history.exit_code == 0, history.output
        report = json.loads(history.stdout)
        assert [(t["version"], t["how"]) for t in report["timeline"]] == [("1", "first-champion")]
        assert report["aliases"] == {"previous-champion": None, "champion": "1", "challenger": "2"}
        assert report["audit"] == []  # nothing happened outside Safra
    finally:
        get_settings.cache_clear()
    assert len(promotion_log(client, name)) == 4  # the dry run recorded nothing
