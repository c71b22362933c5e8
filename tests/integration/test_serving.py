"""The scoring API against the real local stack: MLflow registry, Feast + Redis, Kafka.

One registered model, one Feast project and one scored-requests topic per run (random suffix),
removed at the end. Two small models are trained on simulator data through
:func:`ml.train.train_and_register`; the first is promoted by :func:`ml.promote.promote_if_better`.
The HTTP contract runs in-process (``CreditScoring.to_asgi()`` + Starlette's TestClient); the hot
swap under load runs against a real ``bentoml serve`` process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

import ml.promote as promote
from ml.feature_store import HISTORY_VIEW, apply_repo, feature_store
from ml.promote import promote_if_better
from ml.promotion_rule import Guardrails
from ml.registry import CHAMPION, sign_version, tracking_client, version_by_alias
from ml.train import out_of_time_split, train_and_register
from pipelines.simulator import generate_applications, labelled_frame
from safra import contracts
from safra.kafka_clients import client_config
from safra.processes import free_port, process_group
from safra.settings import Settings, get_settings
from serving.contract import MAX_PRAZO_MESES
from serving.scoring import UNKNOWN_APPLICANT_ROUTED_NOTE
from serving.server import api_environment, bentoml_command

pytestmark = pytest.mark.stack

SUFFIX = uuid.uuid4().hex[:8]
API_KEY = f"integration-key-{SUFFIX}"
POLL_S = 1.0
SERVER_START_S = 240.0
"""A ``bentoml serve`` worker imports BentoML, MLflow, Feast and scikit-learn: ~10 s on an idle
2-core machine, minutes when other jobs load it."""
SWITCH_MARGIN_S = 10.0
"""Beyond one poll interval, how long loading, warming and checking a version may take."""
EXPERIMENT = "safra-serving-integration-tests"

SHORT = {"uf": "PR", "renda_liquida_mes": 20_000, "valor_solicitado": 60_000, "prazo": 24}
APPROVED = {"id_proponente": f"approve-{SUFFIX}", "uf": "PR", "renda_liquida_mes": 80_000,
            "valor_solicitado": 20_000, "prazo": 36}  # fmt: skip
DENIED = {"id_proponente": f"deny-{SUFFIX}", "uf": "MA", "renda_liquida_mes": 1_500,
          "valor_solicitado": 900_000, "prazo": 6}  # fmt: skip


def _env() -> dict[str, str]:
    return {
        "SAFRA_MODEL_NAME": f"safra-credit-it-{SUFFIX}",
        "SAFRA_FEAST_PROJECT": f"servingit{SUFFIX}",
        "SAFRA_TOPIC_SCORED_REQUESTS": f"safra.scored-requests.it-{SUFFIX}",
        "SAFRA_CHAMPION_POLL_S": str(POLL_S),
        "SAFRA_API_KEY": API_KEY,
    }


@contextlib.contextmanager
def _settings_with(env: dict[str, str]) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        try:
            yield get_settings()
        finally:
            get_settings.cache_clear()


@pytest.fixture(scope="module")
def serving_settings(local_stack: Settings) -> Iterator[Settings]:
    with _settings_with(_env()) as settings:
        yield settings
        client = tracking_client(settings)
        with contextlib.suppress(Exception):
            client.delete_registered_model(settings.model_name)
        admin = AdminClient(client_config(settings))
        with contextlib.suppress(Exception):
            admin.delete_topics([settings.topic_scored_requests])


def _labelled(seed: int) -> pd.DataFrame:
    apps = generate_applications(
        6_000, seed=seed, start=datetime(2024, 1, 1), end=datetime(2025, 1, 1)
    )
    return labelled_frame(apps, seed=seed)


@pytest.fixture(scope="module")
def versions(serving_settings: Settings) -> dict[str, str]:
    """v1 (champion, promoted: gradient boosting, served by the scikit-learn reference: it has
    no faithful ONNX), v2 (challenger: a logistic regression, served compiled), v3 (v2's files
    with a corrupt model and graph, tagged compiled)."""
    s = serving_settings
    rest, holdout = out_of_time_split(_labelled(21), valid_fraction=0.25)
    train, valid = out_of_time_split(rest, valid_fraction=0.2)

    def train_version(name: str, classifier: Any) -> str:
        result = train_and_register(
            train, valid, settings=s, model_name=s.model_name, experiment_name=EXPERIMENT,
            candidates={name: classifier},
        )  # fmt: skip
        assert result.version is not None
        return result.version

    hgb = HistGradientBoostingClassifier(max_iter=80, learning_rate=0.1, random_state=3)
    v1 = train_version("hist_gradient_boosting", hgb)
    decision = promote_if_better(s, s.model_name, holdout, guardrails=Guardrails(segment_floor=0.0))
    assert decision.champion_version_after == v1, decision.reason
    v2 = train_version("logistic_regression", LogisticRegression(C=0.03, max_iter=2_000))
    meta = tracking_client(s).get_model_version(s.model_name, v2)
    assert meta.tags["compiled"] == "onnx", meta.tags
    assert float(meta.tags["compiled_max_abs_diff"]) <= 1e-5
    return {"v1": v1, "v2": v2, "v3": _register_corrupt_version(s, v2)}


def _register_corrupt_version(s: Settings, good: str) -> str:
    """A version whose model files are there but whose serialized model is garbage — signed,
    as if Safra had registered it broken: it passes the signature check and fails to load."""
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"models:/{s.model_name}/{good}"
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
        serialized = list(local.rglob("model.skops")) + list(local.rglob("*.pkl"))
        assert serialized, f"no model file in {sorted(p.name for p in local.rglob('*'))}"
        serialized += list(local.rglob("*.onnx"))  # the compiled graph too, when there is one
        for path in serialized:
            path.write_bytes(b"this is not a model")
        client = tracking_client(s)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="corrupt") as run:
            mlflow.log_artifacts(str(local), "model")
        uri = f"runs:/{run.info.run_id}/model"
        tags = client.get_model_version(s.model_name, good).tags or {}
        compiled = {"compiled": tags["compiled"]} if "compiled" in tags else {}
        version = str(mlflow.register_model(uri, s.model_name, tags=compiled).version)
        sign_version(s, client, s.model_name, version)
        return version


def _register_unsigned_version(s: Settings, good: str) -> str:
    """The files of ``good`` (a working model) registered again, without Safra's signature."""
    source = tracking_client(s).get_model_version(s.model_name, good).source
    return str(mlflow.register_model(source, s.model_name).version)


