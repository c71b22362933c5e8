"""`safra performance` on the real stack: the champion's realized performance on matured outcomes.

The test's own lakehouse (silver, gold built by the real dbt models, Feast over it) holds
applications made 380 to 450 days ago with all their outcomes, and its own bronze
``scored_requests`` holds the requests the champion answered for some of them (plus recent ones,
without outcomes). Two versions of a small model are registered under a name of the test's own:

- v1, trained on the true labels: calibrated;
- v2, **deliberately miscalibrated**: trained on labels where a quarter of the repaid credits
  were turned into defaults, so it predicts ~0.2 too much default while ranking about as well.

Made champion in turn, v2 is caught on matured outcomes and v1 is not; and as of 150 days ago,
when those applications were young and their early outcomes (mostly repayments) had arrived, v2
is not judged at all: no matured outcomes, exit 0.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from commands.cli import app
from ml.drift import current_inputs
from ml.feature_store import feature_store, registry_path, run_features
from ml.performance_check import check_performance
from ml.registry import CHAMPION, load_version, tracking_client
from ml.train import train_and_register
from pipelines.dbt_runner import run_dbt
from pipelines.publish import publish
from pipelines.simulator import applications_frame, generate_applications, generate_outcomes
from safra import settings as settings_module
from safra.lakehouse import drop_schemas
from safra.settings import Settings
from tests.integration.lakehouse_tables import (
    SILVER_APPLICATIONS,
    SILVER_OUTCOMES,
    TestLakehouse,
)

pytestmark = pytest.mark.stack

NOW = datetime.now(UTC).replace(microsecond=0)
ROWS = 1_500
TRAIN_EXPERIMENT = "safra-credit-integration-tests"
MONITORING = "safra-monitoring-integration-tests"
SCORED = 700  # of the matured applications, answered by the champion through the API


def _labelled(n: int, seed: int, year: int) -> pd.DataFrame:
    apps = generate_applications(
        n, seed=seed, start=datetime(year, 1, 1), end=datetime(year + 1, 1, 1)
    )
    frame = applications_frame(apps)
    frame["inadimplente"] = [o["inadimplente"] for o in generate_outcomes(apps, seed)]
    return frame


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    apps = generate_applications(
        ROWS, seed=31, start=NOW - timedelta(days=450), end=NOW - timedelta(days=380)
    )
    outcomes = generate_outcomes(apps, seed=31)
    frame = applications_frame(apps)
    frame["data_solicitacao"] = pd.to_datetime(frame["data_solicitacao"], unit="ms", utc=True)
    frame["inadimplente"] = [o["inadimplente"] for o in outcomes]
    frame["data_desfecho"] = [
        datetime.fromtimestamp(o["data_desfecho"] / 1000, UTC) for o in outcomes
    ]
    return frame


@pytest.fixture(scope="module")
def lake(local_stack: Settings, simulated: pd.DataFrame) -> Iterator[TestLakehouse]:
    lake = TestLakehouse(local_stack, "perf")
    try:
        rows = []
        for r in simulated.itertuples(index=False):
            row = r._asdict()
            score = None if pd.isna(row["serasa_score"]) else int(row["serasa_score"])
            row.update(
                data_solicitacao=row["data_solicitacao"].to_pydatetime(), serasa_score=score,
                classificacao_propriedade="MEDIA", faixa_risco_credito="MEDIO",
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
        publish(local_stack, f"{lake.prefix}gold", "gold")
        lake.execute(f'CREATE SCHEMA {lake.catalog}."{lake.prefix}bronze"')
        yield lake
    finally:
        drop_schemas(local_stack, [f"{lake.prefix}bronze"])
        lake.drop()


@pytest.fixture(scope="module")
def perf_settings(
    local_stack: Settings, lake: TestLakehouse, tmp_path_factory
) -> Iterator[Settings]:
    s = local_stack.model_copy(
        update={
            "schema_prefix": lake.prefix,
            "bronze_schema": f"{lake.prefix}bronze",
            "feast_project": f"it_perf_{uuid.uuid4().hex[:8]}",
            "model_name": f"it-perf-{uuid.uuid4().hex[:8]}",
            "data_dir": tmp_path_factory.mktemp("perf-data"),
        }
    )
    run_features(s)
    yield s
    try:
        feature_store(s).teardown()
    finally:
        shutil.rmtree(registry_path(s).parent, ignore_errors=True)
        with contextlib.suppress(Exception):
            tracking_client(s).delete_registered_model(s.model_name)


@pytest.fixture(scope="module")
def versions(perf_settings: Settings) -> dict[str, str]:
    """{"calibrated": v1, "miscalibrated": v2}, trained on the simulator's 2023 world."""
    train, valid = _labelled(4_000, 301, 2023), _labelled(1_000, 302, 2024)
    inflated = train.copy()
    rng = np.random.default_rng(0)
    inflated["inadimplente"] = inflated["inadimplente"] | (rng.random(len(train)) < 0.25)
    out = {}
    for kind, frame in (("calibrated", train), ("miscalibrated", inflated)):
        result = train_and_register(
            frame, valid, settings=perf_settings, model_name=perf_settings.model_name,
            experiment_name=TRAIN_EXPERIMENT,
            candidates={"hgb": HistGradientBoostingClassifier(max_iter=60, random_state=0)},
        )  # fmt: skip
        out[kind] = str(result.version)
    return out


