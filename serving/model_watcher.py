"""Following ``models:/<name>@champion``: resolve, load, warm, check, swap — per worker.

A :class:`ModelWatcher` polls the alias every ``champion_poll_s`` seconds in a daemon thread.
When it points to a version other than the one served, that version is loaded (by version
number, so an alias moving meanwhile cannot change what was resolved; its compiled ONNX graph
when the version passed parity at training — run by onnxruntime, nothing unpickled or
deserialized by scikit-learn — else its skops pipeline, the reference path, with a warning
saying why: :func:`load_serving_model`), warmed with a
prediction through the whole scoring path (features, occlusion batch) and checked (finite
probabilities in [0, 1]); only then is the :class:`ServingModel` reference replaced — one
assignment, atomic in Python. A request takes the reference once and uses that object to the
end, so requests in flight finish on the model they started with.

A version that fails to load, predict or pass the check is never swapped in: the error is
logged with its traceback, counted, and the version remembered; it is tried again only after a
back-off (doubling from :data:`RETRY_AFTER_S` up to :data:`MAX_RETRY_AFTER_S`), not on every
poll. A version whose signature does not verify (:class:`ml.signing.UntrustedModel`: unsigned,
altered after registration, signed by another key) is refused the same way before anything of
it is deserialized, logged with the cause (no traceback) and counted apart
(``untrusted_loads``). The model served so far keeps serving. A registry that cannot be reached
is logged and retried at the next poll; an alias that disappears leaves the last model serving
(logged).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml import compiled
from ml.features import FEATURE_COLUMNS, model_inputs, request_to_application
from ml.registry import CHAMPION, predict_default_probability
from ml.signing import UntrustedModel
from serving.reasons import occlusion_batch

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 60.0
MAX_RETRY_AFTER_S = 900.0

WARMUP_REQUEST: Mapping[str, Any] = {
    "id_proponente": "warmup",
    "uf": "MT",
    "renda_liquida_mes": 20_000.0,
    "valor_solicitado": 150_000.0,
    "prazo": 24,
}
"""The request every new version is warmed and checked with (an unknown applicant)."""


class ModelCheckError(RuntimeError):
    """A loaded version does not produce finite probabilities in [0, 1]."""


@dataclass(frozen=True)
class ServingModel:
    """What serves requests: one registered version, loaded, with what the API says about it."""

    name: str
    version: str
    model: Any
    """The scikit-learn pipeline (or pyfunc) over :data:`ml.features.FEATURE_COLUMNS` — the
    reference path; None when the compiled graph serves."""
    reference: Mapping[str, Any] = field(default_factory=dict)
    """The reference applicant of the reasons (:func:`serving.reasons.reference_values`)."""
    run_id: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    champion_since: str | None = None
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    session: Any = None
    """The onnxruntime session of the version's compiled graph (:mod:`ml.compiled`), when it
    serves: then no scikit-learn object is loaded at all."""
    path_reason: str = ""
    """Why this path serves (``/v1/model-info``)."""

    @property
    def path(self) -> str:
        """``onnx`` (the compiled graph) or ``referencia`` (the scikit-learn pipeline)."""
        return "onnx" if self.session is not None else "referencia"

    def predict(self, inputs: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Probability of default of each row of ``inputs``: model inputs as a frame or as
        ``column -> values`` (:func:`ml.features.model_input_columns`)."""
        if self.session is not None:
            return compiled.predict(self.session, inputs)
        _one_openmp_thread()
        if not isinstance(inputs, pd.DataFrame):
            inputs = pd.DataFrame({c: inputs[c] for c in FEATURE_COLUMNS})
        return predict_default_probability(self.model, inputs)


_THREAD = threading.local()


def _one_openmp_thread() -> None:
    """Predict single-threaded: a request's batch is a few rows, and OpenMP's parallel regions
    (scikit-learn's gradient boosting predicts with one) cost far more than they save there —
    and much more on a busy machine, where the waiting threads compete for the cores. OpenMP's
    thread count is per calling thread: set once in each thread that predicts."""
    if getattr(_THREAD, "limited", False):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")
    _THREAD.limited = True