def _history_row(pid: str, *, defaults: int, outcomes: int, score: int, ibama: float,
                 stamp: datetime, **profile: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "proponente_id": pid, "feature_timestamp": stamp, "n_solicitacoes": 6,
        "valor_medio": 40_000.0, "valor_max": 60_000.0, "valor_min": 20_000.0,
        "valor_desvio": 12_000.0, "primeira_solicitacao": stamp - timedelta(days=700),
        "ultima_solicitacao": stamp, "dias_entre_primeira_ultima": 700,
        "score_medio": float(score), "share_ibama": ibama, "coef_variacao": 0.3,
        "perfil_frequencia": "FREQUENTE", "perfil_volatilidade": "MODERADO",
        "inadimplencias_anteriores": defaults, "desfechos_conhecidos": outcomes,
        "serasa_score": score, **profile,
    }  # fmt: skip


@pytest.fixture(scope="module")
def online(serving_settings: Settings) -> Iterator[datetime]:
    """The Feast repo applied to this run's project; two known applicants written online."""
    store = feature_store(serving_settings)
    apply_repo(store, serving_settings)
    stamp = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
    rows = [
        _history_row(APPROVED["id_proponente"], defaults=0, outcomes=5, score=950, ibama=0.0,
                     stamp=stamp, area_total_hectares=800.0, cultura_principal="SOJA",
                     anos_experiencia=30),
        _history_row(DENIED["id_proponente"], defaults=4, outcomes=5, score=120, ibama=1.0,
                     stamp=stamp, area_total_hectares=5.0, cultura_principal="CAFE",
                     anos_experiencia=0),
    ]  # fmt: skip
    store.write_to_online_store(HISTORY_VIEW, pd.DataFrame(rows))
    yield stamp
    with contextlib.suppress(Exception):
        store.teardown()
    import shutil

    shutil.rmtree(serving_settings.data_dir / "feast" / serving_settings.feast_project, True)


def _wait_ready(client: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout_s}s: {client.get('/readyz').text}")


def _forget_bentoml_metrics() -> None:
    """BentoML registers its HTTP metrics in the process-wide Prometheus registry each time an
    app starts, so a second in-process app fails on duplicates: drop the previous app's."""
    from prometheus_client import REGISTRY

    for collector, names in list(REGISTRY._collector_to_names.items()):
        if any(n.startswith("bentoml_") for n in names):
            REGISTRY.unregister(collector)


@contextlib.contextmanager
def _in_process_api(env: dict[str, str] | None = None) -> Iterator[TestClient]:
    from serving.service import CreditScoring

    _forget_bentoml_metrics()
    with _settings_with({**_env(), **(env or {})}), TestClient(CreditScoring.to_asgi()) as client:
        yield client


