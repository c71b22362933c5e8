"""Drift monitoring: the champion's reference sample against recent data, with Evidently.

The **reference** is the sample of the champion's training inputs that :mod:`ml.train` logs with
every run (``reference/train_sample.parquet``: the model inputs, the label and the model's
``prob_default``). ``models:/<name>@champion`` is resolved to a version and the version's sample
read with :func:`ml.registry.reference_sample`.

The **current** data comes from one or more sources, each compared on its own (their populations
differ, so they are never mixed):

- ``applications``: the newest valid rows of ``silver.silver_applications`` (by
  ``data_solicitacao``) turned into model inputs by :func:`ml.features.model_inputs` — the one
  feature code path — and scored by the champion;
- ``scored_requests``: the newest rows of ``bronze.scored_requests`` (by ``requested_at``): the
  feature map the API's model saw, flattened to columns, and the probability it answered. The
  map holds numbers only, so categorical columns are not compared for this source;
- a DataFrame given by the caller (``current=``): flat applications or model inputs, with
  ``prob_default`` or scored by the champion.

What is compared (:data:`MONITORED_NUMERIC`, :data:`MONITORED_CATEGORICAL`): the application's
inputs a changing world can move and the derived ratios the model leans on, plus the predicted
probability. Left out: the log transforms (the same information as the raw figures), the UF's
region (a function of the UF) and the applicant-history columns (``hist_*``: how much history
exists depends on how long the platform has run, not on the applicants; they would drift on a
young lakehouse without any change in the world).

Each column is tested with a distance (Wasserstein normed by the reference's deviation for
numbers, Jensen-Shannon for categories; drifted when ≥ :data:`COLUMN_THRESHOLD`), fixed rather
than left to Evidently's size-based choice so that a check means the same at any sample size
(p-value tests flag trivial shifts on 20,000 rows). A source has drifted when the share of drifted
columns is ≥ ``settings.drift_share``; the check has drifted when any source has.

A shift confined to a small segment is not population drift: the ``drought`` scenario (soybean
farms in MT, GO and MS, ~10 % of applications, declaring 25 % less income) moves no column of
the whole population past the threshold (the largest distance, income, was 0.046 against 0.040
between two baseline samples). So each comparison also judges every segment
(:mod:`ml.segment_drift`: UF, region, crop, UF × crop, person type, amount band, the champion's
score band) with per-segment tests whose false-alarm rate over the whole check is bounded
(Holm, ``settings.drift_alpha``); segments too small to judge are reported as such. A comparison
has drifted when the population has (the share above) **or** any segment has; the report names
the segments and their columns, and the HTML shows each drifted segment's columns next to the
population's.

:func:`compare` is pure (two DataFrames in, a :class:`DriftComparison` out).
:func:`check_drift` adds the I/O: it reads the reference and the current data, writes one
self-contained HTML report per source to ``<reports_dir>/drift/``, logs the reports and the
figures to the MLflow experiment :data:`MONITORING_EXPERIMENT` (tagged with the model name and
version) and returns a :class:`DriftResult`. ``safra drift`` and the Airflow DAG call it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.features import (
    APPLICATION_CATEGORICAL,
    APPLICATION_FIELDS,
    APPLICATION_NUMERIC,
    model_inputs,
)
from ml.registry import (
    CHAMPION,
    experiment_id,
    load_version,
    metric_key,
    reference_sample,
    tracking_client,
    version_by_alias,
    version_run_id,
)
from ml.registry import predict_default_probability as _predict
from ml.segment_drift import MAX_DRIFTED_COLUMNS_SHOWN, SegmentDrift, segment_drift
from ml.segments import segment_labels
from safra.lakehouse import published, trino_cursor
from safra.settings import Settings

logger = logging.getLogger(__name__)

MONITORING_EXPERIMENT = "safra-monitoring"
PREDICTION = "prob_default"
"""The predicted probability of default, as :mod:`ml.train` names it in the reference sample."""

MONITORED_NUMERIC: tuple[str, ...] = (
    *APPLICATION_NUMERIC,
    "serasa_score_ausente",
    "debt_to_income",
    "valor_por_hectare",
    "parcela_sobre_renda_mensal",
    PREDICTION,
)
MONITORED_CATEGORICAL: tuple[str, ...] = APPLICATION_CATEGORICAL
NUM_METHOD = "wasserstein"
CAT_METHOD = "jensenshannon"
COLUMN_THRESHOLD = 0.15
"""A column has drifted when its distance is ≥ this. Evidently's default is 0.1, but two baseline
samples of 3,000 rows reach 0.10 on ``anos_experiencia`` and ``possui_experiencia_atividade``
(returning applicants make samples clumpy); real shifts sit far above (a bureau recalibration:
``serasa_score`` 0.84, ``serasa_score_ausente`` 0.47, ``prob_default`` 0.44)."""
MAX_SEGMENT_COLUMNS_IN_REPORT = 30
"""The HTML shows at most this many (segment, column) shifts, the largest first."""
MIN_ROWS = 1_000
"""Fewer rows than this (current or reference) are too few to judge: a source with fewer is
skipped. Baseline against baseline, 5,000 reference rows: with 200 current rows the largest
distance by chance was 0.205 (9 of 17 columns above 0.1), with 500 rows 0.124, with 1,000 rows
0.092."""

SOURCES: tuple[str, ...] = ("applications", "scored_requests")
GIVEN = "given"
"""The source name of a DataFrame passed to :func:`check_drift`."""


class DriftError(RuntimeError):
    """A drift check could not run; the message names the cause."""


@dataclass
class DriftComparison:
    """One reference/current comparison (:func:`compare`)."""

    drift: bool
    """Population drift or any segment drifted."""
    population_drift: bool
    drifted_share: float
    threshold: float
    drifted_columns: list[str]
    column_scores: dict[str, float]
    columns: list[str]
    rows_reference: int
    rows_current: int
    prediction_drift: bool | None
    """Whether ``prob_default`` drifted, population-wide or in a segment (None when it was not
    compared)."""
    segments: SegmentDrift | None = None
    snapshot: Any = field(repr=False, default=None)
    """Evidently's snapshot (``save_html``), None when rebuilt from JSON."""

    @property
    def drifted_segments(self) -> list[str]:
        return [s.name for s in self.segments.drifted] if self.segments else []

    def summary(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "population_drift": self.population_drift,
            "drifted_segments": self.drifted_segments,
            "drifted_share": round(self.drifted_share, 6),
            "threshold": self.threshold,
            "drifted_columns": self.drifted_columns,
            "prediction_drift": self.prediction_drift,
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "column_scores": {k: round(v, 6) for k, v in self.column_scores.items()},
            "segments": self.segments.summary() if self.segments else None,
        }