def check_model(candidate: ServingModel) -> float:
    """Warm ``candidate`` through the scoring path; its probability for :data:`WARMUP_REQUEST`.

    Raises :class:`ModelCheckError` unless every probability (the row and its occluded copies)
    is finite and within [0, 1].
    """
    inputs = model_inputs(pd.DataFrame([request_to_application(WARMUP_REQUEST)]))
    batch, _ = occlusion_batch(inputs, candidate.reference)
    prob = np.asarray(candidate.predict(batch), dtype=float)
    if prob.shape != (len(batch),):
        raise ModelCheckError(
            f"{candidate.name} v{candidate.version}: expected {len(batch)} probabilities, "
            f"got shape {prob.shape}"
        )
    if not np.all(np.isfinite(prob)) or prob.min() < 0.0 or prob.max() > 1.0:
        raise ModelCheckError(
            f"{candidate.name} v{candidate.version}: probabilities not finite in [0, 1]: "
            f"{prob.tolist()[:5]}"
        )
    return float(prob[0])


@dataclass
class LoadFailure:
    version: str
    error: str
    failed_at: float
    attempts: int
    retry_at: float
    untrusted: bool = False
    """Refused by the signature check (:class:`~ml.signing.UntrustedModel`), never loaded."""


@dataclass
class WatcherState:
    """What the watcher knows, for readiness and ``/v1/model-info``."""

    champion_version: str | None = None
    """What the alias pointed to at the last successful poll."""
    last_poll_at: str | None = None
    last_poll_error: str | None = None
    swaps: int = 0
    failed_loads: int = 0
    """Versions that failed to load, warm or check (untrusted ones not included)."""
    untrusted_loads: int = 0
    """Versions refused because their signature does not verify."""
    recorded_champion: str | None = None
    """The champion Safra's alias history accounts for (the registered model's
    ``safra.recorded_champion`` tag, :mod:`ml.alias_history`)."""
    champion_guardrails: str | None = None
    """The recorded guardrail verdict of that champion (``hold`` / ``breach: …``)."""

    @property
    def unrecorded(self) -> bool:
        """@champion moved and no record accounts for it yet (a change made by hand)."""
        return self.champion_version is not None and self.champion_version != self.recorded_champion

    @property
    def guardrail_breach(self) -> bool:
        return (self.champion_guardrails or "").startswith("breach")