@pytest.fixture(scope="module")
def api(versions: dict[str, str], online: datetime) -> Iterator[TestClient]:
    with _in_process_api() as client:
        _wait_ready(client)
        yield client


def _score(client: Any, body: Any, key: str | None = API_KEY) -> Any:
    headers = {"X-API-Key": key} if key is not None else {}
    return client.post("/v1/credit-score", json=body, headers=headers)


# --- the contract, in-process -------------------------------------------------------------------


def test_missing_or_wrong_api_key_is_401(api: TestClient) -> None:
    for key in (None, "", "wrong-key-wrong-key"):
        answer = _score(api, {**SHORT, "id_proponente": "x"}, key=key)
        assert answer.status_code == 401
        assert answer.json() == {"mensagem": "missing or wrong X-API-Key header"}
    assert api.get("/v1/model-info").status_code == 401
    assert api.get("/livez").status_code == 200  # probes need no key


def test_invalid_payloads_are_422_naming_field_and_reason(api: TestClient) -> None:
    answer = _score(api, {**SHORT, "id_proponente": "x", "renda_liquida_mes": 0, "uf": "ZZ"})
    assert answer.status_code == 422
    errors = {e["campo"]: e["motivo"] for e in answer.json()["erros"]}
    assert errors == {
        "uf": "unknown UF 'ZZ'; expected one of the 27 UFs (e.g. 'MT', 'PR')",
        "renda_liquida_mes": "Input should be greater than 0",
    }
    missing = _score(api, {"id_proponente": "x"})
    assert missing.status_code == 422
    assert {e["campo"] for e in missing.json()["erros"]} == {
        "uf", "renda_liquida_mes", "valor_solicitado", "prazo",
    }  # fmt: skip
    bad_json = api.post("/v1/credit-score", content=b"{not json", headers={"X-API-Key": API_KEY})
    assert bad_json.status_code == 422
    assert bad_json.json() == {
        "mensagem": "invalid request",
        "erros": [{"campo": "<body>", "motivo": "invalid JSON (line 1, column 2)"}],
    }


def test_a_cpf_or_cnpj_as_the_applicant_id_is_422_naming_the_field(api: TestClient) -> None:
    for field, body in (
        ("id_proponente", {**SHORT, "id_proponente": "529.982.247-25"}),
        ("id_proponente", {**SHORT, "id_proponente": "11222333000181"}),
    ):
        answer = _score(api, body)
        assert answer.status_code == 422
        ((error,),) = [answer.json()["erros"]]
        assert error["campo"] == field
        assert "send the applicant's pseudonymous id" in error["motivo"]


def test_scripted_applicants_are_approved_and_denied(
    api: TestClient, versions: dict[str, str], online: datetime, serving_settings: Settings
) -> None:
    approved = _score(api, APPROVED)
    denied = _score(api, DENIED)
    assert approved.status_code == 200, approved.text
    assert denied.status_code == 200, denied.text
    a, d = approved.json(), denied.json()
    assert a["decisao"] == "APPROVE", a
    assert d["decisao"] == "DENY", d
    assert a["probabilidade_inadimplencia"] < serving_settings.approve_below
    assert d["probabilidade_inadimplencia"] > serving_settings.deny_above
    assert a["score"] == round((1 - a["probabilidade_inadimplencia"]) * 1000)
    for answer in (a, d):
        assert answer["model_name"] == serving_settings.model_name
        assert answer["model_version"] == versions["v1"]
        assert answer["proponente_conhecido"] is True
        assert answer["atualizacao_features"]["feature_timestamp"] == online.isoformat()
        age = answer["atualizacao_features"]["idade_segundos"]
        assert age == pytest.approx(10 * 86400, abs=120)
        assert answer["motivos"], answer
        assert answer["latencia_ms"] > 0
    assert all(m["direcao"] == "reduz_risco" for m in a["motivos"])
    assert all(m["direcao"] == "aumenta_risco" for m in d["motivos"])


def _labelled_metric(text: str, sample: str) -> float:
    """The value of ``sample`` (name and labels, as exposed), 0 when absent."""
    for line in text.splitlines():
        if line.startswith(f"{sample} "):
            return float(line.split()[1])
    return 0.0


UNKNOWN_SCORED = 'safra_api_unknown_applicants_total{encaminhamento="scored"}'
UNKNOWN_ROUTED = 'safra_api_unknown_applicants_total{encaminhamento="manual_review"}'


