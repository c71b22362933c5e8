"""Training: an out-of-time split, three candidate pipelines, the best one logged and registered.

Each candidate is ONE scikit-learn :class:`~sklearn.pipeline.Pipeline` over
:func:`ml.features.model_inputs` — the same function serving calls — whose preprocessing follows
the learner (:func:`build_pipeline`):

- the trees (random forest, histogram gradient boosting) take the numerics as they are (median
  imputation + missing indicators) and one-hot categoricals;
- the linear model (``logistic_regression``: L2-regularized logistic regression) needs its inputs
  on a scale where a straight line means something: every numeric is mapped through its training
  quantiles onto a standard normal (money and ratios are log-normal-like, so this is close to
  taking their logs, and an outlier at serving time is clipped to the training range instead of
  extrapolated), then imputed (+ missing indicators) and standardized; categoricals are one-hot,
  plus the crop × region crosses (the same crop is not the same risk in every climate).

Candidates are compared on the same out-of-time validation window (:func:`select_winner`). The
winner is the highest validation ROC-AUC (ranking is what the thresholds then cut) among the
candidates whose expected calibration error (:func:`ml.evaluate.expected_calibration_error`) is
at most :data:`SELECTION_MAX_ECE`: a lender reads the probability itself (the approve/deny
thresholds, pricing, provisions), so a model that ranks well but says 20 % where 30 % default is
set aside — as long as that costs at most :data:`SELECTION_AUC_SLACK` of ROC-AUC (about its
noise on the holdout). Beyond that, or when no candidate is calibrated, the highest ROC-AUC wins
anyway, the run is tagged ``selection_calibration=outside-bound`` and the promotion guardrails
judge its calibration.
F1 at the business threshold is logged beside it and is what promotion compares.

:func:`fit_candidates` is pure (no MLflow): the benchmark and the tests use it directly.
:func:`train_and_register` adds the MLflow run (params, metrics, per-segment metrics, plots,
model with signature and input example — and, when it gives the same probabilities
(:func:`ml.compiled.compile_with_parity`), its ONNX graph in the same model directory — lineage
tags, a reference sample for the drift monitor
and the API's reasons: :func:`ml.registry.log_reference_sample`), registers the winner, signs the
registered version's artifacts (:func:`ml.registry.sign_version`: only signed versions are ever
loaded) and points the ``challenger`` alias at it. The pipeline is saved with skops, not pickled.

:func:`run_train` is the stage behind ``safra train``: the Feast point-in-time training set
(:mod:`ml.training_set`), an out-of-time split, :func:`train_and_register`, and a
:class:`TrainReport` (``as_dict()`` for ``--json``; the CLI only prints). The best achievable
AUC is not known here: training code never sees the simulator's hidden model. The caller that
knows the data's origin hands in a ``ceiling`` function (the CLI and the demo pass
:func:`pipelines.simulator.hidden_model.best_achievable_auc_by_origin`).
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import scipy
import sklearn
import skops
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, DataType, Schema, TensorSpec
from sklearn.base import ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    OneHotEncoder,
    PolynomialFeatures,
    QuantileTransformer,
    StandardScaler,
)
from threadpoolctl import threadpool_limits

from ml import compiled, evaluate, signing
from ml.alias_history import record_challenger
from ml.feature_store import feature_store
from ml.features import CATEGORICAL, FEATURE_COLUMNS, FEATURE_SET_VERSION, NUMERIC, model_inputs
from ml.registry import (
    CHALLENGER,
    MODEL_NAME,
    SKOPS_TRUSTED_TYPES,
    actor,
    experiment_id,
    log_reference_sample,
    metric_key,
    sign_version,
    tracking_client,
)
from ml.training_set import LABEL, TrainingSet, build_training_set
from safra.settings import Settings, get_settings

logger = logging.getLogger(__name__)

EXPERIMENT = "safra-credit"
DEFAULT_VALID_FRACTION = 0.2
"""The latest share of rows that validates (``safra train``), and the promotion holdout when no
validation window is recorded (``safra promote``)."""
SELECTION_METRIC = "roc_auc"
"""Candidates are ranked by validation ROC-AUC..."""
SELECTION_MAX_ECE = 0.03
"""...among those whose validation ECE is at most this. A perfectly calibrated model shows about
0.01 on the demo's 3,000-6,000 validation rows (each bin's realized rate is a sample), so 0.03 is
a miscalibration, not noise: the random forest, whose averaged leaves pull every probability
towards the mean, shows 0.020-0.043 at demo scale (``bench/train_bench.py``)."""
SELECTION_AUC_SLACK = 0.01
"""...unless that costs more than this much validation ROC-AUC: then the best ROC-AUC wins anyway
(a poorly calibrated model that ranks far better beats a calibrated one that hardly ranks; the
promotion guardrails still judge its calibration). 0.01 is about the standard error of ROC-AUC
on a 3,000-row holdout: within it, the rankings are not distinguishable and calibration decides."""
LINEAR_C = 0.03
"""Inverse L2 strength of the logistic regression, on standardized inputs. Chosen on the
benchmark (0.01-1: 0.03 was best or within noise on 12,000-24,000 rows of every scenario); the
penalty does not grow with the rows, so it matters less on larger training sets."""
LINEAR_MODELS = (LogisticRegression, LogisticRegressionCV)
"""The classifiers :func:`build_pipeline` gives :func:`linear_preprocess`'s inputs."""
CROSSED_CATEGORICALS: tuple[str, str] = ("regiao", "cultura_principal")
"""The linear model's one interaction: a crop's risk depends on the region's climate."""
REFERENCE_SAMPLE_ROWS = 20_000
"""Training rows kept as the drift reference: per-segment drift needs a few hundred rows in
segments of 1 to 5 % of the portfolio (UF x crop), which 5,000 rows did not give."""
RF_MAX_ROWS_PER_TREE = 100_000
"""Each random-forest tree sees a bootstrap sample of at most this many rows (``max_samples``):
on 2 cores a forest of full-size trees over a million rows is too slow, and the forest's quality
saturates well before that."""


