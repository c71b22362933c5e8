"""The ML stages behind ``safra features | train | promote | rollback``: one function each.

Each returns a small report (a dataclass with ``as_dict()`` for ``--json``); the CLI only prints.
Airflow's DAGs call the same commands.

- :func:`run_features`: register the feature repo (``feast apply``) and materialize what is new
  in gold into Redis (``materialize_incremental`` up to now). Idempotent.
- :func:`run_train`: the Feast point-in-time training set, an out-of-time split, the candidates,
  one MLflow run, a registered version with alias ``challenger``. The simulator's best achievable
  AUC on the same validation rows is computed here — the orchestration, not the training code —
  under the scenario each row was generated with (``origem_dados``; baseline when absent).
- :func:`run_promote` / :func:`run_rollback`: :mod:`ml.promote` with the settings' thresholds and
  margin, on a holdout neither model trained on.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml.feature_store import apply_repo, feature_store
from ml.promote import PromotionDecision, promote_if_better, rollback
from ml.registry import CHALLENGER, CHAMPION, tracking_client, version_by_alias
from ml.train import LABEL, out_of_time_split, train_and_register
from ml.training_set import TrainingSet, build_training_set, scenario_of
from safra.lakehouse import trino_connection
from safra.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_VALID_FRACTION = 0.2


# --- safra features -------------------------------------------------------------------------


@dataclass
class ViewMaterialization:
    name: str
    start: str
    end: str
    rows: int
    """Gold rows in (start, end]: what the offline store had to read."""
    keys: int
    """Distinct entity keys among them: what was written to Redis (latest row per key)."""


@dataclass
class FeaturesReport:
    project: str
    registry: str
    entities: list[str]
    feature_views: list[str]
    feature_services: list[str]
    materialized: list[ViewMaterialization]
    apply_seconds: float
    materialize_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count_new_rows(settings: Settings, fv: Any, start: datetime, end: datetime) -> tuple[int, int]:
    keys = ", ".join(fv.join_keys) if fv.join_keys else "1"
    table = fv.batch_source.get_table_query_string()
    ts = fv.batch_source.timestamp_field
    sql = (
        f"SELECT count(*), count(DISTINCT ({keys})) FROM {settings.iceberg_catalog}.{table} "
        f"WHERE {ts} > from_iso8601_timestamp('{start.isoformat()}') "
        f"AND {ts} <= from_iso8601_timestamp('{end.isoformat()}')"
    )
    conn = trino_connection(settings)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        rows, keys_n = cur.fetchone()
    finally:
        conn.close()
    return int(rows), int(keys_n)


def run_features(settings: Settings, end: datetime | None = None) -> FeaturesReport:
    """``feast apply`` of the repo, then ``materialize_incremental`` up to ``end`` (now)."""
    store = feature_store(settings)
    began = time.perf_counter()
    contents = apply_repo(store, settings)
    apply_s = time.perf_counter() - began
    end = end or datetime.now(UTC)
    views = []
    for fv in store.list_feature_views(allow_cache=False):
        if not fv.online:
            continue
        start = fv.most_recent_end_time or (end - fv.ttl if fv.ttl else datetime(1970, 1, 1))
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        rows, keys = _count_new_rows(settings, fv, start, end)
        views.append(ViewMaterialization(fv.name, start.isoformat(), end.isoformat(), rows, keys))
    began = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress; keep stdout for --json
        store.materialize_incremental(end_date=end)
    materialize_s = time.perf_counter() - began
    logger.info("materialized %d views up to %s in %.1f s", len(views), end, materialize_s)
    return FeaturesReport(
        project=store.project,
        registry=str(store.config.registry.path),
        entities=sorted(e.name for e in contents.entities if not e.name.startswith("__")),
        feature_views=sorted(v.name for v in contents.feature_views),
        feature_services=sorted(s.name for s in contents.feature_services),
        materialized=views,
        apply_seconds=round(apply_s, 2),
        materialize_seconds=round(materialize_s, 2),
    )


# --- safra train ----------------------------------------------------------------------------


def best_achievable_auc(valid: pd.DataFrame, label_col: str = LABEL) -> float | None:
    """The simulator's ceiling on ``valid``: the AUC of the true default probabilities, each row
    under the scenario it was generated with (``origem_dados``; baseline when absent). None when
    the rows hold one class only. Lives here, not in :mod:`ml.train`: training code never
    imports the hidden model."""
    from pipelines.simulator.hidden_model import default_probability, roc_auc

    y = valid[label_col].astype(bool).to_numpy()
    if y.all() or not y.any():
        return None
    origins = valid["origem_dados"] if "origem_dados" in valid.columns else None
    scenarios = (
        origins.fillna("").map(scenario_of)
        if origins is not None
        else pd.Series("baseline", index=valid.index)
    )
    truth = np.empty(len(valid), dtype=float)
    for scenario, rows in scenarios.groupby(scenarios).groups.items():
        where = valid.index.get_indexer(rows)
        truth[where] = default_probability(valid.loc[rows], scenario)
    return roc_auc(y, truth)


@dataclass
class TrainReport:
    run_id: str
    model_name: str
    version: str | None
    winner: str
    metrics: dict[str, float]
    candidate_aucs: dict[str, float]
    train_rows: int
    valid_rows: int
    valid_from: str
    scenarios: list[str]
    best_achievable_auc: float | None
    auc_fraction_of_best: float | None
    training_set_seconds: float
    train_seconds: float
    lineage: dict[str, str]
    run_url: str
    model_url: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split(
    ts: TrainingSet, valid_fraction: float, valid_days: float | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = ts.frame
    if valid_days is not None:
        if valid_days <= 0:
            raise ValueError(f"--valid-days must be > 0, got {valid_days}")
        cutoff = frame["data_solicitacao"].max() - timedelta(days=valid_days)
        return out_of_time_split(frame, valid_from=cutoff)
    return out_of_time_split(frame, valid_fraction=valid_fraction)


def run_train(
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    valid_days: float | None = None,
    n_jobs: int = 1,
    experiment_name: str | None = None,
    candidates: Any = None,
) -> TrainReport:
    """Training set (Feast, point in time) → out-of-time split → candidates → MLflow run →
    registered version ``@challenger`` of ``settings.model_name``."""
    store = feature_store(settings)
    ts = build_training_set(store, settings, since, until)
    train, valid = _split(ts, valid_fraction, valid_days)
    for name, part in (("training", train), ("validation", valid)):
        if part[LABEL].nunique() < 2:
            raise ValueError(
                f"the {name} window ({len(part)} rows) holds one class only: more labelled "
                "data (outcomes) is needed, or a wider window"
            )
    ceiling = best_achievable_auc(valid)
    extra: dict[str, Any] = {}
    if experiment_name:
        extra["experiment_name"] = experiment_name
    if candidates is not None:
        extra["candidates"] = candidates
    began = time.perf_counter()
    result = train_and_register(
        train, valid, settings=settings, model_name=settings.model_name, lineage=ts.lineage,
        best_achievable_auc=ceiling, approve_below=settings.approve_below,
        deny_above=settings.deny_above, n_jobs=n_jobs, **extra,
    )  # fmt: skip
    train_s = time.perf_counter() - began
    client = tracking_client(settings)
    run = client.get_run(result.run_id)
    base = settings.mlflow_tracking_uri.rstrip("/")
    return TrainReport(
        run_id=result.run_id,
        model_name=result.model_name,
        version=result.version,
        winner=result.winner,
        metrics={k: float(v) for k, v in result.metrics.items()},
        candidate_aucs=result.candidate_aucs,
        train_rows=len(train),
        valid_rows=len(valid),
        valid_from=str(valid["data_solicitacao"].min()),
        scenarios=ts.scenarios,
        best_achievable_auc=ceiling,
        auc_fraction_of_best=result.metrics.get("auc_fraction_of_best"),
        training_set_seconds=round(ts.seconds, 2),
        train_seconds=round(train_s, 2),
        lineage=ts.lineage,
        run_url=f"{base}/#/experiments/{run.info.experiment_id}/runs/{result.run_id}",
        model_url=(
            f"{base}/#/models/{result.model_name}/versions/{result.version}"
            if result.version
            else None
        ),
    )


# --- safra promote / rollback ---------------------------------------------------------------


@dataclass
class PromoteReport:
    action: str
    promoted: bool
    dry_run: bool
    model_name: str
    challenger_version: str | None
    champion_version_before: str | None
    champion_version_after: str | None
    previous_champion_version: str | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    reasons: list[str]
    holdout_rows: int
    holdout_from: str | None
    actor: str
    decided_at: str
    log_run_id: str | None = None
    margin: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("challenger_metrics", "champion_metrics"):
            out[key] = {k: (None if not np.isfinite(v) else v) for k, v in out[key].items()}
        return out


def _report(
    decision: PromotionDecision, holdout_from: str | None, margin: float | None
) -> PromoteReport:
    return PromoteReport(
        action=decision.action,
        promoted=decision.promoted,
        dry_run=decision.dry_run,
        model_name=decision.model_name,
        challenger_version=decision.challenger_version,
        champion_version_before=decision.champion_version_before,
        champion_version_after=decision.champion_version_after,
        previous_champion_version=decision.previous_champion_version,
        challenger_metrics=dict(decision.challenger_metrics),
        champion_metrics=dict(decision.champion_metrics),
        reasons=list(decision.reasons),
        holdout_rows=decision.holdout_rows,
        holdout_from=holdout_from,
        actor=decision.actor,
        decided_at=decision.decided_at,
        log_run_id=decision.log_run_id,
        margin=margin,
    )


def _validation_start(settings: Settings, version: str | None) -> pd.Timestamp | None:
    """When the validation window of ``version``'s training run began (its ``valid_from``)."""
    if version is None:
        return None
    client = tracking_client(settings)
    mv = client.get_model_version(settings.model_name, version)
    run_id = mv.run_id or mv.tags.get("run_id")
    if not run_id:
        return None
    value = client.get_run(run_id).data.params.get("valid_from")
    if not value:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def promotion_holdout(
    settings: Settings, frame: pd.DataFrame, valid_fraction: float = DEFAULT_VALID_FRACTION
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The labelled rows neither ``@challenger`` nor ``@champion`` trained on: every row at or
    after the later of their validation windows' starts (labels that arrived since included);
    the latest ``valid_fraction`` of rows when no start is recorded. ValueError when empty."""
    client = tracking_client(settings)
    starts = [
        s
        for alias in (CHALLENGER, CHAMPION)
        if (s := _validation_start(settings, version_by_alias(client, settings.model_name, alias)))
        is not None
    ]
    if starts:
        cutoff = max(starts)
        holdout = frame[frame["data_solicitacao"] >= cutoff]
    else:
        _, holdout = out_of_time_split(frame, valid_fraction=valid_fraction)
        cutoff = holdout["data_solicitacao"].min()
    if holdout.empty:
        raise ValueError(f"no labelled application at or after {cutoff}: no holdout to compare on")
    return holdout, cutoff


def run_promote(
    settings: Settings,
    dry_run: bool = False,
    holdout: pd.DataFrame | None = None,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
) -> PromoteReport:
    """Challenger vs champion on the same holdout (default :func:`promotion_holdout` of the
    current Feast training set); aliases move only when the challenger wins (:mod:`ml.promote`).
    ValueError when there is no challenger or no holdout."""
    client = tracking_client(settings)
    if version_by_alias(client, settings.model_name, CHALLENGER) is None:
        raise ValueError(f"{settings.model_name} has no @{CHALLENGER}: run `safra train` first")
    holdout_from: str | None = None
    if holdout is None:
        ts = build_training_set(feature_store(settings), settings)
        holdout, start = promotion_holdout(settings, ts.frame, valid_fraction)
        holdout_from = str(start)
    decision = promote_if_better(
        settings, settings.model_name, holdout, margin=settings.promotion_margin,
        dry_run=dry_run, approve_below=settings.approve_below, deny_above=settings.deny_above,
    )  # fmt: skip
    return _report(decision, holdout_from, settings.promotion_margin)


def run_rollback(settings: Settings) -> PromoteReport:
    """``champion`` ← ``previous-champion``, logged. ValueError when there is none."""
    return _report(rollback(settings, settings.model_name), None, None)
