"""The credit-scoring API: a BentoML service that follows ``models:/<name>@champion``.

Run it with ``safra serve`` (or ``bentoml serve serving.service:CreditScoring``). Endpoints:

- ``POST /v1/credit-score`` — the scoring contract (:mod:`serving.scoring`); ``X-API-Key``;
- ``GET /v1/model-info`` — the model serving, its metrics, when it became champion, the
  thresholds; ``X-API-Key``;
- ``GET /livez`` (alive), ``GET /readyz`` (ready: a champion is loaded, Kafka reachable),
  ``GET /metrics`` (Prometheus: BentoML's own plus ``safra_api_*``), ``/v1/docs`` (OpenAPI).

Answers: 200; 401 missing or wrong API key; 422 invalid body, naming each field and reason;
503 no champion loaded / online store (Redis) or Kafka unreachable, saying which; never a trace.

Each worker process builds its own service instance: its own :class:`ModelWatcher` (so every
worker follows the alias), Feast store, Kafka producer and scoring thread: requests are validated
on the event loop, then scored together with those waiting (:mod:`serving.batching`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Sequence
from functools import cache
from typing import Any

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ml.signing import UntrustedModel
from safra.settings import get_settings
from serving.batching import Coalescer
from serving.contract import RequestError
from serving.model_watcher import ServingModel, registry_watcher
from serving.online_features import OnlineHistory
from serving.scored_log import ScoredRequestLog
from serving.scoring import Outcome, Parsed, Scorer, ServiceUnavailable

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
ONLINE_READ_TIMEOUT_S = 1.0
"""Deadline of the online-store read; past it the answer is a 503."""
REQUEST_TIMEOUT_S = 10
MAX_BATCH = 64
"""Most requests scored together (one frame of up to ~1,000 rows with the occluded copies)."""

v1 = FastAPI(
    title="Safra credit scoring",
    version="1",
    description="Probability of default, decision and reasons for rural credit applications.",
)


@cache
def _metrics() -> dict[str, Any]:
    """The API's Prometheus metrics, created once per process, after BentoML set up the
    multiprocess directory (so they show on every worker's ``/metrics``)."""
    import prometheus_client as prom

    return {
        "scored": prom.Counter(
            "safra_api_scored_requests", "Scored requests by decision", ["decisao"]
        ),
        "refused": prom.Counter(
            "safra_api_refused_requests", "Requests not scored, by HTTP status", ["status"]
        ),
        "swaps": prom.Counter("safra_api_model_swaps", "Champion versions swapped in"),
        "failed_loads": prom.Counter(
            "safra_api_model_load_failures",
            "Versions that failed to load, warm or check (untrusted ones apart)",
        ),
        "untrusted": prom.Counter(
            "safra_api_model_untrusted",
            "Versions refused before loading: signature missing, invalid or of another key, "
            "or artifacts altered after registration",
        ),
        "unrecorded": prom.Gauge(
            "safra_champion_unrecorded",
            "1 while @champion names a version Safra's alias history does not account for "
            "(a change made outside Safra, until `safra promotions` records it)",
            multiprocess_mode="livemax",
        ),
        "breach": prom.Gauge(
            "safra_champion_guardrail_breach",
            "1 when the recorded champion breaks a guardrail (judged after a manual change)",
            multiprocess_mode="livemax",
        ),
        "batch": prom.Histogram(
            "safra_api_batch_size",
            "Requests scored together (one online read, one prediction)",
            buckets=(1, 2, 4, 8, 16, 32, 64),
        ),
    }


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    _metrics()["refused"].labels(str(status)).inc()
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _default_history_reader(settings: Any) -> Any:
    from ml.feature_store import feature_store, online_history

    store = feature_store(settings)
    return lambda ids: online_history(store, list(ids))


@bentoml.service(
    name="safra_credit_scoring",
    traffic={"timeout": REQUEST_TIMEOUT_S},
    # read when `bentoml serve` imports this module (BentoML takes the worker count from the
    # decorator): SAFRA_SERVING_WORKERS, 2 by default — one per core of the reference machine
    workers=get_settings().serving_workers,
    http={"port": 3000},
)
@bentoml.asgi_app(v1, path="/v1")
class CreditScoring:
    """See the module docstring."""

    def __init__(self) -> None:
        settings = get_settings()
        self._api_key = settings.require_api_key().encode()
        self.settings = settings
        metrics = _metrics()
        self.watcher = registry_watcher(
            settings,
            on_swap=lambda _model: metrics["swaps"].inc(),
            on_failure=lambda _version, exc: metrics[
                "untrusted" if isinstance(exc, UntrustedModel) else "failed_loads"
            ].inc(),
            on_poll=lambda state: (
                metrics["unrecorded"].set(int(state.unrecorded)),
                metrics["breach"].set(int(state.guardrail_breach)),
            ),
        )
        self.scored_log = ScoredRequestLog(settings)
        self.history = OnlineHistory(_default_history_reader(settings), ONLINE_READ_TIMEOUT_S)
        self.scorer = Scorer(
            self.watcher,
            self.history,
            self.scored_log,
            settings.approve_below,
            settings.deny_above,
        )
        # requests waiting while a batch is scored are scored together (serving.batching)
        self.batcher: Coalescer[Parsed, Outcome] = Coalescer(
            self._score_batch, max_batch=MAX_BATCH, name="scoring"
        )

    def _score_batch(self, batch: Sequence[Parsed]) -> list[Outcome]:
        _metrics()["batch"].observe(len(batch))
        return self.scorer.score_parsed(batch)

    @bentoml.on_startup
    def _start_watching(self) -> None:
        self.watcher.start()

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.watcher.stop()
        self.batcher.close()
        self.history.close()
        self.scored_log.close()

    def __is_ready__(self) -> bool:
        reason = self.scorer.not_ready_reason()
        if reason is not None:
            logger.debug("not ready: %s", reason)
        return reason is None

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get(API_KEY_HEADER, "").encode()
        return bool(given) and hmac.compare_digest(given, self._api_key)

    @v1.post("/credit-score")
    async def credit_score(self, request: Request) -> JSONResponse:
        """Score one application (short request or whole application); see the module doc."""
        if not self._authorized(request):
            return _error(401, f"missing or wrong {API_KEY_HEADER} header")
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            problem = {"campo": "<body>", "motivo": f"invalid JSON: {exc}"}
            return _error(422, "invalid request", erros=[problem])
        try:
            parsed = self.scorer.parse(body)
        except RequestError as exc:
            return _error(422, "invalid request", erros=exc.errors)
        try:
            answer = await asyncio.wrap_future(self.batcher.submit(parsed))
        except Exception:
            logger.exception("scoring failed")
            return _error(500, "internal error while scoring (logged)")
        if isinstance(answer, ServiceUnavailable):
            return _error(503, f"cannot score now: {answer}")
        _metrics()["scored"].labels(answer["decisao"]).inc()
        return JSONResponse(answer)

    @v1.get("/model-info")
    def model_info(self, request: Request) -> JSONResponse:
        """The serving model: name, version, metrics, when promoted, thresholds."""
        if not self._authorized(request):
            return _error(401, f"missing or wrong {API_KEY_HEADER} header")
        serving = self.watcher.current
        if serving is None:
            return _error(503, f"no model serving: {self.watcher.not_ready_reason()}")
        return JSONResponse(model_info(serving, self))


def model_info(serving: ServingModel, service: CreditScoring) -> dict[str, Any]:
    prefix = "promotion."
    promotion = {k.removeprefix(prefix): v for k, v in serving.tags.items() if k.startswith(prefix)}
    state = service.watcher.state
    return {
        "model_name": serving.name,
        "model_version": serving.version,
        "run_id": serving.run_id,
        "metricas": dict(serving.metrics),
        "campeao_desde": serving.champion_since,
        "promocao": promotion,
        "carregado_em": serving.loaded_at,
        "caminho": serving.path,
        "caminho_motivo": serving.path_reason,
        "limiares": {
            "approve_below": service.settings.approve_below,
            "deny_above": service.settings.deny_above,
        },
        "observacao_alias": {
            "champion_version": state.champion_version,
            "last_poll_at": state.last_poll_at,
            "swaps": state.swaps,
            "failed_loads": state.failed_loads,
            "untrusted_loads": state.untrusted_loads,
            "recorded_champion": state.recorded_champion,
            "champion_unrecorded": state.unrecorded,
            "champion_guardrails": state.champion_guardrails,
            "versoes_com_falha": {v: f.error for v, f in service.watcher.failures.items()},
            "versoes_nao_confiaveis": sorted(
                v for v, f in service.watcher.failures.items() if f.untrusted
            ),
        },
        "intervalo_observacao_s": service.watcher.poll_s,
    }