def out_of_time_split(
    df: pd.DataFrame,
    time_col: str = "data_solicitacao",
    valid_fraction: float = 0.2,
    *,
    valid_from: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, valid): the most recent ``valid_fraction`` of rows by ``time_col`` is validation
    — or, with ``valid_from`` (a time comparable with ``time_col``), every row at or after it.

    Rows tied at the cutoff all go to validation, so every training row is strictly older than
    every validation row.
    """
    if time_col not in df.columns:
        raise ValueError(f"no time column {time_col!r}")
    ordered = df.sort_values(time_col, kind="stable")
    if valid_from is not None:
        cutoff = valid_from
        if not (ordered[time_col] >= cutoff).any():
            raise ValueError(f"no row at or after {cutoff}: no validation rows")
    else:
        if not 0.0 < valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
        n_valid = max(1, int(round(len(ordered) * valid_fraction)))
        if len(ordered) - n_valid < 1:
            raise ValueError(
                f"{len(ordered)} rows cannot be split by valid_fraction={valid_fraction}"
            )
        cutoff = ordered[time_col].iloc[len(ordered) - n_valid]
    is_valid = ordered[time_col] >= cutoff
    train, valid = ordered[~is_valid], ordered[is_valid]
    if train.empty:
        raise ValueError(f"every row is at or after the cutoff {cutoff}: no training rows")
    logger.info(
        "out-of-time split at %s=%s: %d train rows, %d validation rows",
        time_col,
        cutoff,
        len(train),
        len(valid),
    )
    return train, valid


def tree_preprocess() -> ColumnTransformer:
    """The trees' inputs: numerics as they are (median-imputed, + missing indicators),
    categoricals one-hot (unknown levels ignored)."""
    return ColumnTransformer(
        [
            (
                "numeric",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                list(NUMERIC),
            ),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL),
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def linear_preprocess(random_state: int = 42) -> ColumnTransformer:
    """The linear model's inputs: numerics through their training quantiles onto a standard
    normal, then median-imputed (+ missing indicators) and standardized; categoricals one-hot,
    plus the one-hot crosses of :data:`CROSSED_CATEGORICALS` (their pairwise products; the
    crop × crop and region × region ones are always 0 and cost only a column). Sparse, so that a
    million rows stay small."""
    numeric = Pipeline(
        [
            (
                "quantile",
                QuantileTransformer(output_distribution="normal", random_state=random_state),
            ),
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
        ]
    )
    crosses = Pipeline(
        [
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ("cross", PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, list(NUMERIC)),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
            ("crosses", crosses, list(CROSSED_CATEGORICALS)),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def build_pipeline(classifier: ClassifierMixin) -> Pipeline:
    """The model: the preprocessing ``classifier``'s family needs (:func:`linear_preprocess` for a
    linear model, :func:`tree_preprocess` otherwise) of :data:`ml.features.FEATURE_COLUMNS`, then
    ``classifier``."""
    if isinstance(classifier, LINEAR_MODELS):
        state = classifier.get_params().get("random_state")
        preprocess = linear_preprocess(state if isinstance(state, int) else 42)
    else:
        preprocess = tree_preprocess()
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def candidate_classifiers(
    n_rows: int, random_state: int = 42, n_jobs: int = 1
) -> dict[str, ClassifierMixin]:
    """The candidates, by name: the seed's random forest, a histogram gradient boosting and an
    L2-regularized logistic regression (on :func:`linear_preprocess`'s inputs)."""
    max_samples = min(1.0, RF_MAX_ROWS_PER_TREE / max(n_rows, 1))
    return {
        "random_forest": RandomForestClassifier(
            n_estimators=150,
            min_samples_leaf=20,
            max_features="sqrt",
            max_samples=max_samples if max_samples < 1.0 else None,
            n_jobs=n_jobs,
            random_state=random_state,
        ),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=500,
            max_leaf_nodes=31,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=30,
            random_state=random_state,
        ),
        "logistic_regression": LogisticRegression(
            C=LINEAR_C, max_iter=2_000, random_state=random_state
        ),
    }


