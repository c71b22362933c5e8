"""Scoring requests: validate, read the applicants' features, predict, decide, explain, log.

Framework-free (the BentoML service in :mod:`serving.service` is a thin HTTP layer over it).
Requests are scored in batches (one is a batch of one; the API coalesces those waiting):

1. each body is validated on arrival (:func:`serving.contract.parse_request`;
   :class:`RequestError` → 422);
2. the model serving now is taken ONCE per batch (:attr:`ModelWatcher.current`); none → 503
   saying why;
3. Kafka must be reachable (a scored request that cannot be logged is not answered) → else 503;
4. the applicants' history and latest profile come from the online store in one read
   (:class:`~serving.online_features.OnlineHistory`; unavailable → 503, never a score from
   missing features). Unknown applicant: no history, scored on what the request gives, flagged;
5. features through the one code path: :func:`ml.features.request_to_application` (short
   request, profile as defaults), then the ``hist_*`` columns merged in and the model inputs of
   the batch: with the compiled model (:mod:`ml.compiled`), numpy arrays straight from the
   dicts (:func:`ml.features.model_input_columns`, no pandas); with the scikit-learn
   reference, one frame (:func:`ml.features.model_inputs`) — the same values;
6. ONE prediction: every row and its occluded copies (:mod:`serving.reasons`), one
   onnxruntime call (or one ``predict_proba``);
7. the decision from the configured thresholds (:func:`ml.evaluate.decide`);
8. the answers, and the ``scored_request`` records queued to Kafka without waiting.

Degraded modes: an unknown applicant goes to MANUAL_REVIEW when the online store looks empty or
stale (:class:`~serving.online_features.StoreFreshness`); a request whose scoring fails gets
:class:`RowFailed` (500) alone, never its batch (:meth:`Scorer.score_parsed`); a
:class:`ServiceUnavailable` carries the detail for the log and a ``public`` reason for the answer.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ml.evaluate import decide
from ml.features import (
    APPLICATION_FIELDS,
    FEATURE_COLUMNS,
    KNOWN_FLAG,
    NUMERIC,
    model_input_columns,
    model_inputs,
)
from serving.contract import (
    RequestError,
    ShortRequest,
    WholeApplication,
    application_fields,
    credit_score,
    finite_or_none,
    parse_request,
    proponente_id,
)
from serving.model_watcher import ModelWatcher, ServingModel
from serving.online_features import FeaturesUnavailable, OnlineHistory, StoreFreshness
from serving.reasons import Driver, main_reasons, occlusion_columns, occlusion_frame

logger = logging.getLogger(__name__)

FEATURE_TIMESTAMP = "feature_timestamp"
UNKNOWN_APPLICANT_NOTE = (
    "proponente sem histórico no feature store: pontuado apenas com os dados da requisição"
)
UNKNOWN_APPLICANT_ROUTED_NOTE = (
    "proponente sem histórico e feature store aparentemente vazio ou desatualizado: "
    "encaminhado para MANUAL_REVIEW"
)

__all__ = ["Parsed", "RequestError", "RowFailed", "Scorer", "ServiceUnavailable"]


class ServiceUnavailable(RuntimeError):
    """The request cannot be scored now (no model, online store or Kafka down): HTTP 503.

    ``str(exc)`` is the detail for the log (hosts, ports, exception text); :attr:`public` is
    what the answer may say (which dependency, never where it runs or how it failed).
    """

    def __init__(self, detail: str, public: str = "a dependency is unavailable") -> None:
        super().__init__(detail)
        self.public = public


class RowFailed(RuntimeError):
    """Scoring this one request failed (a bug, logged with the trace): HTTP 500 for it alone."""


class ScoredLog(Protocol):
    def unavailable(self) -> str | None: ...

    def send(self, record: Mapping[str, Any]) -> None: ...


def split_online_row(
    row: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], datetime | None]:
    """(profile, history, feature_timestamp) of an online-store row (None: unknown applicant).

    ``history``: the ``hist_*`` columns; ``profile``: the application fields the row holds
    (the applicant's latest area, crop, experience, score), used as a short request's defaults.
    """
    if row is None:
        return {}, {}, None
    history = {k: v for k, v in row.items() if k.startswith("hist_")}
    profile = {k: v for k, v in row.items() if k in APPLICATION_FIELDS and v is not None}
    stamp = row.get(FEATURE_TIMESTAMP)
    if isinstance(stamp, pd.Timestamp):
        stamp = stamp.to_pydatetime()
    if isinstance(stamp, datetime) and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return profile, history, stamp if isinstance(stamp, datetime) else None


@dataclass(frozen=True)
class Parsed:
    """A valid request and when it arrived (its latency counts from here)."""

    request: ShortRequest | WholeApplication
    began: float = field(default_factory=time.perf_counter)
    requested_at: datetime = field(default_factory=lambda: datetime.now(UTC))


Outcome = dict[str, Any] | ServiceUnavailable | RowFailed
"""What scoring a valid request gives: the answer, why it cannot be scored now (503), or that
scoring it failed (500) — for that request alone, never for the rest of its batch."""


class Scorer:
    """Scores requests with the watcher's current model; see the module docstring.

    :meth:`score` scores one body in the calling thread; :meth:`score_parsed` scores many
    valid requests together (one online read, one frame, one prediction) — what the API's
    :class:`~serving.batching.Coalescer` calls with the requests waiting. Both give the same
    answer for the same request.
    """

    def __init__(
        self,
        watcher: ModelWatcher,
        history: OnlineHistory,
        scored_log: ScoredLog | None,
        approve_below: float,
        deny_above: float,
        freshness: StoreFreshness | None = None,
    ) -> None:
        self.freshness = freshness or StoreFreshness()
        self.watcher = watcher
        self.history = history
        self.scored_log = scored_log
        self.approve_below = approve_below
        self.deny_above = deny_above

    def not_ready_reason(self) -> str | None:
        """Why scoring would answer 503 now (None when it can score)."""
        reason = self.watcher.not_ready_reason()
        if reason is None and self.scored_log is not None:
            reason = self.scored_log.unavailable()
        return reason

    @staticmethod
    def parse(body: Any) -> Parsed:
        """``body`` validated; :class:`RequestError` (422) names each bad field."""
        return Parsed(parse_request(body))

    def score(self, body: Any) -> dict[str, Any]:
        """The answer to ``body``; :class:`RequestError` (422) or :class:`ServiceUnavailable`."""
        (outcome,) = self.score_parsed([self.parse(body)])
        if isinstance(outcome, ServiceUnavailable | RowFailed):
            raise outcome
        return outcome

    def score_parsed(self, batch: Sequence[Parsed]) -> list[Outcome]:
        """The outcome of each request of ``batch``, in order.

        One failed row never fails the others: when the batch as a whole raises (building the
        inputs, the prediction: before any record is sent), each request is scored alone, and
        only the one(s) that still fail get :class:`RowFailed`; past the prediction, a row whose
        answer fails gets it alone.
        """
        try:
            return self._score_together(batch)
        except Exception as exc:
            if len(batch) == 1:
                logger.exception("scoring a request failed")
                return [RowFailed(f"{type(exc).__name__}: {exc}")]
            logger.warning("a batch of %d failed (%s); scoring each alone", len(batch), exc)
            return [outcome for parsed in batch for outcome in self.score_parsed([parsed])]

    def _score_together(self, batch: Sequence[Parsed]) -> list[Outcome]:
        serving = self.watcher.current  # taken once: a swap meanwhile does not affect the batch
        if serving is None:
            why = ServiceUnavailable(
                self.watcher.not_ready_reason() or "no model loaded", "no champion model is loaded"
            )
            return [why] * len(batch)
        if self.scored_log is not None and (down := self.scored_log.unavailable()):
            why = ServiceUnavailable(down, "the scored-request log (Kafka) is unavailable")
            return [why] * len(batch)
        applicants = [proponente_id(p.request) for p in batch]
        try:
            online = self.history.get_many(applicants)
        except FeaturesUnavailable as exc:
            why = ServiceUnavailable(str(exc), "the online feature store (Redis) is unavailable")
            return [why] * len(batch)
        suspect = self.freshness.observe(online, [split_online_row(r)[2] for r in online])
        applications, stamps = [], []
        for parsed, row in zip(batch, online, strict=True):
            profile, history, feature_ts = split_online_row(row)
            application = application_fields(parsed.request, profile)
            application.update(history)
            applications.append(application)
            stamps.append(feature_ts)
        if serving.session is not None:  # compiled: arrays straight from the dicts, no pandas
            columns = model_input_columns(applications)
            plain = {c: v.tolist() for c, v in columns.items()}
            rows = [{c: plain[c][i] for c in FEATURE_COLUMNS} for i in range(len(applications))]
            batch_inputs, used = occlusion_columns(columns, rows, serving.reference)
            probabilities = serving.predict(batch_inputs)
        else:  # the scikit-learn reference, on a frame
            inputs = model_inputs(pd.DataFrame(applications))
            rows = inputs.to_dict("records")
            frame, used = occlusion_frame(inputs, serving.reference, rows=rows)
            probabilities = np.asarray(serving.predict(frame), dtype=float)
        outcomes: list[Outcome] = []
        start = 0
        for i, row in enumerate(rows):
            block = probabilities[start : start + 1 + len(used[i])]
            start += len(block)
            try:  # past the prediction a row fails alone (earlier rows' records are already sent)
                outcome = self._answer(
                    batch[i], applicants[i], serving, block, used[i], row, stamps[i], suspect
                )
            except Exception as exc:
                logger.exception("answering a request failed")
                outcome = RowFailed(f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
        return outcomes

    def _answer(
        self,
        parsed: Parsed,
        applicant: str,
        serving: ServingModel,
        probabilities: np.ndarray,
        drivers: list[Driver],
        row: dict[str, Any],
        feature_ts: datetime | None,
        suspect_store: str | None = None,
    ) -> Outcome:
        probability = float(probabilities[0])
        if not math.isfinite(probability) or not 0.0 <= probability <= 1.0:
            logger.error("%s v%s gave p=%r", serving.name, serving.version, probability)
            return ServiceUnavailable(
                f"model {serving.name} v{serving.version} gave no valid probability",
                "the model gave no valid probability",
            )
        decision = decide(probability, self.approve_below, self.deny_above)
        known = bool(row[KNOWN_FLAG])
        routed = not known and suspect_store is not None
        if routed:  # the store may just be missing this applicant's history: a person decides
            decision = "MANUAL_REVIEW"
        reasons = main_reasons(probabilities, drivers, row, serving.reference, decision)
        request_id = str(uuid.uuid4())
        latency_ms = (time.perf_counter() - parsed.began) * 1000.0
        response: dict[str, Any] = {
            "id_requisicao": request_id,
            "id_proponente": applicant,
            "probabilidade_inadimplencia": round(probability, 6),
            "score": credit_score(probability),
            "decisao": decision,
            "motivos": reasons,
            "model_name": serving.name,
            "model_version": serving.version,
            "proponente_conhecido": known,
            "atualizacao_features": _freshness(feature_ts, parsed.requested_at),
            "limiares": {"approve_below": self.approve_below, "deny_above": self.deny_above},
            "latencia_ms": round(latency_ms, 3),
        }
        if routed:
            response["observacao"] = f"{UNKNOWN_APPLICANT_ROUTED_NOTE}: {suspect_store}"
        elif not known:
            response["observacao"] = UNKNOWN_APPLICANT_NOTE
        if self.scored_log is not None:
            self.scored_log.send(
                scored_record(
                    request_id,
                    applicant,
                    parsed.requested_at,
                    serving,
                    probability,
                    decision,
                    row,
                    latency_ms,
                    known,
                )  # fmt: skip
            )
        return response


def _freshness(stamp: datetime | None, now: datetime) -> dict[str, Any]:
    if stamp is None:
        return {"feature_timestamp": None, "idade_segundos": None}
    return {
        "feature_timestamp": stamp.isoformat(),
        "idade_segundos": round((now - stamp).total_seconds(), 3),
    }


def scored_record(
    request_id: str,
    applicant: str,
    requested_at: datetime,
    serving: ServingModel,
    probability: float,
    decision: str,
    row: Mapping[str, Any],
    latency_ms: float,
    known: bool,
) -> dict[str, Any]:
    """The ``scored_request`` v1 record: the numeric model inputs (the schema's feature map holds
    doubles; categoricals are not in it), the prediction, the version and the latency."""
    return {
        "id_requisicao": request_id,
        "proponente_id": applicant,
        "requested_at": int(requested_at.timestamp() * 1000),
        "model_name": serving.name,
        "model_version": serving.version,
        "probabilidade_inadimplencia": probability,
        "score": credit_score(probability),
        "decisao": decision,
        "features": {c: finite_or_none(row.get(c)) for c in NUMERIC},
        "latency_ms": latency_ms,
        "proponente_conhecido": known,
    }
