"""`safra drift` against the real MLflow and Trino of the local stack.

A tiny model is trained and registered under a unique name (its run logs the reference sample),
then made champion. Current data is passed as a DataFrame, and, for the Trino-reading path,
written to this test's own silver/bronze schemas (nothing depends on other data in the stack).
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import trino
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from commands.cli import app
from ml.drift import (
    MONITORED_CATEGORICAL,
    MONITORED_NUMERIC,
    PREDICTION,
    DriftError,
    check_drift,
    current_inputs,
)
from ml.features import APPLICATION_FIELDS, NUMERIC
from ml.registry import CHAMPION, load_version, tracking_client
from ml.train import train_and_register
from pipelines.simulator import applications_frame, generate_applications, generate_outcomes
from safra import settings as settings_module
from safra.lakehouse import trino_connection
from safra.settings import Settings
from tests.integration.lakehouse_tables import publish_table

pytestmark = pytest.mark.stack

TRAIN_EXPERIMENT = "safra-credit-integration-tests"
MONITORING = "safra-monitoring-integration-tests"
BUREAU = {"serasa_score", "serasa_score_ausente", PREDICTION}


def _applications(n: int, seed: int, scenario: str = "baseline", year: int = 2024) -> pd.DataFrame:
    apps = generate_applications(
        n, seed=seed, start=datetime(year, 1, 1), end=datetime(year + 1, 1, 1), scenario=scenario
    )
    frame = applications_frame(apps)
    frame["inadimplente"] = [o["inadimplente"] for o in generate_outcomes(apps, seed, scenario)]
    return frame


def _make_champion(
    settings: Settings, prefix: str, rows: int, valid_rows: int, seed: int
) -> tuple[str, str]:
    """(model name, version): a gradient boosting on ``rows`` baseline applications made
    champion under a unique name, its reference sample logged."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    result = train_and_register(
        _applications(rows, seed=seed), _applications(valid_rows, seed=seed + 1, year=2025),
        settings=settings, model_name=name, experiment_name=TRAIN_EXPERIMENT,
        candidates={"hgb": HistGradientBoostingClassifier(max_iter=60, random_state=0)},
    )  # fmt: skip
    tracking_client(settings).set_registered_model_alias(name, CHAMPION, result.version)
    return name, str(result.version)


@pytest.fixture(scope="module")
def champion(local_stack: Settings) -> Iterator[tuple[str, str]]:
    """A small champion (4,000 training rows)."""
    name, version = _make_champion(local_stack, "drift-it", 4_000, 1_000, seed=201)
    yield name, version
    tracking_client(local_stack).delete_registered_model(name)


@pytest.fixture
def isolated(local_stack: Settings, tmp_path: Path) -> Settings:
    """The stack's settings with reports under ``tmp_path``."""
    return local_stack.model_copy(update={"data_dir": tmp_path})


def test_bureau_recalibration_is_detected_reported_and_logged(champion, isolated) -> None:
    name, version = champion
    current = _applications(2_000, seed=203, scenario="bureau_recalibration")
    result = check_drift(isolated, current=current, model_name=name, experiment_name=MONITORING)

    assert result.drift is True
    assert (result.model_name, result.model_version) == (name, version)
    given = result.sources["given"].comparison
    assert set(given.drifted_columns) == BUREAU
    assert given.drifted_share == pytest.approx(3 / 17)
    assert (given.rows_reference, given.rows_current) == (4_000, 2_000)
    report = result.sources["given"].report_path
    assert report.parent == isolated.reports_dir / "drift"
    assert report.is_file() and report.stat().st_size > 10_000

    client = tracking_client(isolated)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["model_name"] == name
    assert run.data.tags["model_version"] == version
    assert run.data.tags["drift"] == "true"
    assert run.data.metrics["drift"] == 1.0
    assert run.data.metrics["drifted_share"] == pytest.approx(3 / 17)
    assert run.data.metrics["given.drifted_columns"] == 3.0
    assert run.data.metrics["given.column.serasa_score"] > 0.5
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "drift")}
    assert artifacts == {f"drift/{report.name}", "drift/summary.json"}
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == MONITORING
    assert result.mlflow_run_url.endswith(f"/runs/{result.mlflow_run_id}")