@dataclass
class CandidateFit:
    """One fitted candidate and how it did on the validation window."""

    name: str
    pipeline: Pipeline
    fit_seconds: float
    valid_prob: np.ndarray
    metrics: dict[str, float]


@dataclass
class Selection:
    """The fitted candidates (by name) and the winner's name."""

    candidates: dict[str, CandidateFit]
    winner: str
    train_inputs: pd.DataFrame
    valid_inputs: pd.DataFrame
    y_train: np.ndarray
    y_valid: np.ndarray
    eligible: list[str] = field(default_factory=list)
    """The candidates within :data:`SELECTION_MAX_ECE` (see :func:`select_winner`)."""

    @property
    def best(self) -> CandidateFit:
        return self.candidates[self.winner]


@dataclass
class TrainResult:
    """What :func:`train_and_register` did."""

    run_id: str
    model_uri: str
    """The logged model (``models:/<model id>``)."""
    winner: str
    metrics: dict[str, float]
    """The winner's validation metrics (plus best_achievable_auc / auc_fraction_of_best)."""
    candidate_aucs: dict[str, float]
    model_name: str
    version: str | None = None
    candidate_eces: dict[str, float] = field(default_factory=dict)
    """Each candidate's validation ECE (:func:`ml.evaluate.expected_calibration_error`)."""
    """The registered version (None when ``register=False``)."""
    segment_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    pipeline: Pipeline | None = None


def labels(df: pd.DataFrame, label_col: str = LABEL) -> np.ndarray:
    """``df[label_col]`` as 0/1 integers; ValueError when a label is missing."""
    if label_col not in df.columns:
        raise ValueError(f"no label column {label_col!r}")
    y = df[label_col]
    if y.isna().any():
        raise ValueError(f"{int(y.isna().sum())} rows have no label {label_col!r}")
    return y.astype(bool).to_numpy().astype(int)


