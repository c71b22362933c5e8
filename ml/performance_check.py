"""The realized-performance check's I/O: the champion, its matured outcomes, MLflow.

``safra performance`` and the ``drift_monitor`` DAG call :func:`check_performance`. It judges the
champion (``models:/<name>@champion``) with :func:`ml.performance.evaluate_performance` on two
sources, each on its own (their populations differ):

- ``applications``: the **matured window of silver**: valid applications of
  ``[as_of − maturity − window_days, as_of − maturity)`` with their outcome (``silver_outcomes``),
  turned into model inputs exactly as training does (:func:`ml.training_set.build_training_set`:
  silver at pinned snapshots, the applicant's history through Feast's point-in-time join) and
  scored by the champion. Younger applications are only counted.
- ``scored_requests``: the requests the champion's version **actually scored**
  (``bronze.scored_requests``, its probability as answered), joined to outcomes. A scored request
  carries no application id, so it is matched to the outcome of the same applicant whose
  ``data_solicitacao`` lies within :data:`MATCH_TOLERANCE` of ``requested_at``, nearest first,
  and only when each is the other's nearest (one outcome never counts for two requests). Limits:
  a request that never became a credit (a quote) has no outcome and is not counted; an applicant
  applying twice within the tolerance may have the two swapped; the segment fields come from the
  matched silver application.

The reference for the AUC test is the holdout ROC-AUC the champion's training run logged
(``valid_roc_auc``). The figures, the window's dates and the verdict go to one MLflow run of
:data:`ml.drift.MONITORING_EXPERIMENT`; the summary (:meth:`PerformanceCheck.summary`) is what
``safra performance --json`` prints. The family-wise false-alarm probability is split
(Bonferroni) between the sources that have matured outcomes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from ml.drift import MONITORING_EXPERIMENT
from ml.features import model_inputs
from ml.performance import (
    APPLIED_AT,
    LABEL,
    PREDICTION,
    Bounds,
    PerformanceResult,
    evaluate_performance,
)
from ml.registry import (
    CHAMPION,
    experiment_id,
    load_version,
    metric_key,
    tracking_client,
    version_by_alias,
    version_run_id,
)
from ml.registry import predict_default_probability as _predict
from ml.training_set import SOURCE_TABLES, current_snapshots, table_name
from safra.lakehouse import trino_cursor
from safra.settings import Settings

logger = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("applications", "scored_requests")
MATCH_TOLERANCE = timedelta(days=1)
"""How far a scored request and an application's ``data_solicitacao`` may lie apart to be
matched."""
REFERENCE_METRIC = "valid_roc_auc"
"""The training run's holdout ROC-AUC (:mod:`ml.train`), the AUC test's reference."""
SEGMENT_FIELDS: tuple[str, ...] = (
    "uf",
    "cultura_principal",
    "tipo_pessoa",
    "valor_solicitado_credito",
)


class PerformanceError(RuntimeError):
    """The check could not run (no champion, a service down); the message names the cause."""


@dataclass
class PerformanceCheck:
    """The outcome of :func:`check_performance`: an alarm when any source's check alarmed."""

    model_name: str
    model_version: str
    reference_auc: float | None
    bounds: Bounds
    as_of: datetime
    window_start: datetime
    window_end: datetime
    maturity_days: int
    sources: dict[str, PerformanceResult]
    skipped: dict[str, str]
    mlflow_run_id: str
    mlflow_run_url: str
    seconds: float

    @property
    def alarm(self) -> bool:
        return any(r.alarm for r in self.sources.values())

    @property
    def matured(self) -> bool:
        return any(r.matured for r in self.sources.values())

    @property
    def reasons(self) -> list[str]:
        return [f"{name}: {why}" for name, r in self.sources.items() for why in r.reasons]

    @property
    def message(self) -> str:
        if not self.matured:
            return (
                f"no matured outcomes yet: no application of {self.window_start:%Y-%m-%d} .. "
                f"{self.window_end:%Y-%m-%d} (at least {self.maturity_days} days old at "
                f"{self.as_of:%Y-%m-%d}) has its outcome; nothing to judge"
            )
        verdict = "ALARM" if self.alarm else "no alarm"
        return f"{verdict}: " + "; ".join(
            f"{name}: {r.message}" for name, r in self.sources.items() if r.matured
        )

    def summary(self) -> dict[str, Any]:
        """The JSON summary ``safra performance --json`` prints."""
        return {
            "alarm": self.alarm,
            "matured": self.matured,
            "message": self.message,
            "reasons": self.reasons,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "reference_auc": self.reference_auc,
            "as_of": self.as_of.isoformat(),
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "maturity_days": self.maturity_days,
            "bounds": asdict(self.bounds),
            "sources": {name: r.summary() for name, r in self.sources.items()},
            "skipped": dict(self.skipped),
            "mlflow_run_id": self.mlflow_run_id,
            "mlflow_run_url": self.mlflow_run_url,
            "seconds": round(self.seconds, 2),
        }


