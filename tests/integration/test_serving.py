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
        assert answer.json() == {"detail": "missing or wrong X-API-Key header"}
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
    assert bad_json.json()["erros"][0]["campo"] == "<body>"


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


def test_unknown_applicant_is_scored_on_the_request_and_flagged(api: TestClient) -> None:
    answer = _score(api, {**SHORT, "id_proponente": f"never-seen-{uuid.uuid4().hex}"})
    assert answer.status_code == 200, answer.text
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


def test_no_champion_is_not_ready_and_says_why(online: datetime) -> None:
    with _in_process_api({"SAFRA_MODEL_NAME": f"no-such-model-{SUFFIX}"}) as client:
        time.sleep(0.5)
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 503
        answer = _score(client, {**SHORT, "id_proponente": "x"})
        assert answer.status_code == 503
        assert "no champion" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SAFRA_REDIS_URL": "redis://127.0.0.1:{port}/0"}, "online feature store (Redis)"),
        ({"SAFRA_KAFKA_BOOTSTRAP": "127.0.0.1:{port}"}, "Kafka at 127.0.0.1:"),
    ],
    ids=["redis-down", "kafka-down"],
)
def test_dependency_down_is_a_clear_503(
    versions: dict[str, str], online: datetime, env: dict[str, str], says: str
) -> None:
    closed = {k: v.format(port=free_port()) for k, v in env.items()}
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
        assert says in answer.json()["detail"]
        assert answer.json()["detail"].startswith("cannot score now: ")


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