@dataclass
class SourceDrift:
    """A source's comparison and the report written for it."""

    source: str
    comparison: DriftComparison
    report_path: Path


@dataclass
class DriftResult:
    """The outcome of :func:`check_drift`: drift when any source drifted."""

    model_name: str
    model_version: str
    threshold: float
    sources: dict[str, SourceDrift]
    skipped: dict[str, str]
    """Sources not compared, with the reason (too few rows, table missing...)."""
    mlflow_run_id: str
    mlflow_run_url: str
    seconds: float
    window: dict[str, Any] = field(default_factory=dict)
    """The current window judged: ``since`` (ISO, UTC; None = no lower bound) and
    ``newest_rows`` (at most that many newest rows per source)."""

    @property
    def deciding(self) -> SourceDrift:
        """The source the headline figures describe: a drifted one first, then the one with the
        most drifted segments, then the highest drifted share."""
        return max(
            self.sources.values(),
            key=lambda s: (s.comparison.drift, len(s.comparison.drifted_segments),
                           s.comparison.drifted_share),
        )  # fmt: skip

    @property
    def drift(self) -> bool:
        return any(s.comparison.drift for s in self.sources.values())

    def summary(self) -> dict[str, Any]:
        """The JSON summary ``safra drift --json`` prints (headline = :attr:`deciding`)."""
        top = self.deciding
        return {
            "drift": self.drift,
            "population_drift": top.comparison.population_drift,
            "drifted_share": round(top.comparison.drifted_share, 6),
            "threshold": self.threshold,
            "drifted_columns": top.comparison.drifted_columns,
            "drifted_segments": top.comparison.drifted_segments,
            "prediction_drift": top.comparison.prediction_drift,
            "source": top.source,
            "rows_reference": top.comparison.rows_reference,
            "rows_current": top.comparison.rows_current,
            "report_path": str(top.report_path),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "mlflow_run_id": self.mlflow_run_id,
            "mlflow_run_url": self.mlflow_run_url,
            "seconds": round(self.seconds, 2),
            "sources": {
                name: {**s.comparison.summary(), "report_path": str(s.report_path)}
                for name, s in self.sources.items()
            },
            "skipped": self.skipped,
            "window": self.window,
        }