def fit_candidates(
    train_df: pd.DataFrame,
    valid_df: pd.DataFrame,
    label_col: str = LABEL,
    *,
    candidates: Mapping[str, ClassifierMixin] | None = None,
    deny_above: float = evaluate.DENY_ABOVE,
    approve_below: float = evaluate.APPROVE_BELOW,
    random_state: int = 42,
    n_jobs: int = 1,
) -> Selection:
    """Fit every candidate on ``train_df``, evaluate on ``valid_df``, pick the winner
    (:func:`select_winner`: the best ROC-AUC among the calibrated ones).

    Pure: no MLflow. ``n_jobs`` caps the threads (forest jobs and OpenMP) of every fit.
    """
    y_train, y_valid = labels(train_df, label_col), labels(valid_df, label_col)
    if len(np.unique(y_train)) < 2:
        raise ValueError("the training set holds one class only")
    x_train, x_valid = model_inputs(train_df), model_inputs(valid_df)
    chosen = dict(candidates or candidate_classifiers(len(x_train), random_state, n_jobs))
    fits: dict[str, CandidateFit] = {}
    for name, classifier in chosen.items():
        pipeline = build_pipeline(classifier)
        began = time.perf_counter()
        with threadpool_limits(limits=n_jobs), warnings.catch_warnings():
            # a history column with no value at all (no returning applicant in the window) is
            # imputed as 0; the quantile step's numpy says "All-NaN slice" about it
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            pipeline.fit(x_train, y_train)
            prob = pipeline.predict_proba(x_valid)[:, 1]
        seconds = time.perf_counter() - began
        scores = evaluate.metrics(y_valid, prob, deny_above=deny_above, approve_below=approve_below)
        fits[name] = CandidateFit(name, pipeline, seconds, prob, scores)
        logger.info(
            "candidate %s: %.1fs on %d rows, valid roc_auc %.4f, ece %.4f, f1@%.2f %.4f",
            name,
            seconds,
            len(x_train),
            scores["roc_auc"],
            scores["ece"],
            deny_above,
            scores["f1_at_threshold"],
        )
    winner, eligible = select_winner({name: fit.metrics for name, fit in fits.items()})
    return Selection(fits, winner, x_train, x_valid, y_train, y_valid, eligible)


def select_winner(
    scores: Mapping[str, Mapping[str, float]],
    max_ece: float = SELECTION_MAX_ECE,
    auc_slack: float = SELECTION_AUC_SLACK,
) -> tuple[str, list[str]]:
    """(winner, eligible) from each candidate's validation :func:`ml.evaluate.metrics`.

    ``eligible``: the candidates whose ``ece`` is at most ``max_ece`` (in the given order). The
    winner is the best eligible :data:`SELECTION_METRIC` when it is within ``auc_slack`` of the
    best of all; otherwise (none eligible, or calibration would cost more ranking than that) the
    best of all wins, with a warning.
    """
    if not scores:
        raise ValueError("no candidates to select from")

    def auc(name: str) -> float:
        return float(np.nan_to_num(scores[name][SELECTION_METRIC], nan=-1.0))

    best_of_all = max(scores, key=auc)
    eligible = [n for n, m in scores.items() if m["ece"] <= max_ece]
    set_aside = ", ".join(f"{n} (ece {scores[n]['ece']:.4f})" for n in scores if n not in eligible)
    best_eligible = max(eligible, key=auc) if eligible else None
    if best_eligible is not None and auc(best_eligible) >= auc(best_of_all) - auc_slack:
        logger.info(
            "winner by validation %s among the calibrated (ece <= %.3f): %s%s",
            SELECTION_METRIC,
            max_ece,
            best_eligible,
            f"; set aside: {set_aside}" if set_aside else "",
        )
        return best_eligible, eligible
    logger.warning(
        "%s wins on %s alone: its ece %.4f > %.3f, and %s",
        best_of_all,
        SELECTION_METRIC,
        scores[best_of_all]["ece"],
        max_ece,
        "no candidate is calibrated"
        if best_eligible is None
        else f"the best calibrated one, {best_eligible}, ranks worse by more than {auc_slack}",
    )
    return best_of_all, eligible