def test_unknown_applicant_is_scored_on_the_request_and_flagged(api: TestClient) -> None:
    before = _labelled_metric(api.get("/metrics").text, UNKNOWN_SCORED)
    answer = _score(api, {**SHORT, "id_proponente": f"never-seen-{uuid.uuid4().hex}"})
    assert answer.status_code == 200, answer.text
    assert _labelled_metric(api.get("/metrics").text, UNKNOWN_SCORED) == before + 1
    body = answer.json()
    assert body["proponente_conhecido"] is False
    assert body["observacao"].startswith("proponente sem histórico")
    assert body["atualizacao_features"] == {"feature_timestamp": None, "idade_segundos": None}
    assert 0.0 < body["probabilidade_inadimplencia"] < 1.0


def test_whole_application_is_scored(api: TestClient) -> None:
    app = generate_applications(1, seed=8, start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))[0]
    answer = _score(api, app)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id_proponente"] == app["proponente_id"]


def test_openapi_document_describes_the_contract(api: TestClient) -> None:
    from openapi_spec_validator import validate

    document = api.get("/v1/openapi.json").json()
    validate(document)
    operation = document["paths"]["/credit-score"]["post"]
    assert set(operation["responses"]) == {"200", "401", "413", "422", "500", "503"}
    assert operation["security"] == [{"ApiKey": []}]
    assert document["paths"]["/model-info"]["get"]["security"] == [{"ApiKey": []}]
    assert document["components"]["securitySchemes"] == {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    }
    assert set(operation["responses"]["503"]["headers"]) == {"Retry-After"}
    schemas = document["components"]["schemas"]
    body = operation["requestBody"]["content"]["application/json"]
    refs = [{"$ref": f"#/components/schemas/{n}"} for n in ("ShortRequest", "WholeApplication")]
    assert body["schema"] == {"oneOf": refs}
    prazo = schemas["ShortRequest"]["properties"]["prazo"]
    assert (prazo["type"], prazo["exclusiveMinimum"], prazo["maximum"]) == (
        "integer", 0, MAX_PRAZO_MESES,
    )  # fmt: skip
    assert schemas["ShortRequest"]["additionalProperties"] is False
    assert "additionalProperties" not in schemas["WholeApplication"]  # other fields ignored
    assert schemas["ErrorBody"]["required"] == ["mensagem"]
    for name, example in body["examples"].items():  # the documented examples are scored
        answer = _score(api, example["value"])
        assert answer.status_code == 200, (name, answer.text)
    service = api.get("/docs.json").json()  # BentoML's index page shows the same contract
    validate(service)
    assert service["paths"]["/v1/credit-score"] == document["paths"]["/credit-score"]
    assert {"/livez", "/readyz", "/metrics"} <= set(service["paths"])


def test_docs_pages_load_nothing_from_outside(api: TestClient) -> None:
    for page_path in ("/v1/docs", "/"):
        page = api.get(page_path)
        assert page.status_code == 200
        assert "http://" not in page.text and "https://" not in page.text, page_path
        base = page_path.rsplit("/", 1)[0] + "/"
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(assets) == 3, assets
        for asset in assets:
            url = asset if asset.startswith("/") else base + asset.removeprefix("./")
            assert api.get(url).status_code == 200, url


def test_body_over_the_limit_is_413_and_other_errors_in_the_same_body(api: TestClient) -> None:
    big = {**SHORT, "id_proponente": "x", "pad": "x" * 70_000}
    answer = _score(api, big)
    assert answer.status_code == 413
    assert answer.json() == {"mensagem": "request body too large (the limit is 65536 bytes)"}
    wrong_method = api.get("/v1/credit-score")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"mensagem": "Method Not Allowed"}
    assert wrong_method.headers["Allow"] == "POST"


def test_model_info(api: TestClient, versions: dict[str, str], serving_settings: Settings) -> None:
    answer = api.get("/v1/model-info", headers={"X-API-Key": API_KEY})
    assert answer.status_code == 200, answer.text
    info = answer.json()
    assert info["model_name"] == serving_settings.model_name
    assert info["model_version"] == versions["v1"]
    assert 0.5 < info["metricas"]["valid_roc_auc"] < 1.0
    assert info["campeao_desde"] is not None
    assert info["promocao"]["action"] == "first-champion"
    assert info["limiares"] == {"approve_below": 0.10, "deny_above": 0.30}
    assert info["caminho"] == "referencia"  # gradient boosting: no faithful ONNX
    assert info["caminho_motivo"].startswith("reference-only: ")


def test_metrics_count_decisions(api: TestClient) -> None:
    _score(api, APPROVED)
    text = api.get("/metrics").text
    assert 'safra_api_scored_requests_total{decisao="APPROVE"}' in text
    assert "safra_api_model_swaps_total" in text


