"""The credit-scoring API: a BentoML service that follows ``models:/<name>@champion``.

Run it with ``safra serve`` (or ``bentoml serve serving.service:CreditScoring``). Endpoints:

- ``POST /v1/credit-score`` — the scoring contract (:mod:`serving.scoring`); ``X-API-Key``;
- ``GET /v1/model-info`` — the model serving, its metrics, when it became champion, the
  thresholds; ``X-API-Key``;
- ``GET /livez`` (alive), ``GET /readyz`` (ready: a champion is loaded, the online store (Redis)
  answers, Kafka reachable), ``GET /metrics`` (Prometheus: BentoML's own plus ``safra_api_*``);
- ``/v1/openapi.json`` (the contract, generated from :mod:`serving.contract` by
  :mod:`serving.openapi`), ``/v1/docs`` (Swagger UI from local files); BentoML's index page
  ``/`` shows the whole service's document (``/docs.json``), also from local files.

Answers: 200; 401 missing or wrong API key; 413 body over ``SAFRA_SERVING_MAX_BODY_BYTES``; 422
invalid body, naming each field and reason; 503 + ``Retry-After`` with no champion loaded, the
online store (Redis) or Kafka unavailable, the worker at ``SAFRA_SERVING_MAX_CONCURRENCY``
requests in flight, or requests queueing for its event loop longer than
``SAFRA_SERVING_MAX_QUEUE_MS`` (:mod:`serving.queue_delay`): fast refusals, not a growing
queue; 500 for one request whose scoring failed (a bug), never its batch. Every error body
is :class:`serving.contract.ErrorBody` (``{"mensagem", "erros"}``): it says which dependency,
never a host, port, path or exception text — those go to the log.

Each worker process builds its own service instance: its own :class:`ModelWatcher` (so every
worker follows the alias), Feast store, Kafka producer and scoring thread: requests are validated
on the event loop, then scored together with those waiting (:mod:`serving.batching`).
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import Any

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ml.signing import UntrustedModel
from safra.settings import get_settings
from serving import openapi
from serving.batching import Coalescer
from serving.contract import RequestError
from serving.model_watcher import ServingModel, registry_watcher
from serving.online_features import FeaturesUnavailable, OnlineHistory, StoreFreshness
from serving.openapi import API_KEY_HEADER
from serving.queue_delay import QueueDelay
from serving.scored_log import ScoredRequestLog
from serving.scoring import (
    UNKNOWN_APPLICANT_ROUTED_NOTE,
    Outcome,
    Parsed,
    RowFailed,
    Scorer,
    ServiceUnavailable,
)

logger = logging.getLogger(__name__)

READINESS_PROBE_ID = "__readyz__"
"""The applicant id /readyz looks up: an online read that proves Redis and Feast answer."""
UNAVAILABLE_LOG_EVERY_S = 10.0
"""A 503's detail (hosts, exception text) is logged once per this many seconds per reason."""
ONLINE_READ_TIMEOUT_S = 1.0
"""Deadline of the online-store read; past it the answer is a 503."""
REQUEST_TIMEOUT_S = 10
STARTUP_LOAD_WAIT_S = 30.0
"""Longest a starting worker waits for its first load of the champion before taking requests."""
QUEUE_WINDOW_S = 0.1
"""How long requests must have queued past ``SAFRA_SERVING_MAX_QUEUE_MS`` before a worker sheds
(CoDel's interval)."""
MAX_BATCH = 64
"""Most requests scored together (one frame of up to ~1,000 rows with the occluded copies)."""


def settle_heap() -> None:
    """Collect, then freeze what is alive (the imports, the champion) out of the collector's
    reach. A worker holds ~360k long-lived objects (bentoml, feast, mlflow, pandas, sklearn):
    a full collection over them stalls every request in flight for ~0.2 s (measured in one
    process with those imports: 190-250 ms). Frozen, a full collection walks only what came after
    (``gc.freeze``). Unfrozen first, so that the replaced champion's cycles are collected too (a
    frozen object is never collected): one such stall per swap, none per request."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


v1 = FastAPI(
    title="Safra credit scoring",
    version="1",
    description="Probability of default, decision and reasons for rural credit applications.",
    docs_url=None,
    redoc_url=None,
)
openapi.install(v1)
v1.mount("/static", StaticFiles(directory=openapi.swagger_assets()), name="static")


@v1.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI of ``/v1/openapi.json``, every file served from here."""
    root = request.scope.get("root_path", "")
    page = openapi.swagger_page(v1.title, f"{root}/openapi.json", f"{root}/static")
    return HTMLResponse(page)