def test_baseline_is_no_drift(champion, isolated) -> None:
    name, _ = champion
    current = _applications(2_000, seed=204)
    result = check_drift(isolated, current=current, model_name=name, experiment_name=MONITORING)
    assert result.drift is False
    assert result.summary()["drifted_columns"] == []
    assert result.sources["given"].report_path.is_file()


@pytest.fixture(scope="module")
def large_champion(local_stack: Settings) -> Iterator[str]:
    """A champion with a monitoring-sized reference (20,000 rows): segments of 1 to 5 % of the
    portfolio can be judged."""
    name, _ = _make_champion(local_stack, "drift-seg-it", 20_000, 2_000, seed=211)
    yield name
    tracking_client(local_stack).delete_registered_model(name)


def test_drought_is_detected_and_named_by_segment(large_champion, isolated) -> None:
    """Soybean in MT/GO/MS: no population-wide column moves, the segments do; the JSON, the
    HTML report and MLflow name them; small segments are reported as not judged."""
    current = _applications(20_000, seed=213, scenario="drought")
    result = check_drift(
        isolated, current=current, model_name=large_champion, experiment_name=MONITORING
    )
    summary = result.summary()
    assert (summary["drift"], summary["population_drift"]) == (True, False)
    segments = summary["sources"]["given"]["segments"]
    drifted = {d["segment"]: d for d in segments["drifted"]}
    assert "uf_cultura=MT/SOJA" in drifted, list(drifted)
    assert summary["drifted_segments"] == list(drifted)
    assert drifted["uf_cultura=MT/SOJA"]["columns"][0]["column"] == "valor_por_hectare"
    assert all(n.endswith("SOJA") or n == "regiao=CENTRO_OESTE" for n in drifted), list(drifted)
    assert segments["judged"] >= 60 and segments["alpha"] == isolated.drift_alpha
    small = segments["not_judged"]
    assert small and all(
        min(s["rows_reference"], s["rows_current"]) < isolated.drift_min_segment_rows for s in small
    )
    assert all("columns" not in s for s in small)  # neither drifted nor fine

    html = result.sources["given"].report_path.read_text(encoding="utf-8")
    assert "valor_por_hectare @ uf_cultura=MT/SOJA" in html
    run = tracking_client(isolated).get_run(result.mlflow_run_id)
    assert "uf_cultura=MT/SOJA" in run.data.tags["drifted_segments"].split(",")
    assert run.data.metrics["given.drifted_segments"] == float(len(drifted))


def test_baseline_is_no_drift_in_any_segment(large_champion, isolated) -> None:
    current = _applications(20_000, seed=214)
    result = check_drift(
        isolated, current=current, model_name=large_champion, experiment_name=MONITORING
    )
    assert result.drift is False
    assert result.summary()["drifted_segments"] == []


def test_no_champion_and_too_little_data_are_errors(champion, isolated) -> None:
    with pytest.raises(DriftError, match="no champion yet"):
        check_drift(isolated, current=_applications(10, seed=1), model_name="never-trained-xyz")
    with pytest.raises(DriftError, match="no current data.*given: 999 rows"):
        check_drift(isolated, current=_applications(999, seed=205), model_name=champion[0])


# --- the lakehouse path: this test's own silver and bronze tables, read through Trino -----------