def test_corrupt_champion_is_never_swapped_in(
    api: TestClient, versions: dict[str, str], serving_settings: Settings, caplog
) -> None:
    client = tracking_client(serving_settings)
    name = serving_settings.model_name
    with caplog.at_level(logging.ERROR, logger="serving.model_watcher"):
        client.set_registered_model_alias(name, CHAMPION, versions["v3"])
        try:
            deadline = time.monotonic() + POLL_S + SWITCH_MARGIN_S
            failed: dict[str, str] = {}
            while time.monotonic() < deadline and versions["v3"] not in failed:
                time.sleep(0.2)
                info = api.get("/v1/model-info", headers={"X-API-Key": API_KEY}).json()
                failed = info["observacao_alias"]["versoes_com_falha"]
                answer = _score(api, APPROVED)
                assert answer.status_code == 200
                assert answer.json()["model_version"] == versions["v1"]
            assert versions["v3"] in failed, "the corrupt version was never tried"
            assert api.get("/readyz").status_code == 200
        finally:
            client.set_registered_model_alias(name, CHAMPION, versions["v1"])
    assert f"{name} v{versions['v3']} (@champion) failed to load or check" in caplog.text
    assert f"still serving v{versions['v1']}" in caplog.text


def _metric(text: str, name: str) -> float:
    """The value of the sample ``name`` (no labels) in a Prometheus exposition, 0 when absent."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


def test_unsigned_champion_is_refused_and_counted(
    api: TestClient, versions: dict[str, str], serving_settings: Settings, caplog
) -> None:
    client = tracking_client(serving_settings)
    name = serving_settings.model_name
    unsigned = _register_unsigned_version(serving_settings, versions["v1"])
    untrusted_before = _metric(api.get("/metrics").text, "safra_api_model_untrusted_total")
    failed_before = _metric(api.get("/metrics").text, "safra_api_model_load_failures_total")
    with caplog.at_level(logging.ERROR, logger="serving.model_watcher"):
        client.set_registered_model_alias(name, CHAMPION, unsigned)
        try:
            deadline = time.monotonic() + POLL_S + SWITCH_MARGIN_S
            refused: list[str] = []
            while time.monotonic() < deadline and unsigned not in refused:
                time.sleep(0.2)
                info = api.get("/v1/model-info", headers={"X-API-Key": API_KEY}).json()
                refused = info["observacao_alias"]["versoes_nao_confiaveis"]
                answer = _score(api, APPROVED)
                assert answer.status_code == 200
                assert answer.json()["model_version"] == versions["v1"]
            assert unsigned in refused, "the unsigned version was never tried"
            assert info["model_version"] == versions["v1"]
            assert info["observacao_alias"]["untrusted_loads"] >= 1
            assert "no signature tag" in info["observacao_alias"]["versoes_com_falha"][unsigned]
            assert api.get("/readyz").status_code == 200
        finally:
            client.set_registered_model_alias(name, CHAMPION, versions["v1"])
    metrics = api.get("/metrics").text
    assert _metric(metrics, "safra_api_model_untrusted_total") == untrusted_before + 1
    assert _metric(metrics, "safra_api_model_load_failures_total") == failed_before
    assert f"{name} v{unsigned} (@champion) refused, untrusted: no signature tag" in caplog.text
    assert f"still serving v{versions['v1']}" in caplog.text


def _wait_metric(api: TestClient, name: str, value: float) -> None:
    deadline = time.monotonic() + POLL_S + SWITCH_MARGIN_S
    while _metric(api.get("/metrics").text, name) != value:
        assert time.monotonic() < deadline, f"{name} never became {value}"
        time.sleep(0.2)


def test_a_manual_alias_move_is_flagged_until_recorded_with_its_verdict(
    api: TestClient, versions: dict[str, str], serving_settings: Settings
) -> None:
    s, name = serving_settings, serving_settings.model_name
    client = tracking_client(s)
    _, holdout = out_of_time_split(_labelled(21), valid_fraction=0.25)
    _wait_metric(api, "safra_champion_unrecorded", 0.0)
    try:
        client.set_registered_model_alias(name, CHAMPION, versions["v2"])  # by hand, as in the UI
        _wait_metric(api, "safra_champion_unrecorded", 1.0)  # seen within one poll
        info = api.get("/v1/model-info", headers={"X-API-Key": API_KEY}).json()
        assert info["observacao_alias"]["champion_unrecorded"] is True
        # the audit records it and judges it (a bound no model keeps: a breach, on purpose)
        record = promote.reconcile(s, client, name, holdout, Guardrails(calibration_bound=0.0))
        assert record is not None and record.guardrails.startswith("breach: calibration gap")
        _wait_metric(api, "safra_champion_unrecorded", 0.0)
        _wait_metric(api, "safra_champion_guardrail_breach", 1.0)
    finally:
        client.set_registered_model_alias(name, CHAMPION, versions["v1"])
        back = promote.reconcile(s, client, name, holdout, Guardrails(segment_floor=0.0))
    assert back is not None and back.guardrails == "hold"
    _wait_metric(api, "safra_champion_guardrail_breach", 0.0)


# --- in-process APIs of their own (after every test of the module's `api`: BentoML keeps one
# current service instance per process, and closing one unsets it) -----------------------------


def test_unknown_applicants_go_to_manual_review_when_the_store_looks_stale_or_empty(
    versions: dict[str, str], online: datetime
) -> None:
    """Stale: the newest history read is 10 days old, the limit 5. Empty: the last 3 lookups
    (the window) found nobody. A known applicant is decided as usual either way."""
    env = {"SAFRA_SERVING_STALE_AFTER_DAYS": "5", "SAFRA_SERVING_UNKNOWN_WINDOW": "3"}
    with _in_process_api(env) as client:
        _wait_ready(client)
        before = _labelled_metric(client.get("/metrics").text, UNKNOWN_ROUTED)
        known = _score(client, APPROVED).json()
        assert known["decisao"] == "APPROVE" and "observacao" not in known
        unknown = [
            _score(client, {**APPROVED, "id_proponente": f"never-seen-{uuid.uuid4().hex}"}).json()
            for _ in range(3)
        ]
        assert [a["decisao"] for a in unknown] == ["MANUAL_REVIEW"] * 3
        assert [a["observacao"] for a in unknown] == [
            f"{UNKNOWN_APPLICANT_ROUTED_NOTE}: o histórico mais recente lido tem 10 dias "
            "(limite: 5 dias)",
        ] * 2 + [
            f"{UNKNOWN_APPLICANT_ROUTED_NOTE}: nenhum dos últimos 3 proponentes consultados "
            "está no store"
        ]  # fmt: skip
        assert all(a["proponente_conhecido"] is False for a in unknown)
        metrics = client.get("/metrics").text
        assert _labelled_metric(metrics, UNKNOWN_ROUTED) == before + 3


def test_no_champion_is_not_ready_and_says_why(online: datetime) -> None:
    with _in_process_api({"SAFRA_MODEL_NAME": f"no-such-model-{SUFFIX}"}) as client:
        time.sleep(0.5)
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 503
        answer = _score(client, {**SHORT, "id_proponente": "x"})
        assert answer.status_code == 503
        assert answer.json() == {"mensagem": "cannot score now: no champion model is loaded"}
        assert answer.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("env", "says", "logged"),
    [
        ({"SAFRA_REDIS_URL": "redis://127.0.0.1:{port}/0"},
         "the online feature store (Redis) is unavailable",
         "the online feature store (Redis) "),  # "cannot be read: <why>" or "did not answer"
        ({"SAFRA_KAFKA_BOOTSTRAP": "127.0.0.1:{port}"},
         "the scored-request log (Kafka) is unavailable", "Kafka at 127.0.0.1:{port}"),
    ],
    ids=["redis-down", "kafka-down"],
)  # fmt: skip
def test_dependency_down_is_a_clear_503_without_internals(
    versions: dict[str, str], online: datetime, env: dict[str, str], says: str, logged: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    port = free_port()
    closed = {k: v.format(port=port) for k, v in env.items()}
    caplog.set_level(logging.WARNING, logger="serving.service")
    with _in_process_api(closed) as client:
        deadline = time.monotonic() + 30
        while client.get("/v1/model-info", headers={"X-API-Key": API_KEY}).status_code != 200:
            assert time.monotonic() < deadline, "the champion was never loaded"
            time.sleep(0.2)
        answer = _score(client, APPROVED)
        while says not in answer.text and time.monotonic() < deadline:
            time.sleep(0.3)
            answer = _score(client, APPROVED)
        began = time.perf_counter()
        answer = _score(client, APPROVED)
        assert time.perf_counter() - began < 3.0
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"mensagem": f"cannot score now: {says}"}
        assert answer.headers["Retry-After"] == "1"
        assert client.get("/readyz").status_code == 503
    assert f"cannot score now: {logged.format(port=port)}" in caplog.text  # the detail: logged


# --- a real server: the contract fuzzed, the limits -------------------------------------------


_CONTRACT_LOG: dict[str, Path] = {}
"""The ``bentoml serve`` log of each contract server, by URL (its access log times answers)."""


@pytest.fixture(scope="module")
def contract_server(
    versions: dict[str, str], online: datetime, serving_settings: Settings, tmp_path_factory: Any
) -> Iterator[str]:
    """``bentoml serve`` with one worker, at most 2 scoring requests in flight and its access log
    on (off by default; :func:`_served_ms` reads it). A port taken
    between :func:`free_port` and the bind (the ports are in the ephemeral range, which a load
    test on the same machine churns through) means another port, up to 3 times."""
    settings = serving_settings
    for attempt in range(3):
        log = tmp_path_factory.mktemp("contract") / "bentoml.log"
        port = free_port(settings.bind_host)
        env = {**os.environ, **_env(), **api_environment(settings),
               "SAFRA_SERVING_PORT": str(port), "SAFRA_SERVING_WORKERS": "1",
               "SAFRA_SERVING_MAX_CONCURRENCY": "2",
               # only the concurrency limit sheds here: the 503 test asserts its message
               "SAFRA_SERVING_MAX_QUEUE_MS": "60000",
               "SAFRA_SERVING_ACCESS_LOG": "true"}  # fmt: skip
        with process_group(bentoml_command(settings, port), log, env, stop_timeout_s=20) as proc:
            url = f"http://{settings.bind_host}:{port}"
            deadline = time.monotonic() + SERVER_START_S
            while "Could not bind" not in log.read_text() and proc.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        _CONTRACT_LOG[url] = log
                        yield url
                        return
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        print(f"bentoml serve on port {port} did not start (attempt {attempt + 1}); another port")
    raise AssertionError(log.read_text()[-3000:])


def test_schemathesis_finds_no_failure(contract_server: str, tmp_path: Path) -> None:
    """Every check: no 5xx, no undocumented status, header or content type, every schema-valid
    body accepted and every invalid one refused, answers as their schema says, no access
    without the key. Bounded examples: about a minute."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run",
        f"{contract_server}/v1/openapi.json", "--url", f"{contract_server}/v1",
        "-H", f"X-API-Key: {API_KEY}", "--checks", "all", "--max-examples", "25",
        "--seed", "13", "--generation-database", "none", "--workers", "1", "--no-color",
        "--request-timeout", "10",
    ]  # fmt: skip
    run = subprocess.run(  # in tmp_path: its crash cache (.schemathesis/) stays out of the repo
        command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    print(f"schemathesis: {run.stdout.strip().splitlines()[-1].strip('= ')}")


def _served_ms(log: Path, path: str, status: int) -> list[float]:
    """How long the server took for each ``path`` answered ``status``, from its access log
    (request received to answer sent: the client's own threads and the accept queue apart)."""
    pattern = re.compile(
        rf"path={re.escape(path)},.*\(status={status},.*\) ([0-9.]+)ms"
    )  # fmt: skip
    return [float(m.group(1)) for m in pattern.finditer(log.read_text())]


def test_a_saturated_worker_answers_503_at_once(contract_server: str) -> None:
    """At most 2 scoring requests in flight (the fixture's worker): 24 clients at once get
    503 + Retry-After beyond that, answered without waiting for a scoring slot."""
    from concurrent.futures import ThreadPoolExecutor

    log = _CONTRACT_LOG[contract_server]
    shed_before = len(_served_ms(log, "/v1/credit-score", 503))
    limits = httpx.Limits(max_connections=24, max_keepalive_connections=24)
    with httpx.Client(base_url=contract_server, timeout=30, limits=limits) as http:

        def one(_: int) -> tuple[int, str | None, Any]:
            r = http.post("/v1/credit-score", json=APPROVED, headers={"X-API-Key": API_KEY})
            return r.status_code, r.headers.get("Retry-After"), r.json()

        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(one, range(96)))
    assert {status for status, *_ in results} <= {200, 503}
    shed = [r for r in results if r[0] == 503]
    assert shed and len(shed) < len(results)
    for _, retry_after, body in shed:
        assert retry_after == "1"
        assert body == {"mensagem": "cannot score now: this worker is at its concurrency limit"}
    time.sleep(1.0)  # the access log is written after the answer
    shed_ms = _served_ms(log, "/v1/credit-score", 503)[shed_before:]
    scored_ms = _served_ms(log, "/v1/credit-score", 200)[-(len(results) - len(shed)) :]
    assert len(shed_ms) == len(shed)
    shed_p50, scored_p50 = statistics.median(shed_ms), statistics.median(scored_ms)
    print(f"saturated: {len(shed)}/{len(results)} shed; served in median {shed_p50:.1f} ms "
          f"(503), {scored_p50:.1f} ms (200)")  # fmt: skip
    assert shed_p50 < scored_p50