@v1.exception_handler(StarletteHTTPException)
async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (404, 405) in the contract's error body."""
    return _error(exc.status_code, str(exc.detail), headers=exc.headers)


class BodyLimit:
    """413 for a body over ``SAFRA_SERVING_MAX_BODY_BYTES`` — by its Content-Length at once, or
    while it streams — before the handler reads any of it into memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        limit = get_settings().serving_max_body_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _too_large(limit)(scope, receive, send)
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _too_large(limit)(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return _error(413, f"request body too large (the limit is {limit} bytes)")


v1.add_middleware(BodyLimit)


class OfflineIndex:
    """BentoML's index page (``/``) and ``/docs.json`` without leaving the machine.

    BentoML's page shows Swagger UI over ``/docs.json`` with files from its own wheel, plus a
    Google Tag Manager script (external); its ``/docs.json`` lists the mounted app's routes
    without their bodies. This answers both with the same page minus the tracker and the whole
    service's document (:func:`serving.openapi.service_document`: the ``/v1`` contract and the
    probes). BentoML's ``/static_content`` (the Swagger UI files) is left as it is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            if scope["path"] == "/":
                page = openapi.swagger_page(
                    "Safra credit scoring", "./docs.json", "./static_content"
                )
                return await HTMLResponse(page)(scope, receive, send)
            if scope["path"] == "/docs.json":
                spec = openapi.service_document(v1.openapi, "/v1")
                return await JSONResponse(spec)(scope, receive, send)
        await self.app(scope, receive, send)


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
        "unknown": prom.Counter(
            "safra_api_unknown_applicants",
            "Applicants the online store does not know, by routing: scored on the request alone "
            "(scored) or sent to MANUAL_REVIEW because the store looked empty or stale "
            "(manual_review)",
            ["encaminhamento"],
        ),
        "batch": prom.Histogram(
            "safra_api_batch_size",
            "Requests scored together (one online read, one prediction)",
            buckets=(1, 2, 4, 8, 16, 32, 64),
        ),
    }