@pytest.fixture(scope="module")
def scored_requests(
    perf_settings: Settings, lake: TestLakehouse, simulated: pd.DataFrame, versions
) -> None:
    """The miscalibrated version's answers to 700 applications of the matured window (10 minutes
    after each was made), and to 50 applicants of yesterday (no outcome yet)."""
    s = perf_settings
    model = load_version(s, s.model_name, versions["miscalibrated"])
    inside = simulated[simulated["data_solicitacao"] >= pd.Timestamp(NOW - timedelta(days=540))]
    matured = inside.sort_values("data_solicitacao").head(SCORED)
    recent = _labelled(50, 303, 2025).assign(data_solicitacao=pd.Timestamp(NOW - timedelta(days=1)))
    table = lake.create(
        "bronze", "scored_requests",
        {"id_requisicao": "varchar", "proponente_id": "varchar", "requested_at": "bigint",
         "model_version": "varchar", "probabilidade_inadimplencia": "double"},
    )  # fmt: skip
    rows = []
    for frame in (matured, recent):
        prob = current_inputs(frame, model)["prob_default"].to_numpy()
        when = pd.to_datetime(frame["data_solicitacao"], utc=True) + pd.Timedelta(minutes=10)
        for pid, at, p in zip(frame["proponente_id"], when, prob, strict=True):
            ms = int(at.timestamp() * 1000)
            rows.append([uuid.uuid4().hex, pid, ms, versions["miscalibrated"], float(p)])
    lake.insert(table, ["id_requisicao", "proponente_id", "requested_at", "model_version",
                        "probabilidade_inadimplencia"], rows)  # fmt: skip


def _champion(s: Settings, version: str) -> None:
    tracking_client(s).set_registered_model_alias(s.model_name, CHAMPION, version)