def _sample(df: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    if rows is None or len(df) <= rows:
        return df.reset_index(drop=True)
    return df.sample(n=rows, random_state=seed).reset_index(drop=True)


def _comparable(
    reference: pd.DataFrame, current: pd.DataFrame, wanted: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Of ``wanted``, the columns both frames hold with some values, and those left out."""
    kept: list[str] = []
    left: list[str] = []
    for column in wanted:
        ok = (
            column in reference.columns
            and column in current.columns
            and reference[column].notna().any()
            and current[column].notna().any()
        )
        (kept if ok else left).append(column)
    return kept, left


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    drift_share: float,
    sample_rows: int | None = None,
    numeric: Sequence[str] = MONITORED_NUMERIC,
    categorical: Sequence[str] = MONITORED_CATEGORICAL,
    column_threshold: float = COLUMN_THRESHOLD,
    alpha: float = 0.01,
    min_segment_rows: int = 200,
    seed: int = 0,
) -> DriftComparison:
    """Compare ``current`` with ``reference`` (both model inputs + ``prob_default``) — pure.

    Columns of ``numeric`` / ``categorical`` absent or all-null in either frame are not
    compared (logged). Each frame is sampled down to ``sample_rows`` (seeded). Population drift
    when the share of drifted columns is ≥ ``drift_share``; segments are judged by
    :func:`ml.segment_drift.segment_drift` (``alpha``, ``min_segment_rows``). ValueError when no
    column is comparable or ``current`` has fewer than :data:`MIN_ROWS` rows.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if not 0 < drift_share <= 1:
        raise ValueError(f"drift_share must be in (0, 1], got {drift_share}")
    if len(current) < MIN_ROWS:
        raise ValueError(f"only {len(current)} current rows: need {MIN_ROWS} to judge drift")
    if len(reference) < MIN_ROWS:
        raise ValueError(f"only {len(reference)} reference rows (need {MIN_ROWS})")
    num, left_num = _comparable(reference, current, numeric)
    cat, left_cat = _comparable(reference, current, categorical)
    if left_num or left_cat:
        logger.info("not compared (absent or empty in one frame): %s", left_num + left_cat)
    columns = num + cat
    if not columns:
        raise ValueError(
            "no monitored column is present in both frames; expected some of "
            f"{list(numeric) + list(categorical)}"
        )
    ref = _sample(reference, sample_rows, seed)
    cur = _sample(current, sample_rows, seed + 1)
    began = time.perf_counter()
    segments = segment_drift(
        ref, cur, numeric=num, categorical=cat, alpha=alpha, min_rows=min_segment_rows
    )
    shown = [
        (seg, shift) for seg in segments.drifted for shift in seg.shifts[:MAX_DRIFTED_COLUMNS_SHOWN]
    ][:MAX_SEGMENT_COLUMNS_IN_REPORT]

    def frame(df: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=df.index)
        for c in num:
            out[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
        for c in cat:
            out[c] = [None if v is None or v != v else str(v) for v in df[c]]
        labels = segment_labels(df, sorted({seg.family for seg, _ in shown}))
        for seg, shift in shown:  # the segment's values, missing outside it
            inside = (labels[seg.family] == seg.label).to_numpy()
            out[_segment_column(seg.name, shift.column)] = out[shift.column].where(inside)
        return out

    seg_num = [_segment_column(g.name, x.column) for g, x in shown if x.column in num]
    seg_cat = [_segment_column(g.name, x.column) for g, x in shown if x.column in cat]
    definition = DataDefinition(numerical_columns=num + seg_num, categorical_columns=cat + seg_cat)
    # the drifted segments first: the top of the page says where the world changed, then the
    # population's table
    metrics: list[Any] = [
        ValueDrift(
            column=_segment_column(seg.name, shift.column),
            method=NUM_METHOD if shift.column in num else CAT_METHOD,
            threshold=segments.min_distance,
        )
        for seg, shift in shown
    ]
    metrics.append(
        DataDriftPreset(
            columns=columns,
            drift_share=drift_share,
            num_method=NUM_METHOD,
            cat_method=CAT_METHOD,
            threshold=column_threshold,
        )
    )
    snapshot = Report(metrics).run(
        current_data=Dataset.from_pandas(frame(cur), data_definition=definition),
        reference_data=Dataset.from_pandas(frame(ref), data_definition=definition),
    )
    scores: dict[str, float] = {}
    counted: float | None = None
    for metric in snapshot.dict()["metrics"]:
        name = metric["metric_name"]
        if name.startswith("DriftedColumnsCount"):
            counted = float(metric["value"]["share"])
        elif name.startswith("ValueDrift") and metric["config"]["column"] in columns:
            scores[metric["config"]["column"]] = float(metric["value"])
    missing = [c for c in columns if c not in scores]
    if counted is None or missing:
        raise RuntimeError(f"Evidently's report lacks figures (share {counted}, columns {missing})")
    drifted = [c for c in columns if np.isfinite(scores[c]) and scores[c] >= column_threshold]
    share = len(drifted) / len(columns)
    if abs(share - counted) > 1e-9:  # our reading of the per-column distances must match
        raise RuntimeError(f"drifted share {share} disagrees with Evidently's {counted}")
    population = share >= drift_share
    logger.info(
        "drift: %d/%d columns drifted (share %.3f, threshold %.3f); %d of %d judged segments "
        "drifted %s (%d not judged) in %.1fs: %s",
        len(drifted), len(columns), share, drift_share, len(segments.drifted), segments.judged,
        [s.name for s in segments.drifted][:10], len(segments.not_judged),
        time.perf_counter() - began, drifted,
    )  # fmt: skip
    prediction = None
    if PREDICTION in columns:
        prediction = PREDICTION in drifted or any(
            x.column == PREDICTION for seg in segments.drifted for x in seg.shifts
        )
    return DriftComparison(
        drift=population or bool(segments.drifted),
        population_drift=population,
        drifted_share=share,
        threshold=drift_share,
        drifted_columns=drifted,
        column_scores=scores,
        columns=columns,
        rows_reference=len(ref),
        rows_current=len(cur),
        prediction_drift=prediction,
        segments=segments,
        snapshot=snapshot,
    )


def _segment_column(segment: str, column: str) -> str:
    """The report's name of ``column`` inside ``segment``."""
    return f"{column} @ {segment}"


# --- I/O: the reference, the current data, the report, MLflow ---------------------------------


@dataclass
class Reference:
    model_name: str
    version: str
    run_id: str
    data: pd.DataFrame


def champion_reference(settings: Settings, model_name: str | None = None) -> Reference:
    """The champion's version and its reference sample; DriftError without champion or sample."""
    from mlflow.exceptions import MlflowException

    name = model_name or settings.model_name
    client = tracking_client(settings)
    try:
        version = version_by_alias(client, name, CHAMPION)
    except MlflowException as exc:
        raise DriftError(
            f"cannot read the registry at {settings.mlflow_tracking_uri}: {exc}"
        ) from exc
    if version is None:
        raise DriftError(
            f"no champion yet: model {name!r} has no @{CHAMPION} alias in the registry at "
            f"{settings.mlflow_tracking_uri} (train and promote one first: safra train, then "
            "safra promote)"
        )
    try:
        data = reference_sample(client, name, version)
    except LookupError as exc:
        raise DriftError(str(exc)) from exc
    run_id = version_run_id(client, name, version) or ""  # there is one: its sample was read
    logger.info("reference: %s v%s, run %s, %d rows", name, version, run_id, len(data))
    return Reference(name, version, run_id, data)


def current_inputs(df: pd.DataFrame, model: Any | None) -> pd.DataFrame:
    """Model inputs of ``df`` (flat applications or model inputs) plus ``prob_default``: kept
    when ``df`` has it, else predicted by ``model``."""
    x = model_inputs(df)
    if PREDICTION in df.columns:
        x[PREDICTION] = pd.to_numeric(df[PREDICTION], errors="coerce").to_numpy()
    elif model is not None:
        x[PREDICTION] = _predict(model, x)
    return x


def _query(settings: Settings, sql: str, params: list[Any]) -> pd.DataFrame:
    import trino

    try:
        with trino_cursor(settings, "safra-drift", identity="ml") as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
            names = [d[0] for d in cur.description]
    except trino.exceptions.TrinoQueryError as exc:
        raise DriftError(f"Trino query failed ({exc.error_name}): {exc.message}") from exc
    except (OSError, trino.exceptions.TrinoConnectionError) as exc:
        raise DriftError(f"cannot reach Trino at {settings.trino_url}: {exc}") from exc
    return pd.DataFrame(rows, columns=names)


def read_applications(
    settings: Settings, *, last: int, since: datetime | None = None
) -> pd.DataFrame:
    """The ``last`` newest valid silver applications (by ``data_solicitacao``), since ``since``,
    from ``<SAFRA_SCHEMA_PREFIX>silver.silver_applications``: the columns
    :func:`ml.features.model_inputs` reads (:data:`ml.features.APPLICATION_FIELDS`)."""
    schema = f"{settings.schema_prefix}silver"
    table = published(f'{settings.iceberg_catalog}."{schema}".silver_applications')
    where, params = "registro_valido", []
    if since is not None:
        where += " and data_solicitacao >= ?"
        params.append(_utc(since))
    sql = (
        f"select data_solicitacao, {', '.join(APPLICATION_FIELDS)} from {table} "
        f"where {where} order by data_solicitacao desc limit {int(last)}"
    )
    return _query(settings, sql, params)


def read_scored_requests(
    settings: Settings, *, last: int, since: datetime | None = None
) -> pd.DataFrame:
    """The ``last`` newest scored requests (by ``requested_at``), since ``since``: one column
    per key of the feature map, ``prob_default`` the answered probability
    (``<SAFRA_BRONZE_SCHEMA>.scored_requests``)."""
    table = f'{settings.iceberg_catalog}."{settings.bronze_schema}".scored_requests'
    where, params = "true", []
    if since is not None:
        where = "requested_at >= ?"
        params.append(int(_utc(since).timestamp() * 1000))
    sql = (
        f"select requested_at, model_version, probabilidade_inadimplencia, features from {table} "
        f"where {where} order by requested_at desc limit {int(last)}"
    )
    raw = _query(settings, sql, params)
    if raw.empty:
        return raw
    features = pd.DataFrame.from_records([m or {} for m in raw["features"]], index=raw.index)
    features = features.apply(pd.to_numeric, errors="coerce")
    features[PREDICTION] = raw["probabilidade_inadimplencia"].astype("float64")
    features["model_version"] = raw["model_version"]
    return features


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _stamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"


def write_report(comparison: DriftComparison, folder: Path, stamp: str, source: str) -> Path:
    """Save the comparison's self-contained HTML as ``folder/<stamp>-<source>.html`` and copy it
    to ``folder/latest-<source>.html``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stamp}-{source}.html"
    comparison.snapshot.save_html(str(path))
    shutil.copyfile(path, folder / f"latest-{source}.html")
    return path


def check_drift(
    settings: Settings,
    *,
    current: pd.DataFrame | None = None,
    sources: Sequence[str] = SOURCES,
    last: int | None = None,
    since: datetime | None = None,
    model_name: str | None = None,
    experiment_name: str = MONITORING_EXPERIMENT,
    seed: int = 0,
) -> DriftResult:
    """Check the champion's reference against recent data; write, log and return the result.

    ``current``: a DataFrame to compare (then ``sources`` is ignored), else each of ``sources``
    is read from the lakehouse: its ``last`` newest rows (default ``settings.drift_sample_rows``)
    since ``since``. Sources with fewer than :data:`MIN_ROWS` rows are skipped; DriftError
    when none is left, when there is no champion, or a service cannot be reached.
    """
    began = time.perf_counter()
    unknown = set(sources) - set(SOURCES)
    if current is None and (unknown or not sources):
        raise DriftError(f"unknown drift sources {sorted(unknown)}; known: {', '.join(SOURCES)}")
    ref = champion_reference(settings, model_name)
    rows = last or settings.drift_sample_rows
    model: Any | None = None

    def champion_model() -> Any:
        nonlocal model
        if model is None:
            model = load_version(settings, ref.model_name, ref.version)
        return model

    frames: dict[str, pd.DataFrame] = {}
    skipped: dict[str, str] = {}
    if current is not None:
        need_model = PREDICTION not in current.columns
        frames[GIVEN] = current_inputs(current, champion_model() if need_model else None)
    else:
        for source in sources:
            try:
                if source == "applications":
                    raw = read_applications(settings, last=rows, since=since)
                    frames[source] = (
                        current_inputs(raw, champion_model()) if len(raw) >= MIN_ROWS
                        else raw
                    )  # fmt: skip
                else:
                    frames[source] = read_scored_requests(settings, last=rows, since=since)
            except DriftError as exc:
                skipped[source] = str(exc)
                logger.warning("drift source %s skipped: %s", source, exc)
    for source, frame in list(frames.items()):
        if len(frame) < MIN_ROWS:
            skipped[source] = f"{len(frame)} rows (fewer than {MIN_ROWS})"
            del frames[source]
    if not frames:
        details = "; ".join(f"{s}: {why}" for s, why in skipped.items())
        raise DriftError(f"no current data to compare with the reference ({details})")

    stamp = _stamp()
    folder = settings.reports_dir / "drift"
    results: dict[str, SourceDrift] = {}
    for source, frame in frames.items():
        try:
            comparison = compare(
                ref.data, frame, drift_share=settings.drift_share,
                sample_rows=settings.drift_sample_rows, alpha=settings.drift_alpha,
                min_segment_rows=settings.drift_min_segment_rows, seed=seed,
            )  # fmt: skip
        except ValueError as exc:
            raise DriftError(f"{source}: {exc}") from exc
        results[source] = SourceDrift(
            source, comparison, write_report(comparison, folder, stamp, source)
        )
    run_id, url = _log_run(settings, ref, results, skipped, experiment_name, stamp)
    result = DriftResult(
        model_name=ref.model_name,
        model_version=ref.version,
        threshold=settings.drift_share,
        sources=results,
        skipped=skipped,
        mlflow_run_id=run_id,
        mlflow_run_url=url,
        seconds=time.perf_counter() - began,
        window={"since": None if since is None else _utc(since).isoformat(), "newest_rows": rows},
    )
    logger.info(
        "drift check of %s v%s: drift=%s (share %.3f, segments %s, from %s) in %.1fs",
        ref.model_name, ref.version, result.drift, result.deciding.comparison.drifted_share,
        result.deciding.comparison.drifted_segments[:10], result.deciding.source, result.seconds,
    )  # fmt: skip
    return result


def _log_run(
    settings: Settings,
    ref: Reference,
    results: Mapping[str, SourceDrift],
    skipped: Mapping[str, str],
    experiment_name: str,
    stamp: str,
) -> tuple[str, str]:
    """One MLflow run: the figures per source, the HTML reports, the summary JSON."""
    import mlflow

    client = tracking_client(settings)
    exp_id = experiment_id(client, experiment_name)
    drift = any(s.comparison.drift for s in results.values())
    top = max(results.values(), key=lambda s: s.comparison.drifted_share)
    metrics: dict[str, float] = {
        "drift": float(drift),
        "drifted_share": top.comparison.drifted_share,
        "threshold": settings.drift_share,
    }
    for source, sd in results.items():
        c = sd.comparison
        metrics[metric_key(source, "drift")] = float(c.drift)
        metrics[metric_key(source, "drifted_share")] = c.drifted_share
        metrics[metric_key(source, "drifted_columns")] = float(len(c.drifted_columns))
        metrics[metric_key(source, "rows_current")] = float(c.rows_current)
        metrics[metric_key(source, "rows_reference")] = float(c.rows_reference)
        if c.segments is not None:
            metrics[metric_key(source, "drifted_segments")] = float(len(c.segments.drifted))
            metrics[metric_key(source, "judged_segments")] = float(c.segments.judged)
            metrics[metric_key(source, "segment_tests")] = float(c.segments.tests)
        for column, score in c.column_scores.items():
            if np.isfinite(score):
                metrics[metric_key(source, "column", column)] = score
    tags = {
        "model_name": ref.model_name,
        "model_version": ref.version,
        "reference_run_id": ref.run_id,
        "drift": str(drift).lower(),
        "sources": ",".join(results),
        "skipped_sources": ",".join(skipped),
        "drifted_columns": ",".join(top.comparison.drifted_columns),
        # MLflow caps a tag at 5,000 characters; the summary artifact holds them all
        "drifted_segments": ",".join(
            sorted({n for s in results.values() for n in s.comparison.drifted_segments})
        )[:4_000],
    }
    with mlflow.start_run(
        experiment_id=exp_id, run_name=f"drift-{ref.model_name}-v{ref.version}-{stamp}"
    ) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(
            {
                "drift_share": settings.drift_share,
                "column_threshold": COLUMN_THRESHOLD,
                "num_method": NUM_METHOD,
                "cat_method": CAT_METHOD,
                "sample_rows": settings.drift_sample_rows,
                "segment_alpha": settings.drift_alpha,
                "segment_min_rows": settings.drift_min_segment_rows,
            }
        )
        mlflow.log_metrics(metrics)
        for sd in results.values():
            mlflow.log_artifact(str(sd.report_path), artifact_path="drift")
        summary = {s: {**sd.comparison.summary(), "report_path": str(sd.report_path)}
                   for s, sd in results.items()}  # fmt: skip
        mlflow.log_text(json.dumps({"sources": summary, "skipped": dict(skipped)}, indent=2),
                        "drift/summary.json")  # fmt: skip
        run_id = run.info.run_id
    url = f"{settings.mlflow_tracking_uri.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"
    return run_id, url