def _error(status: int, message: str, headers: Any = None, **extra: Any) -> JSONResponse:
    """The error body (:class:`serving.contract.ErrorBody`): ``mensagem`` and, for 422, ``erros``.
    Portuguese keys like the rest of the contract; ``message`` says what, never where (no host,
    port, path or exception text)."""
    _metrics()["refused"].labels(str(status)).inc()
    headers = dict(headers or {})
    if status == 503:
        headers["Retry-After"] = str(get_settings().serving_retry_after_s)
    return JSONResponse({"mensagem": message, **extra}, status_code=status, headers=headers)


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
    # a line per request through the process supervisor costs a third of a worker's throughput;
    # each scored request is on Kafka and in /metrics already (SAFRA_SERVING_ACCESS_LOG)
    logging={"access": {"enabled": get_settings().serving_access_log}},
    # BentoML records a span per request even when none is sampled or exported: no URL traced
    # unless SAFRA_SERVING_TRACING (a deployment with a trace exporter) asks for it
    tracing={"excluded_urls": [] if get_settings().serving_tracing else [".*"]},
)
@bentoml.asgi_app(v1, path="/v1")
class CreditScoring:
    """See the module docstring."""

    def __init__(self) -> None:
        settings = get_settings()
        self._in_flight = 0
        self._unavailable_logged: dict[str, float] = {}
        self.queue_delay = QueueDelay(settings.serving_max_queue_ms / 1000.0, QUEUE_WINDOW_S)
        self._api_key = settings.require_api_key().encode()
        self.settings = settings
        metrics = _metrics()

        def swapped(_model: object) -> None:
            metrics["swaps"].inc()
            settle_heap()

        self.watcher = registry_watcher(
            settings,
            on_swap=swapped,
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
            StoreFreshness(
                settings.serving_unknown_window,
                timedelta(days=settings.serving_stale_after_days),
            ),
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
        # the worker takes requests only once its first load of the champion ended (or
        # STARTUP_LOAD_WAIT_S passed): the workers share one port, and a client told "ready" by
        # one must not get a 503 from another still loading
        if not self.watcher.start(wait_s=STARTUP_LOAD_WAIT_S):
            logger.warning(
                "the champion is still loading after %.0fs: taking requests (503 until it is in)",
                STARTUP_LOAD_WAIT_S,
            )
        settle_heap()

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.queue_delay.stop()
        self.watcher.stop()
        self.batcher.close()
        self.history.close()
        self.scored_log.close()

    def __is_ready__(self) -> bool:
        """Ready: a champion loaded, Kafka reachable, and one online read answered (Redis)."""
        reason = self.scorer.not_ready_reason()
        if reason is None:
            try:
                self.history.get_many([READINESS_PROBE_ID])
            except FeaturesUnavailable as exc:
                reason = str(exc)
        if reason is not None:
            logger.debug("not ready: %s", reason)
        return reason is None

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get(API_KEY_HEADER, "").encode()
        return bool(given) and hmac.compare_digest(given, self._api_key)

    async def credit_score(self, request: Request) -> JSONResponse:
        """Score one application (short request or whole application); see the module doc."""
        if not self._authorized(request):
            return _error(401, f"missing or wrong {API_KEY_HEADER} header")
        self.queue_delay.ensure_running()
        if self._in_flight >= self.settings.serving_max_concurrency:
            # a fast refusal the client can retry, instead of a queue whose wait grows with load
            return _error(503, "cannot score now: this worker is at its concurrency limit")
        if self.queue_delay.overloaded():  # the queue in front of the handler (serving.queue_delay)
            return _error(503, "cannot score now: requests are queueing at this worker")
        self._in_flight += 1  # the event loop is one thread: no lock needed
        try:
            return await self._credit_score(request)
        finally:
            self._in_flight -= 1

    async def _credit_score(self, request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError as exc:
            problem = {"campo": "<body>", "motivo": f"invalid JSON (line {exc.lineno}, "
                       f"column {exc.colno})"}  # fmt: skip
            return _error(422, "invalid request", erros=[problem])
        except UnicodeDecodeError:
            problem = {"campo": "<body>", "motivo": "invalid JSON: the body is not UTF-8"}
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
        if isinstance(answer, RowFailed):
            return _error(500, "internal error while scoring (logged)")
        if isinstance(answer, ServiceUnavailable):
            self._log_unavailable(answer)
            return _error(503, f"cannot score now: {answer.public}")
        if not answer["proponente_conhecido"]:
            routed = answer.get("observacao", "").startswith(UNKNOWN_APPLICANT_ROUTED_NOTE)
            _metrics()["unknown"].labels("manual_review" if routed else "scored").inc()
        _metrics()["scored"].labels(answer["decisao"]).inc()
        return JSONResponse(answer)

    def _log_unavailable(self, why: ServiceUnavailable) -> None:
        """The 503's detail (which host, which exception) to the log, not to the client; once
        per :data:`UNAVAILABLE_LOG_EVERY_S` per detail, so an outage does not flood it."""
        detail, now = str(why), time.monotonic()
        if now - self._unavailable_logged.get(detail, -UNAVAILABLE_LOG_EVERY_S) >= (
            UNAVAILABLE_LOG_EVERY_S
        ):
            self._unavailable_logged[detail] = now
            logger.warning("cannot score now: %s", detail)

    def model_info(self, request: Request) -> JSONResponse:
        """The serving model: name, version, metrics, when promoted, thresholds."""
        if not self._authorized(request):
            return _error(401, f"missing or wrong {API_KEY_HEADER} header")
        serving = self.watcher.current
        if serving is None:
            logger.warning("no model serving: %s", self.watcher.not_ready_reason())
            return _error(503, "no model serving: no champion model is loaded")
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


# The routes are functions of the module, not methods: BentoML gives a method its instance
# through a synchronous FastAPI dependency, run on a thread pool, a thread hop per request (a
# tenth of a bare endpoint's cost); the worker's instance is at hand without one.
def _service() -> CreditScoring:
    service: CreditScoring = bentoml.get_current_service()
    return service


@v1.post("/credit-score")
async def credit_score(request: Request) -> JSONResponse:
    """Score one application (short request or whole application); see the module doc."""
    return await _service().credit_score(request)


@v1.get("/model-info")
async def model_info_route(request: Request) -> JSONResponse:
    """The serving model: name, version, metrics, when promoted, thresholds."""
    return _service().model_info(request)


CreditScoring.add_asgi_middleware(OfflineIndex)  # type: ignore[attr-defined]