def git_commit(cwd: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` (suffixed ``-dirty`` with uncommitted changes), None without git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True,
            timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def _classifier_params(classifier: ClassifierMixin) -> dict[str, Any]:
    return {
        k: v
        for k, v in classifier.get_params(deep=False).items()
        if v is None or isinstance(v, str | int | float | bool)
    }


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}


def model_signature(example: pd.DataFrame, pipeline: Pipeline) -> ModelSignature:
    """Inputs: every :data:`FEATURE_COLUMNS` column (numerics double, categoricals string; nulls
    allowed in both). Output: ``predict_proba``'s two columns (inferred from ``example``)."""
    specs: list[ColSpec | TensorSpec] = [ColSpec(DataType.double, c) for c in NUMERIC]
    specs += [ColSpec(DataType.string, c) for c in CATEGORICAL]
    inputs = Schema(specs)
    inferred = infer_signature(example, pipeline.predict_proba(example))
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)


def model_requirements() -> list[str]:
    """The model's pip requirements, pinned to the training environment.

    Given explicitly: MLflow's inference of them reloads the model in a subprocess (~40 s here).
    The saved pipeline (skops) holds scikit-learn objects only, no Safra code.
    """
    return [
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"skops=={skops.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"scipy=={scipy.__version__}",
    ]


def compiled_figures(parity: compiled.Parity) -> dict[str, dict[str, Any]]:
    """The compiled model's parity as run metrics and version tags: ``compiled`` (``onnx`` or
    ``reference-only: <why>``), the largest absolute difference of probabilities, the rows
    compared and the decisions that differ."""
    figures = {
        "compiled_max_abs_diff": parity.max_abs_diff,
        "compiled_parity_rows": float(parity.rows),
        "compiled_decision_mismatches": float(parity.decision_mismatches),
    }
    tags = {compiled.COMPILED_TAG: parity.tag}
    tags.update({k: f"{v:.3g}" for k, v in figures.items()})
    return {"metrics": figures, "tags": tags}


def _log_figures(y: np.ndarray, prob: np.ndarray, deny_above: float) -> None:
    figures: dict[str, Callable[[], Any]] = {
        "plots/roc.png": lambda: evaluate.roc_figure(y, prob),
        "plots/calibration.png": lambda: evaluate.calibration_figure(y, prob),
        "plots/confusion_at_threshold.png": lambda: evaluate.confusion_figure(y, prob, deny_above),
    }
    for artifact, make in figures.items():
        mlflow.log_figure(make(), artifact)


CALIBRATION_ARTIFACT = "evaluation/calibration_curve.json"
"""The winner's (and every candidate's) calibration curve on the validation window: one row per
candidate and equal-frequency bin (:func:`ml.evaluate.calibration_table`)."""


def calibration_curves(selection: Selection) -> pd.DataFrame:
    """:func:`ml.evaluate.calibration_table` of every candidate on the validation window, with
    ``candidate`` and ``winner`` (bool) columns: the table :data:`CALIBRATION_ARTIFACT` holds."""
    tables = [
        evaluate.calibration_table(selection.y_valid, fit.valid_prob).assign(
            candidate=name, winner=name == selection.winner
        )
        for name, fit in selection.candidates.items()
    ]
    curves = pd.concat(tables, ignore_index=True)
    first = ["candidate", "winner"]
    return curves[first + [c for c in curves.columns if c not in first]]


def _reference_sample(selection: Selection, random_state: int, label_col: str) -> pd.DataFrame:
    """At most :data:`REFERENCE_SAMPLE_ROWS` training rows: model inputs, the label and the
    winner's ``prob_default`` (what :func:`ml.registry.log_reference_sample` keeps)."""
    x = selection.train_inputs
    n = min(REFERENCE_SAMPLE_ROWS, len(x))
    rows = np.random.default_rng(random_state).choice(len(x), size=n, replace=False)
    rows.sort()
    sample = x.iloc[rows].reset_index(drop=True)
    sample[label_col] = selection.y_train[rows]
    sample["prob_default"] = selection.best.pipeline.predict_proba(x.iloc[rows])[:, 1]
    return sample


def train_and_register(
    train_df: pd.DataFrame,
    valid_df: pd.DataFrame,
    label_col: str = LABEL,
    *,
    settings: Settings | None = None,
    model_name: str = MODEL_NAME,
    lineage: Mapping[str, str] | None = None,
    best_achievable_auc: float | None = None,
    register: bool = True,
    approve_below: float = evaluate.APPROVE_BELOW,
    deny_above: float = evaluate.DENY_ABOVE,
    candidates: Mapping[str, ClassifierMixin] | None = None,
    experiment_name: str = EXPERIMENT,
    random_state: int = 42,
    n_jobs: int = 1,
) -> TrainResult:
    """Train the candidates, log the run to MLflow, register the winner as ``challenger``.

    ``train_df`` / ``valid_df``: flat applications (+ history columns, + ``label_col``), valid
    being the later window (:func:`out_of_time_split`). ``lineage``: tags describing the data
    (Iceberg snapshot ids, feature service version...); ``git_commit`` is added when absent.
    ``best_achievable_auc``: the simulator's ceiling on ``valid_df``, logged with the fraction
    of it reached. ``approve_below`` / ``deny_above`` are the business thresholds (the settings'
    ``SAFRA_APPROVE_BELOW`` / ``SAFRA_DENY_ABOVE`` once they exist).

    ValueError before anything is trained or logged when ``register`` and no usable signing key
    is configured (``SAFRA_MODEL_SIGNING_KEY``): an unsigned version could never be loaded.
    """
    settings = settings or get_settings()
    if register:
        signing.signing_key(settings)  # fail early, naming the fix
    client = tracking_client(settings)
    selection = fit_candidates(
        train_df, valid_df, label_col, candidates=candidates, deny_above=deny_above,
        approve_below=approve_below, random_state=random_state, n_jobs=n_jobs,
    )  # fmt: skip
    best = selection.best
    winner_metrics = dict(best.metrics)
    if best_achievable_auc is not None:
        winner_metrics["best_achievable_auc"] = float(best_achievable_auc)
        winner_metrics["auc_fraction_of_best"] = best.metrics["roc_auc"] / best_achievable_auc
    segments = evaluate.segment_metrics(
        selection.valid_inputs, selection.y_valid, best.valid_prob, deny_above=deny_above
    )
    tags = {k: str(v) for k, v in (lineage or {}).items()}
    if "git_commit" not in tags:
        commit = git_commit()
        if commit:
            tags["git_commit"] = commit
    tags.update(
        {
            "model_name": model_name,
            "winner": selection.winner,
            "feature_set_version": FEATURE_SET_VERSION,
            "actor": actor(),
            "selection_calibration": (
                "within-bound" if selection.winner in selection.eligible else "outside-bound"
            ),
        }
    )

    with mlflow.start_run(
        experiment_id=experiment_id(client, experiment_name),
        run_name=f"{model_name}-{selection.winner}",
    ) as run:
        mlflow.set_tags(tags)
        params: dict[str, Any] = {
            "label_col": label_col,
            "train_rows": len(train_df),
            "valid_rows": len(valid_df),
            "train_default_rate": round(float(selection.y_train.mean()), 6),
            "valid_default_rate": round(float(selection.y_valid.mean()), 6),
            "approve_below": approve_below,
            "deny_above": deny_above,
            "selection_metric": f"valid_{SELECTION_METRIC}",
            "selection_max_ece": SELECTION_MAX_ECE,
            "ece_bins": evaluate.CALIBRATION_BINS,
            "winner": selection.winner,
            "n_features": len(FEATURE_COLUMNS),
            "candidates": ",".join(selection.candidates),
            "random_state": random_state,
        }
        if "data_solicitacao" in train_df.columns and "data_solicitacao" in valid_df.columns:
            params["train_until"] = str(train_df["data_solicitacao"].max())
            params["valid_from"] = str(valid_df["data_solicitacao"].min())
        for name, fit in selection.candidates.items():
            classifier = fit.pipeline.named_steps["classifier"]
            params[f"{name}.class"] = type(classifier).__name__
            params.update({f"{name}.{k}": v for k, v in _classifier_params(classifier).items()})
        mlflow.log_params(params)

        metric_values = {f"valid_{k}": v for k, v in winner_metrics.items()}
        for name, fit in selection.candidates.items():
            metric_values[metric_key("candidate", name, "valid_roc_auc")] = fit.metrics["roc_auc"]
            metric_values[metric_key("candidate", name, "valid_f1_at_threshold")] = fit.metrics[
                "f1_at_threshold"
            ]
            metric_values[metric_key("candidate", name, "valid_ece")] = fit.metrics["ece"]
            metric_values[metric_key("candidate", name, "fit_seconds")] = fit.fit_seconds
        for row in segments.itertuples(index=False):
            for metric in ("roc_auc", "f1_at_threshold", "n", "observed_rate", "mean_prob"):
                metric_values[metric_key("segment", row.segment, str(row.value), metric)] = float(
                    getattr(row, metric)
                )
        mlflow.log_metrics(_finite(metric_values))
        mlflow.log_table(segments, "evaluation/segment_metrics.json")
        mlflow.log_table(calibration_curves(selection), CALIBRATION_ARTIFACT)
        _log_figures(selection.y_valid, best.valid_prob, deny_above)
        log_reference_sample(_reference_sample(selection, random_state, label_col))

        example = selection.valid_inputs.head(5)
        onnx_model, parity = compiled.compile_with_parity(
            best.pipeline, selection.valid_inputs, approve_below, deny_above
        )
        compiled_tags = compiled_figures(parity)
        mlflow.set_tags({compiled.COMPILED_TAG: parity.tag})
        mlflow.log_metrics(_finite(compiled_tags["metrics"]))
        with tempfile.TemporaryDirectory(prefix="safra-onnx-") as tmp:
            extra_files = None
            if onnx_model is not None:
                onnx_path = Path(tmp) / compiled.ONNX_FILE
                onnx_path.write_bytes(onnx_model)
                extra_files = [str(onnx_path)]
            info = mlflow.sklearn.log_model(
                best.pipeline,
                name="model",
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                signature=model_signature(example, best.pipeline),
                input_example=example,
                pyfunc_predict_fn="predict_proba",
                pip_requirements=model_requirements(),
                extra_files=extra_files,
            )
        run_id = run.info.run_id
    logger.info(
        "run %s logged: %s, valid roc_auc %.4f, f1@%.2f %.4f",
        run_id,
        selection.winner,
        best.metrics["roc_auc"],
        deny_above,
        best.metrics["f1_at_threshold"],
    )

    version: str | None = None
    if register:
        registered = mlflow.register_model(
            info.model_uri,
            model_name,
            tags={
                "run_id": run_id,
                "winner": selection.winner,
                "valid_roc_auc": f"{best.metrics['roc_auc']:.6f}",
                "valid_f1_at_threshold": f"{best.metrics['f1_at_threshold']:.6f}",
                **tags,
                **compiled_tags["tags"],
            },
        )
        version = str(registered.version)
        sign_version(settings, client, model_name, version)
        record_challenger(
            settings, client, model_name, version,
            f"registered v{version} ({selection.winner}, valid roc_auc "
            f"{best.metrics['roc_auc']:.4f}, run {run_id}) as @{CHALLENGER}",
        )  # fmt: skip
        logger.info("registered and signed %s version %s as @%s", model_name, version, CHALLENGER)
    return TrainResult(
        run_id=run_id,
        model_uri=info.model_uri,
        winner=selection.winner,
        metrics=winner_metrics,
        candidate_aucs={n: f.metrics["roc_auc"] for n, f in selection.candidates.items()},
        model_name=model_name,
        version=version,
        candidate_eces={n: f.metrics["ece"] for n, f in selection.candidates.items()},
        segment_metrics=segments,
        pipeline=best.pipeline,
    )


# --- safra train ----------------------------------------------------------------------------


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
    candidate_eces: dict[str, float] = field(default_factory=dict)

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
    ceiling: Callable[[pd.DataFrame], float | None] | None = None,
) -> TrainReport:
    """Training set (Feast, point in time) → out-of-time split → candidates → MLflow run →
    registered version ``@challenger`` of ``settings.model_name``.

    ``ceiling``: the best achievable AUC on the validation rows (labelled training-set rows, with
    ``origem_dados``), logged beside the model's; None, or a ceiling returning None, logs none.
    """
    store = feature_store(settings)
    ts = build_training_set(store, settings, since, until)
    train, valid = _split(ts, valid_fraction, valid_days)
    for name, part in (("training", train), ("validation", valid)):
        if part[LABEL].nunique() < 2:
            raise ValueError(
                f"the {name} window ({len(part)} rows) holds one class only: more labelled "
                "data (outcomes) is needed, or a wider window"
            )
    best_auc = ceiling(valid) if ceiling is not None else None
    extra: dict[str, Any] = {}
    if experiment_name:
        extra["experiment_name"] = experiment_name
    if candidates is not None:
        extra["candidates"] = candidates
    began = time.perf_counter()
    result = train_and_register(
        train, valid, settings=settings, model_name=settings.model_name, lineage=ts.lineage,
        best_achievable_auc=best_auc, approve_below=settings.approve_below,
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
        candidate_eces=result.candidate_eces,
        train_rows=len(train),
        valid_rows=len(valid),
        valid_from=str(valid["data_solicitacao"].min()),
        scenarios=ts.scenarios,
        best_achievable_auc=best_auc,
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