def test_a_streamed_body_over_the_limit_is_413(contract_server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(80):
            yield b"x" * 1024

    answer = httpx.post(f"{contract_server}/v1/credit-score", content=chunks(),
                        headers={"X-API-Key": API_KEY}, timeout=10)  # fmt: skip
    assert answer.status_code == 413
    assert answer.json() == {"mensagem": "request body too large (the limit is 65536 bytes)"}


# --- a real server: hot swap under load -----------------------------------------------------------


@contextlib.contextmanager
def _bentoml_serve(settings: Settings, log: Path) -> Iterator[str]:
    """``bentoml serve`` of the API (as ``safra serve`` runs it) on a free port."""
    port = free_port(settings.bind_host)
    env = {**os.environ, **_env(), **api_environment(settings), "SAFRA_SERVING_PORT": str(port)}
    with process_group(bentoml_command(settings, port), log, env, stop_timeout_s=20):
        yield f"http://{settings.bind_host}:{port}"


def test_hot_swap_under_load_with_a_real_server(
    versions: dict[str, str], online: datetime, serving_settings: Settings, tmp_path: Path
) -> None:
    registry = tracking_client(serving_settings)
    name = serving_settings.model_name
    assert version_by_alias(registry, name, CHAMPION) == versions["v1"]
    with _bentoml_serve(serving_settings, tmp_path / "bentoml.log") as url, httpx.Client(
        base_url=url, timeout=10
    ) as http:  # fmt: skip
        deadline = time.monotonic() + SERVER_START_S
        while True:
            with contextlib.suppress(httpx.TransportError):
                if http.get("/readyz").status_code == 200:
                    break
            assert time.monotonic() < deadline, (tmp_path / "bentoml.log").read_text()[-3000:]
            time.sleep(0.5)

        answers: list[tuple[float, int, str | None]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                while not stop.is_set():
                    try:
                        r = client.post("/v1/credit-score", json=APPROVED,
                                        headers={"X-API-Key": API_KEY})  # fmt: skip
                        version = r.json()["model_version"] if r.status_code == 200 else None
                        answers.append((time.monotonic(), r.status_code, version))
                    except Exception as exc:  # noqa: BLE001 - every failure is counted
                        answers.append((time.monotonic(), -1, repr(exc)))

        client_thread = threading.Thread(target=load, daemon=True)
        client_thread.start()
        time.sleep(1.5)
        moved_at = time.monotonic()
        registry.set_registered_model_alias(name, CHAMPION, versions["v2"])
        while time.monotonic() < moved_at + POLL_S + SWITCH_MARGIN_S:
            if answers and answers[-1][2] == versions["v2"]:
                break
            time.sleep(0.05)
        time.sleep(1.0)
        stop.set()
        client_thread.join(15)
        registry.set_registered_model_alias(name, CHAMPION, versions["v1"])

    failed = [a for a in answers if a[1] != 200]
    assert not failed, failed[:5]
    assert len(answers) > 10
    first_v2 = next((t for t, _, v in answers if v == versions["v2"]), None)
    assert first_v2 is not None, "never switched to v2"
    switch_s = first_v2 - moved_at
    assert switch_s <= POLL_S + SWITCH_MARGIN_S
    after = [v for t, _, v in answers if t >= first_v2]
    assert set(after) == {versions["v2"]}, "an answer went back to the old version"
    assert {v for t, _, v in answers if t < moved_at} == {versions["v1"]}
    print(f"hot swap: {len(answers)} requests, 0 failed, switched {switch_s:.2f}s after the move")

    records = _consume(serving_settings, want_version=versions["v2"])
    record = records[-1]
    assert record["model_name"] == name
    assert record["proponente_id"] == APPROVED["id_proponente"]
    assert record["decisao"] in ("APPROVE", "MANUAL_REVIEW", "DENY")
    assert record["proponente_conhecido"] is True
    assert record["features"]["serasa_score"] == 950.0
    assert record["latency_ms"] > 0


def _consume(s: Settings, want_version: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    consumer = Consumer(client_config(s, **{"group.id": f"it-{uuid.uuid4()}",
                        "auto.offset.reset": "earliest", "enable.auto.commit": False}))  # fmt: skip
    consumer.subscribe([s.topic_scored_requests])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not any(
            r["model_version"] == want_version for r in found
        ):
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            headers = dict(message.headers() or [])
            assert headers["schema.subject"] == b"scored_request"
            version = int(headers["schema.version"])
            found.append(contracts.decode(message.value(), version, "scored_request"))
    finally:
        consumer.close()
    assert any(r["model_version"] == want_version for r in found), (
        f"{len(found)} records, none of v{want_version}"
    )
    return found