class ModelWatcher:
    """Keeps :attr:`current` on the champion: see the module's docstring.

    ``resolve()`` returns the version the alias points to (None: no champion); ``load(version)``
    returns a :class:`ServingModel`. Both are injected so that the swap logic is testable with
    in-memory models; :func:`registry_watcher` wires them to MLflow.
    """

    def __init__(
        self,
        model_name: str,
        resolve: Callable[[], str | None],
        load: Callable[[str], ServingModel],
        poll_s: float,
        *,
        check: Callable[[ServingModel], float] = check_model,
        on_swap: Callable[[ServingModel], None] | None = None,
        on_failure: Callable[[str, BaseException], None] | None = None,
        on_poll: Callable[[WatcherState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_name = model_name
        self.poll_s = poll_s
        self._resolve = resolve
        self._load = load
        self._check = check
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._on_poll = on_poll
        self._clock = clock
        self._current: ServingModel | None = None
        self._failures: dict[str, LoadFailure] = {}
        self._lock = threading.Lock()  # one poll at a time (thread and callers)
        self._stop = threading.Event()
        self._polled = threading.Event()  # set after the first poll, whatever its outcome
        self._thread: threading.Thread | None = None
        self.state = WatcherState()

    @property
    def current(self) -> ServingModel | None:
        """The model serving now; take it once per request and keep using that object."""
        return self._current

    @property
    def failures(self) -> dict[str, LoadFailure]:
        return dict(self._failures)

    def not_ready_reason(self) -> str | None:
        """Why no model serves (None when one does)."""
        if self._current is not None:
            return None
        if self.state.last_poll_at is None:
            return f"the champion of {self.model_name} is being loaded"
        if self.state.last_poll_error:
            return f"the model registry cannot be reached: {self.state.last_poll_error}"
        if self.state.champion_version is None:
            return (
                f"no champion: registered model {self.model_name!r} has no @{CHAMPION} alias "
                "(train and promote a model: `safra train`, `safra promote`)"
            )
        failure = self._failures.get(self.state.champion_version)
        if failure is not None:
            return (
                f"{self.model_name} v{failure.version} (@{CHAMPION}) failed to load: "
                f"{failure.error}"
            )
        return f"{self.model_name} v{self.state.champion_version} (@{CHAMPION}) is being loaded"

    def poll(self) -> ServingModel | None:
        """One check of the alias (and a swap when it moved); the model serving afterwards."""
        with self._lock:
            self._poll()
        return self._current

    def _poll(self) -> None:
        now_iso = datetime.now(UTC).isoformat()
        try:
            version = self._resolve()
        except Exception as exc:  # registry down, network: keep serving, retry next poll
            self.state.last_poll_at = now_iso
            self.state.last_poll_error = f"{type(exc).__name__}: {exc}"
            logger.warning("cannot resolve %s@%s: %s", self.model_name, CHAMPION, exc)
            return
        self.state.last_poll_at = now_iso
        self.state.last_poll_error = None
        if version is None and self.state.champion_version is not None:
            logger.warning(
                "%s has no @%s any more; still serving v%s",
                self.model_name,
                CHAMPION,
                self._current.version if self._current else "nothing",
            )
        was_unrecorded = self.state.unrecorded
        self.state.champion_version = version
        if self.state.unrecorded and not was_unrecorded:
            logger.warning(
                "%s@%s is v%s but Safra's records account for %s: a change made outside Safra "
                "(the MLflow UI?); `safra promotions` records it and judges its guardrails",
                self.model_name, CHAMPION, version,
                f"v{self.state.recorded_champion}" if self.state.recorded_champion else "none",
            )  # fmt: skip
        if self._on_poll is not None:
            self._on_poll(self.state)
        current = self._current
        if version is None or (current is not None and current.version == version):
            return
        failure = self._failures.get(version)
        if failure is not None and self._clock() < failure.retry_at:
            return
        logger.info("%s@%s -> v%s: loading", self.model_name, CHAMPION, version)
        began = time.perf_counter()
        try:
            candidate = self._load(version)
            prob = self._check(candidate)
        except Exception as exc:
            self._remember_failure(version, exc)
            return
        self._current = candidate  # the swap: one reference assignment
        self._failures.pop(version, None)
        self.state.swaps += 1
        logger.info(
            "now serving %s v%s (was %s): loaded, warmed and checked in %.2fs (warm-up p=%.4f)",
            self.model_name,
            version,
            f"v{current.version}" if current else "nothing",
            time.perf_counter() - began,
            prob,
        )
        if self._on_swap is not None:
            self._on_swap(candidate)

    def _remember_failure(self, version: str, exc: BaseException) -> None:
        previous = self._failures.get(version)
        attempts = previous.attempts + 1 if previous else 1
        wait = min(RETRY_AFTER_S * 2 ** (attempts - 1), MAX_RETRY_AFTER_S)
        now = self._clock()
        untrusted = isinstance(exc, UntrustedModel)
        self._failures[version] = LoadFailure(
            version, f"{type(exc).__name__}: {exc}", now, attempts, now + wait, untrusted
        )
        serving = f"v{self._current.version}" if self._current else "nothing"
        if untrusted:
            self.state.untrusted_loads += 1
            logger.error(
                "%s v%s (@%s) refused, untrusted: %s (attempt %d; next try in %.0fs); "
                "still serving %s",
                self.model_name, version, CHAMPION, getattr(exc, "cause", exc), attempts, wait,
                serving,
            )  # fmt: skip
        else:
            self.state.failed_loads += 1
            logger.error(
                "%s v%s (@%s) failed to load or check (attempt %d; next try in %.0fs); "
                "still serving %s",
                self.model_name, version, CHAMPION, attempts, wait, serving, exc_info=exc,
            )  # fmt: skip
        if self._on_failure is not None:
            self._on_failure(version, exc)

    def start(self, wait_s: float = 0.0) -> bool:
        """Poll now and then every ``poll_s`` seconds, in a daemon thread. Idempotent.

        ``wait_s``: wait up to that long for the first poll (load included) to end, so that a
        worker starting with the API does not take requests before it had its chance to load
        the champion (another worker's ``/readyz`` says nothing about this one). True when the
        first poll ended in time (whatever its outcome: a registry down is logged and retried).
        """
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"champion-watcher-{self.model_name}", daemon=True
            )
            self._thread.start()
        return self._polled.wait(wait_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # never let the watcher die
                logger.exception("champion watcher: unexpected error")
            self._polled.set()
            self._stop.wait(self.poll_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None


def load_from_registry(settings: Any, client: Any, model_name: str, version: str) -> ServingModel:
    """``model_name`` v``version`` from the settings' MLflow registry, its signature verified
    with ``settings.model_verify_key`` before it is deserialized
    (:class:`~ml.signing.UntrustedModel` otherwise), with its run's metrics, its version tags
    (``champion_since``, ``promotion.*``) and the reference applicant of the reasons."""
    from ml.registry import reference_sample, version_run_id
    from serving.reasons import reference_values

    meta = client.get_model_version(model_name, version)
    tags = dict(meta.tags or {})
    model, session, why = load_serving_model(settings, model_name, version, tags)
    run_id = version_run_id(client, model_name, version)
    metrics: dict[str, float] = {}
    reference: dict[str, Any] = {}
    if run_id:
        run = client.get_run(run_id)
        metrics = {k: v for k, v in run.data.metrics.items() if math.isfinite(v)}
        try:
            reference = reference_values(reference_sample(client, model_name, version))
        except LookupError as exc:
            logger.warning("%s", exc)
    if not reference:
        logger.warning(
            "%s v%s: no reference sample; answers will carry no reasons", model_name, version
        )
    return ServingModel(
        name=model_name,
        version=str(version),
        model=model,
        reference=reference,
        run_id=run_id,
        metrics=metrics,
        tags=tags,
        champion_since=tags.get("champion_since"),
        session=session,
        path_reason=why,
    )


def load_serving_model(
    settings: Any, model_name: str, version: str, tags: Mapping[str, str]
) -> tuple[Any, Any, str]:
    """(pipeline or None, onnxruntime session or None, why) of a version, from one local copy
    whose signature was verified (:func:`ml.registry.verified_version`). The compiled graph
    when the version passed parity at training (:func:`ml.compiled.serving_path`): nothing
    else of the version is deserialized. Otherwise the skops pipeline (the reference path),
    logged loudly with the reason."""
    from ml.registry import load_pipeline, verified_version

    with verified_version(settings, model_name, version) as local:
        graph, why = compiled.serving_path(tags, local)
        if graph is not None:
            return None, compiled.session(str(graph)), why
        logger.warning(
            "%s v%s served by the scikit-learn reference, not compiled: %s",
            model_name, version, why,
        )  # fmt: skip
        return load_pipeline(local, model_name, version), None, why


def registry_watcher(settings: Any, **kwargs: Any) -> ModelWatcher:
    """A :class:`ModelWatcher` of ``settings.model_name``@champion in the settings' MLflow: one
    registry read per poll gives the alias and the alias history's tags (what Safra recorded)."""
    from mlflow.exceptions import MlflowException

    from ml.alias_history import RECORDED_CHAMPION, RECORDED_GUARDRAILS
    from ml.registry import tracking_client

    client = tracking_client(settings)
    name = settings.model_name
    state: list[WatcherState] = []

    def resolve() -> str | None:
        try:
            model = client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        tags = model.tags or {}
        state[0].recorded_champion = tags.get(RECORDED_CHAMPION) or None
        state[0].champion_guardrails = tags.get(RECORDED_GUARDRAILS) or None
        return (model.aliases or {}).get(CHAMPION)

    watcher = ModelWatcher(
        name,
        resolve=resolve,
        load=lambda version: load_from_registry(settings, client, name, version),
        poll_s=settings.champion_poll_s,
        **kwargs,
    )
    state.append(watcher.state)
    return watcher