def bounds_from(settings: Settings) -> Bounds:
    """The check's :class:`~ml.performance.Bounds` from the ``performance_*`` settings."""
    return Bounds(
        max_auc_drop=settings.performance_max_auc_drop,
        max_calibration_gap=settings.performance_max_calibration_gap,
        max_relative_gap=settings.performance_max_relative_gap,
        alpha=settings.performance_alpha,
        min_rows=settings.performance_min_rows,
        min_segment_rows=settings.performance_min_segment_rows,
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _query(settings: Settings, sql: str, params: Sequence[Any]) -> pd.DataFrame:
    import trino

    try:
        with trino_cursor(settings, "safra-performance", identity="ml") as cur:
            cur.execute(sql, list(params))
            rows = cur.fetchall()
            names = [d[0] for d in cur.description]
    except trino.exceptions.TrinoQueryError as exc:
        raise LookupError(f"Trino query failed ({exc.error_name}): {exc.message}") from exc
    except (OSError, trino.exceptions.TrinoConnectionError) as exc:
        raise PerformanceError(f"cannot reach Trino at {settings.trino_url}: {exc}") from exc
    return pd.DataFrame(rows, columns=names)


# --- the sources ---------------------------------------------------------------------------------


def read_application_outcomes(
    settings: Settings, snapshots: dict[str, int], since: datetime, as_of: datetime
) -> pd.DataFrame:
    """Every valid application of ``[since, as_of]`` at the pinned silver snapshots, with its
    outcome when known at ``as_of`` (``inadimplente`` / ``data_desfecho`` null otherwise)."""
    apps = table_name(settings, *SOURCE_TABLES["silver_applications"])
    outcomes = table_name(settings, *SOURCE_TABLES["silver_outcomes"])
    sql = (
        f"select a.id_solicitacao, a.data_solicitacao, o.{LABEL}, o.data_desfecho "
        f"from {apps} for version as of {int(snapshots['silver_applications'])} a "
        f"left join {outcomes} for version as of {int(snapshots['silver_outcomes'])} o "
        f"on o.id_solicitacao = a.id_solicitacao and o.data_desfecho <= ? "
        f"where a.registro_valido and a.data_solicitacao >= ? and a.data_solicitacao <= ?"
    )
    return _query(settings, sql, [as_of, since, as_of])


def applications_frame(
    settings: Settings,
    champion: Callable[[], Any],
    window_start: datetime,
    window_end: datetime,
    as_of: datetime,
) -> pd.DataFrame:
    """The ``applications`` source: every application of ``[window_start, as_of]`` with its
    outcome known at ``as_of``; the matured labelled ones (before ``window_end``) with the
    champion's ``prob_default`` on their training-time inputs and their segment fields.
    ``champion`` loads the model (called only when there is something to score)."""
    from ml.feature_store import feature_store
    from ml.training_set import build_training_set

    try:
        snapshots = current_snapshots(settings)
    except ValueError as exc:
        raise LookupError(str(exc)) from exc
    frame = read_application_outcomes(settings, snapshots, window_start, as_of)
    frame[APPLIED_AT] = pd.to_datetime(frame[APPLIED_AT], utc=True)
    labelled = frame[LABEL].notna() & (frame[APPLIED_AT] < pd.Timestamp(window_end))
    if not labelled.any():
        return frame.assign(**{PREDICTION: float("nan")})
    try:
        ts = build_training_set(feature_store(settings), settings, window_start, window_end)
    except ValueError as exc:  # nothing labelled in the window after all
        logger.info("no labelled application in the matured window: %s", exc)
        return frame.assign(**{PREDICTION: float("nan")})
    scored = ts.frame.loc[:, ["id_solicitacao", *SEGMENT_FIELDS]].copy()
    scored[PREDICTION] = _predict(champion(), model_inputs(ts.frame))
    logger.info("applications: %d matured rows scored by the champion", len(scored))
    return frame.merge(scored, on="id_solicitacao", how="left")


def scored_requests_frame(
    settings: Settings, model_version: str, since: datetime, as_of: datetime
) -> pd.DataFrame:
    """The ``scored_requests`` source: the requests ``model_version`` answered in
    ``[since, as_of]``, each with the outcome matched to it (see the module docstring) when known
    at ``as_of`` and the matched application's segment fields."""
    scored = f'{settings.iceberg_catalog}."{settings.bronze_schema}".scored_requests'
    try:
        snapshots = current_snapshots(settings)
    except ValueError as exc:
        raise LookupError(str(exc)) from exc
    apps = table_name(settings, *SOURCE_TABLES["silver_applications"])
    outcomes = table_name(settings, *SOURCE_TABLES["silver_outcomes"])
    tolerance_ms = int(MATCH_TOLERANCE.total_seconds() * 1000)
    sql = f"""
with requests as (
    select id_requisicao, proponente_id, requested_at, probabilidade_inadimplencia
    from {scored}
    where model_version = ? and requested_at >= ? and requested_at <= ?
),
known as (
    select id_solicitacao, proponente_id, data_solicitacao, data_desfecho, {LABEL}
    from {outcomes} for version as of {int(snapshots["silver_outcomes"])}
    where data_desfecho <= ?
),
pairs as (
    select r.id_requisicao, k.id_solicitacao, k.data_desfecho, k.{LABEL},
        abs(to_unixtime(k.data_solicitacao) * 1000 - r.requested_at) as gap_ms
    from requests r
    join known k on k.proponente_id = r.proponente_id
        and abs(to_unixtime(k.data_solicitacao) * 1000 - r.requested_at) <= {tolerance_ms}
),
ranked as (
    select *,
        row_number() over (partition by id_requisicao order by gap_ms, id_solicitacao) as nr,
        row_number() over (partition by id_solicitacao order by gap_ms, id_requisicao) as no
    from pairs
),
matched as (select * from ranked where nr = 1 and no = 1)
select r.requested_at, r.probabilidade_inadimplencia as {PREDICTION}, m.{LABEL}, m.data_desfecho,
    {", ".join(f"a.{c}" for c in SEGMENT_FIELDS)}
from requests r
left join matched m on m.id_requisicao = r.id_requisicao
left join {apps} for version as of {int(snapshots["silver_applications"])} a
    on a.id_solicitacao = m.id_solicitacao
"""
    ms = [int(_utc(since).timestamp() * 1000), int(_utc(as_of).timestamp() * 1000)]
    frame = _query(settings, sql, [model_version, *ms, as_of])
    frame[APPLIED_AT] = pd.to_datetime(frame["requested_at"], unit="ms", utc=True)
    return frame


# --- the check -----------------------------------------------------------------------------------


def check_performance(
    settings: Settings,
    *,
    as_of: datetime | None = None,
    sources: Sequence[str] = SOURCES,
    model_name: str | None = None,
    experiment_name: str = MONITORING_EXPERIMENT,
) -> PerformanceCheck:
    """Judge the champion on its matured outcomes as of ``as_of`` (default now); log and return.

    A source that cannot be read (a table missing, nothing published) is skipped with the
    reason; no matured outcome is a result, not an error (``matured`` false, the message says
    so). PerformanceError without a champion or when a service cannot be reached.
    """
    from mlflow.exceptions import MlflowException

    began = time.perf_counter()
    unknown = set(sources) - set(SOURCES)
    if unknown or not sources:
        raise PerformanceError(f"unknown sources {sorted(unknown)}; known: {', '.join(SOURCES)}")
    as_of = _utc(as_of or datetime.now(UTC))
    maturity = settings.label_maturity_days
    window_end = as_of - timedelta(days=maturity)
    window_start = window_end - timedelta(days=settings.performance_window_days)
    name = model_name or settings.model_name
    client = tracking_client(settings)
    try:
        version = version_by_alias(client, name, CHAMPION)
        if version is None:
            raise PerformanceError(
                f"no champion yet: model {name!r} has no @{CHAMPION} alias in the registry at "
                f"{settings.mlflow_tracking_uri} (train and promote one first)"
            )
        run_id = version_run_id(client, name, version)
        reference = client.get_run(run_id).data.metrics.get(REFERENCE_METRIC) if run_id else None
    except MlflowException as exc:
        raise PerformanceError(
            f"cannot read the registry at {settings.mlflow_tracking_uri}: {exc}"
        ) from exc
    loaded: list[Any] = []

    def model() -> Any:
        if not loaded:
            loaded.append(load_version(settings, name, version))
        return loaded[0]

    frames: dict[str, pd.DataFrame] = {}
    skipped: dict[str, str] = {}
    for source in sources:
        try:
            if source == "applications":
                frames[source] = applications_frame(
                    settings, model, window_start, window_end, as_of
                )
            else:
                frames[source] = scored_requests_frame(settings, version, window_start, as_of)
        except LookupError as exc:
            skipped[source] = str(exc)
            logger.warning("performance source %s skipped: %s", source, exc)
    bounds = bounds_from(settings)

    def evaluate(frame: pd.DataFrame, alpha: float) -> PerformanceResult:
        return evaluate_performance(
            frame, as_of=as_of, maturity_days=maturity,
            bounds=replace(bounds, alpha=alpha),
            window_days=settings.performance_window_days, reference_auc=reference,
        )  # fmt: skip

    first = {s: evaluate(f, bounds.alpha) for s, f in frames.items()}
    matured = [s for s, r in first.items() if r.matured]
    # Bonferroni over the sources judged: the check's false-alarm probability stays ≤ alpha
    results = {
        s: evaluate(frames[s], bounds.alpha / len(matured)) if s in matured and len(matured) > 1
        else r
        for s, r in first.items()
    }  # fmt: skip
    check = PerformanceCheck(
        model_name=name, model_version=version, reference_auc=reference, bounds=bounds,
        as_of=as_of, window_start=window_start, window_end=window_end, maturity_days=maturity,
        sources=results, skipped=skipped, mlflow_run_id="", mlflow_run_url="", seconds=0.0,
    )  # fmt: skip
    check.mlflow_run_id, check.mlflow_run_url = _log_run(settings, check, experiment_name)
    check.seconds = time.perf_counter() - began
    logger.info("performance check of %s v%s: %s", name, version, check.message)
    return check


def _log_run(settings: Settings, check: PerformanceCheck, experiment_name: str) -> tuple[str, str]:
    """One MLflow run: the window's dates, the bounds, the figures per source, the summary."""
    import mlflow

    client = tracking_client(settings)
    exp_id = experiment_id(client, experiment_name)
    metrics: dict[str, float] = {"alarm": float(check.alarm), "matured": float(check.matured)}
    for source, r in check.sources.items():
        metrics[metric_key(source, "alarm")] = float(r.alarm)
        for key, count in r.rows.items():
            metrics[metric_key(source, "rows", key)] = float(count)
        for key, figure in r.metrics.items():
            if pd.notna(figure):
                metrics[metric_key(source, key)] = float(figure)
        for row in r.score_bands + r.segments:
            if "gap" in row:
                metrics[metric_key(source, "gap", row["segment"], row["value"])] = row["gap"]
    dates = {
        "as_of": check.as_of.isoformat(),
        "window_start": check.window_start.isoformat(),
        "window_end": check.window_end.isoformat(),
    }
    stamp = check.as_of.strftime("%Y%m%dT%H%M%SZ")
    with mlflow.start_run(
        experiment_id=exp_id,
        run_name=f"performance-{check.model_name}-v{check.model_version}-{stamp}",
    ) as run:
        mlflow.set_tags(
            {
                "check": "realized-performance",
                "model_name": check.model_name,
                "model_version": check.model_version,
                "alarm": str(check.alarm).lower(),
                "matured": str(check.matured).lower(),
                "sources": ",".join(check.sources),
                "skipped_sources": ",".join(check.skipped),
                **{f"window.{k}": v for k, v in dates.items()},
            }
        )
        mlflow.log_params(
            {
                **dates,
                "maturity_days": check.maturity_days,
                "window_days": settings.performance_window_days,
                "reference_auc": check.reference_auc,
                **{f"bound.{k}": v for k, v in asdict(check.bounds).items()},
            }
        )
        mlflow.log_metrics(metrics)
        summary = {k: v for k, v in check.summary().items() if not k.startswith("mlflow_")}
        mlflow.log_text(json.dumps(summary, indent=2), "performance/summary.json")
        run_id = run.info.run_id
    url = f"{settings.mlflow_tracking_uri.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"
    return run_id, url