def test_a_miscalibrated_champion_is_caught_on_matured_outcomes(
    perf_settings: Settings, versions, scored_requests, simulated: pd.DataFrame
) -> None:
    s = perf_settings
    _champion(s, versions["miscalibrated"])
    check = check_performance(s, as_of=NOW, experiment_name=MONITORING)
    assert check.matured and check.alarm, check.message
    apps = check.sources["applications"]
    window = simulated[
        (simulated["data_solicitacao"] >= pd.Timestamp(check.window_start))
        & (simulated["data_solicitacao"] < pd.Timestamp(check.window_end))
    ]
    assert apps.rows["labelled"] == len(window) > 1_000
    assert apps.rows["matured_without_outcome"] == 0
    assert apps.metrics["observed_rate"] == pytest.approx(window["inadimplente"].mean())
    assert apps.metrics["mean_prob"] - apps.metrics["observed_rate"] > 0.1
    assert apps.alarm and apps.reasons[0].startswith("realized default rate")
    assert check.reference_auc is not None and 0.6 < check.reference_auc < 1
    # the requests it answered: each matched to its own application's outcome
    req = check.sources["scored_requests"]
    # ... but one applicant applied twice five minutes apart: the request of the first (10
    # minutes later) is nearer the second, so the pair is ambiguous and one request is left
    # without outcome (never a negative): the join's documented limit
    assert req.rows["labelled"] + req.rows["matured_without_outcome"] == SCORED
    assert req.rows["labelled"] >= SCORED - 2 and req.rows["unmatured"] == 50
    assert req.rows["unmatured_with_outcome"] == 0
    assert req.alarm
    # segments judged by their size; the small ones reported, with it
    not_judged = {(r["segment"], r["value"]): r["n"] for r in apps.not_judged}
    for row in apps.segments:
        key = (row["segment"], row["value"])
        if row["n"] < s.performance_min_segment_rows:
            assert not_judged[key] == row["n"] and row["status"] == "not_judged"
        else:
            assert row["status"] in ("fine", "failed")

    client = tracking_client(s)
    run = client.get_run(check.mlflow_run_id)
    assert run.data.tags["check"] == "realized-performance"
    assert run.data.tags["alarm"] == "true"
    assert run.data.tags["window.window_end"] == check.window_end.isoformat()
    assert run.data.params["window_start"] == check.window_start.isoformat()
    assert run.data.metrics["applications.rows.labelled"] == len(window)
    assert client.get_experiment(run.info.experiment_id).name == MONITORING


def test_a_calibrated_champion_is_not_flagged(
    perf_settings: Settings, versions, scored_requests
) -> None:
    _champion(perf_settings, versions["calibrated"])
    check = check_performance(
        perf_settings, as_of=NOW, experiment_name=MONITORING, sources=("applications",)
    )
    assert check.matured and not check.alarm, check.reasons
    assert abs(check.sources["applications"].metrics["calibration_gap"]) < 0.03


def test_not_before_maturity_and_the_cli_exits_0_saying_so(
    perf_settings: Settings, versions, scored_requests, monkeypatch
) -> None:
    """150 days ago those applications were 230 to 300 days old and their early outcomes
    (repayments, a few defaults) had arrived: counted as they stood, they would show the
    miscalibrated champion far off. They are young: nothing is judged, exit 0."""
    s = perf_settings
    _champion(s, versions["miscalibrated"])
    for key, value in (("SAFRA_SCHEMA_PREFIX", s.schema_prefix),
                       ("SAFRA_BRONZE_SCHEMA", s.bronze_schema),
                       ("SAFRA_FEAST_PROJECT", s.feast_project),
                       ("SAFRA_DATA_DIR", str(s.data_dir)),
                       ("SAFRA_TRINO_CA_CERT", s.trino_ca_cert)):  # fmt: skip
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    as_of = NOW - timedelta(days=150)
    try:
        out = CliRunner().invoke(
            app, ["performance", "--json", "--model-name", s.model_name,
                  "--as-of", as_of.strftime("%Y-%m-%dT%H:%M:%S")],
        )  # fmt: skip
    finally:
        settings_module.get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["matured"] is False and summary["alarm"] is False
    assert summary["message"].startswith("no matured outcomes yet")
    apps = summary["sources"]["applications"]
    assert apps["rows"]["labelled"] == 0
    assert apps["rows"]["unmatured_with_outcome"] > 600  # early outcomes, never negatives
    assert summary["sources"]["scored_requests"]["rows"]["labelled"] == 0

    plain = CliRunner().invoke(
        app, ["performance", "--model-name", s.model_name, "--as-of",
              as_of.strftime("%Y-%m-%dT%H:%M:%S")],
    )  # fmt: skip
    assert plain.exit_code == 0 and "no matured outcomes yet" in " ".join(plain.output.split())


def test_no_champion_is_exit_1_naming_the_cause(local_stack: Settings) -> None:
    out = CliRunner().invoke(app, ["performance", "--json", "--model-name", "never-trained-xyz"])
    assert out.exit_code == 1
    assert "no champion yet" in " ".join(out.output.split())