def _sql(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


@pytest.fixture(scope="module")
def lakehouse(champion, local_stack: Settings) -> Iterator[dict[str, str]]:
    """Own schemas holding 1,200 bureau-recalibration applications (silver) and the same
    applications as scored requests (bronze: numeric feature map + the champion's probability)."""
    tag = f"it_drift_{uuid.uuid4().hex[:8]}_"
    silver, bronze = f"{tag}silver", f"{tag}bronze"
    raw = _applications(1_200, seed=206, scenario="bureau_recalibration", year=2026)
    inputs = current_inputs(raw, load_version(local_stack, *champion))
    cat = local_stack.iceberg_catalog
    conn = trino_connection(local_stack, source="it-drift")
    cur = conn.cursor()

    def run(sql: str) -> None:
        cur.execute(sql)
        cur.fetchall()

    try:
        for schema in (silver, bronze):
            run(f'create schema {cat}."{schema}"')
        run(
            f'create table {cat}."{silver}".silver_applications (data_solicitacao timestamp(6) '
            "with time zone, registro_valido boolean, renda_bruta_anual_declarada double, "
            "valor_solicitado_credito double, prazo_meses integer, area_total_hectares double, "
            "anos_experiencia integer, serasa_score integer, possui_experiencia_atividade "
            "boolean, ibama_autuacoes_ativas boolean, cultura_principal varchar, uf varchar, "
            "tipo_pessoa varchar, finalidade_credito varchar)"
        )
        run(
            f'create table {cat}."{bronze}".scored_requests (requested_at bigint, model_version '
            "varchar, probabilidade_inadimplencia double, features map(varchar, double))"
        )
        for start in range(0, len(raw), 400):
            part = raw.iloc[start : start + 400]
            rows = []
            for rec in part.to_dict("records"):
                when = f"from_unixtime({int(rec['data_solicitacao'])} / 1000.0)"
                values = [_sql(rec[c]) for c in APPLICATION_FIELDS]
                rows.append(f"({when}, true, {', '.join(values)})")
            # one invalid row, newest of all: never read
            rows.append(f"(from_unixtime(4102444800), false, {', '.join(['NULL'] * 12)})")
            run(
                f'insert into {cat}."{silver}".silver_applications (data_solicitacao, '
                f"registro_valido, {', '.join(APPLICATION_FIELDS)}) values {', '.join(rows)}"
            )
            scored = []
            for idx in part.index:
                keys = [c for c in NUMERIC if c != PREDICTION]
                vals = ", ".join(_sql(inputs.at[idx, c]) for c in keys)
                names = ", ".join(f"'{k}'" for k in keys)
                scored.append(
                    f"({int(raw.at[idx, 'data_solicitacao'])}, '{champion[1]}', "
                    f"{float(inputs.at[idx, PREDICTION])!r}, "
                    f"map(array[{names}], cast(array[{vals}] as array(double))))"
                )
            run(f'insert into {cat}."{bronze}".scored_requests values {", ".join(scored)}')
        publish_table(local_stack, silver, "silver_applications")
        yield {"schema_prefix": tag, "bronze_schema": bronze}
    finally:
        for schema, table in ((silver, "silver_applications"), (bronze, "scored_requests")):
            for sql in (f'drop table if exists {cat}."{schema}".{table}',
                        f'drop schema if exists {cat}."{schema}"'):  # fmt: skip
                with contextlib.suppress(trino.exceptions.TrinoQueryError):
                    run(sql)
        conn.close()


def test_cli_reads_the_lakehouse_and_prints_json(
    champion, lakehouse, local_stack: Settings, tmp_path: Path, monkeypatch
) -> None:
    """`safra drift --json`: both sources read through Trino, both drifted, exit code 0."""
    monkeypatch.setenv("SAFRA_SCHEMA_PREFIX", lakehouse["schema_prefix"])
    monkeypatch.setenv("SAFRA_BRONZE_SCHEMA", lakehouse["bronze_schema"])
    monkeypatch.setenv("SAFRA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAFRA_TRINO_CA_CERT", local_stack.trino_ca_cert)  # the stack's own
    settings_module.get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["drift", "--json", "--model-name", champion[0]])
    finally:
        settings_module.get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["drift"] is True
    assert summary["model_version"] == champion[1]
    assert summary["threshold"] == local_stack.drift_share
    assert summary["skipped"] == {}
    apps, scored = summary["sources"]["applications"], summary["sources"]["scored_requests"]
    assert apps["rows_current"] == 1_200  # the invalid row is not read
    assert set(apps["drifted_columns"]) == BUREAU
    assert apps["drifted_share"] == pytest.approx(3 / 17, abs=1e-6)
    # the feature map holds numbers only: the categorical columns are not compared
    assert set(scored["column_scores"]) == set(MONITORED_NUMERIC)
    assert not set(scored["column_scores"]) & set(MONITORED_CATEGORICAL)
    assert set(scored["drifted_columns"]) == BUREAU
    assert scored["rows_current"] == 1_200
    assert Path(summary["report_path"]).is_file()
    assert Path(summary["report_path"]).parent == tmp_path / "reports" / "drift"


def test_cli_without_champion_exits_1_naming_the_cause(local_stack: Settings) -> None:
    out = CliRunner().invoke(app, ["drift", "--json", "--model-name", "never-trained-xyz"])
    assert out.exit_code == 1
    assert "no champion yet" in " ".join(out.output.split())
