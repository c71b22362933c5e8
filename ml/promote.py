"""Promotion: challenger against champion on the same holdout; rollback; the promotion log.

The rules (validation thresholds as code; ``dry_run`` decides without moving anything):

- both models are scored on the SAME holdout (labelled applications, typically the latest
  window), through :func:`ml.features.model_inputs`;
- absolute guardrails, for every challenger (also the very first): calibration gap
  |mean probability − observed default rate| ≤ ``calibration_bound``; every segment (region,
  person type, crop) with at least ``min_segment_rows`` rows and ``min_segment_positives``
  defaults has a ROC-AUC ≥ ``segment_floor`` (smaller segments are too noisy to judge and are
  listed as not judged);
- with no champion, a challenger that keeps the guardrails becomes champion;
- otherwise it is promoted only if its F1 at the business threshold ≥ champion's + ``margin`` and
  its ROC-AUC is not lower than the champion's;
- on promotion ``previous-champion`` ← the old champion, ``champion`` ← the challenger.

Every decision (promoted or refused, with both models' scores, the reasons, who and when) is
recorded twice: as ``promotion.*`` tags on the challenger's model version, and as one run in the
MLflow experiment :data:`PROMOTION_EXPERIMENT` (the registry keeps no alias history: this run
list is the history; read it with :func:`promotion_log`). Dry runs record nothing.

:func:`run_promote` / :func:`run_rollback` are the stages behind ``safra promote`` / ``safra
rollback``: the settings' thresholds and margin, on a holdout neither model trained on
(:func:`promotion_holdout`); each returns a :class:`PromoteReport` (``as_dict()`` for ``--json``;
the CLI only prints).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from ml import evaluate
from ml.feature_store import feature_store
from ml.features import model_inputs
from ml.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    PREVIOUS_CHAMPION,
    actor,
    experiment_id,
    load_version,
    predict_default_probability,
    tracking_client,
    version_by_alias,
    version_run_id,
)
from ml.train import DEFAULT_VALID_FRACTION, labels, out_of_time_split
from ml.training_set import LABEL, build_training_set
from safra.settings import Settings

logger = logging.getLogger(__name__)

PROMOTION_EXPERIMENT = "safra-promotions"
PROMOTED = "promoted"
FIRST_CHAMPION = "first-champion"
REFUSED = "refused"
ROLLED_BACK = "rolled-back"
COMPARED_METRICS = ("f1_at_threshold", "roc_auc", "pr_auc", "brier", "ks", "calibration_gap")
_TAG_LIMIT = 5000

LOG_COLUMNS = [
    "decided_at",
    "action",
    "promoted",
    "model_name",
    "challenger_version",
    "champion_version_before",
    "champion_version_after",
    "previous_champion_version",
    "challenger_f1_at_threshold",
    "champion_f1_at_threshold",
    "challenger_roc_auc",
    "champion_roc_auc",
    "challenger_calibration_gap",
    "reason",
    "actor",
    "holdout_rows",
    "holdout_fingerprint",
    "run_id",
]


@dataclass
class PromotionDecision:
    """One promotion decision or rollback, as recorded."""

    action: str
    """``promoted``, ``first-champion``, ``refused`` or ``rolled-back``."""
    model_name: str
    challenger_version: str | None
    champion_version_before: str | None
    champion_version_after: str | None
    previous_champion_version: str | None
    reasons: list[str]
    actor: str
    decided_at: str
    """UTC, ISO 8601 with microseconds."""
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    holdout_rows: int = 0
    holdout_fingerprint: str = ""
    dry_run: bool = False
    log_run_id: str | None = None
    """The run of this decision in :data:`PROMOTION_EXPERIMENT` (None for a dry run)."""

    @property
    def promoted(self) -> bool:
        """True when the champion alias moved (promotion, first champion or rollback)."""
        return self.action in (PROMOTED, FIRST_CHAMPION, ROLLED_BACK)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def holdout_fingerprint(holdout: pd.DataFrame) -> str:
    """A short content hash of the holdout, so the log shows both models met the same rows."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(holdout, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _score(
    model_name: str, version: str, inputs: pd.DataFrame, y: np.ndarray, deny_above: float,
    approve_below: float,
) -> tuple[dict[str, float], pd.DataFrame]:  # fmt: skip
    prob = predict_default_probability(load_version(model_name, version), inputs)
    scores = evaluate.metrics(y, prob, deny_above=deny_above, approve_below=approve_below)
    return scores, evaluate.segment_metrics(inputs, y, prob, deny_above=deny_above)


def _guardrail_breaks(
    scores: dict[str, float],
    segments: pd.DataFrame,
    calibration_bound: float,
    segment_floor: float,
    min_segment_rows: int,
    min_segment_positives: int,
) -> tuple[list[str], list[str]]:
    """(breaks, notes): the absolute guardrails the model breaks; what was not judged."""
    breaks: list[str] = []
    if not scores["calibration_gap"] <= calibration_bound:
        breaks.append(
            f"calibration gap {scores['calibration_gap']:.4f} (mean prob "
            f"{scores['mean_prob']:.4f} vs observed {scores['observed_rate']:.4f}) > bound "
            f"{calibration_bound:.4f}"
        )
    judged = (
        (segments["n"] >= min_segment_rows)
        & (segments["positives"] >= min_segment_positives)
        & (segments["n"] - segments["positives"] >= min_segment_positives)
    )
    for row in segments[judged].itertuples(index=False):
        if not row.roc_auc >= segment_floor:
            breaks.append(
                f"segment {row.segment}={row.value} roc_auc {row.roc_auc:.4f} < floor "
                f"{segment_floor:.2f} (n={row.n})"
            )
    skipped = segments[~judged]
    notes = (
        [f"{len(skipped)} small segments not judged: " + ", ".join(
            f"{r.segment}={r.value}" for r in skipped.itertuples(index=False)
        )]
        if len(skipped)
        else []
    )  # fmt: skip
    return breaks, notes


def promote_if_better(
    settings: Settings,
    model_name: str = MODEL_NAME,
    holdout: pd.DataFrame | None = None,
    margin: float = 0.01,
    calibration_bound: float = 0.05,
    segment_floor: float = 0.6,
    dry_run: bool = False,
    *,
    label_col: str = LABEL,
    approve_below: float = evaluate.APPROVE_BELOW,
    deny_above: float = evaluate.DENY_ABOVE,
    min_segment_rows: int = 200,
    min_segment_positives: int = 20,
) -> PromotionDecision:
    """Compare ``@challenger`` with ``@champion`` on ``holdout``; move the aliases if it wins.

    See the module docstring for the rules. ValueError when there is no challenger or no
    holdout. ``approve_below`` / ``deny_above``: the business thresholds (F1 is taken at
    ``deny_above``).
    """
    if holdout is None or holdout.empty:
        raise ValueError("promotion needs a labelled holdout")
    client = tracking_client(settings)
    challenger = version_by_alias(client, model_name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{model_name} has no @{CHALLENGER}: train one first")
    champion = version_by_alias(client, model_name, CHAMPION)
    previous = version_by_alias(client, model_name, PREVIOUS_CHAMPION)
    inputs, y = model_inputs(holdout), labels(holdout, label_col)
    fingerprint = holdout_fingerprint(holdout)

    ch_scores, ch_segments = _score(model_name, challenger, inputs, y, deny_above, approve_below)
    breaks, notes = _guardrail_breaks(
        ch_scores, ch_segments, calibration_bound, segment_floor, min_segment_rows,
        min_segment_positives,
    )  # fmt: skip
    champ_scores: dict[str, float] = {}
    if champion == challenger:
        action, reasons = REFUSED, [f"challenger version {challenger} is already the champion"]
    elif champion is None:
        action = REFUSED if breaks else FIRST_CHAMPION
        reasons = breaks or [
            f"no champion yet; challenger keeps the guardrails (f1_at_threshold "
            f"{ch_scores['f1_at_threshold']:.4f}, roc_auc {ch_scores['roc_auc']:.4f})"
        ]
    else:
        champ_scores, _ = _score(model_name, champion, inputs, y, deny_above, approve_below)
        needed = champ_scores["f1_at_threshold"] + margin
        relative: list[str] = []
        if not ch_scores["f1_at_threshold"] >= needed:
            relative.append(
                f"f1_at_threshold {ch_scores['f1_at_threshold']:.4f} < champion "
                f"{champ_scores['f1_at_threshold']:.4f} + margin {margin:.4f}"
            )
        if not ch_scores["roc_auc"] >= champ_scores["roc_auc"]:
            relative.append(
                f"roc_auc {ch_scores['roc_auc']:.4f} < champion {champ_scores['roc_auc']:.4f}"
            )
        breaks = relative + breaks
        action = REFUSED if breaks else PROMOTED
        reasons = breaks or [
            f"f1_at_threshold {ch_scores['f1_at_threshold']:.4f} >= champion "
            f"{champ_scores['f1_at_threshold']:.4f} + margin {margin:.4f}; roc_auc "
            f"{ch_scores['roc_auc']:.4f} >= {champ_scores['roc_auc']:.4f}; guardrails hold"
        ]
    moves = action in (PROMOTED, FIRST_CHAMPION)
    decision = PromotionDecision(
        action=action,
        model_name=model_name,
        challenger_version=challenger,
        champion_version_before=champion,
        champion_version_after=challenger if moves else champion,
        previous_champion_version=(champion if action == PROMOTED else previous),
        reasons=reasons + notes,
        actor=actor(),
        decided_at=_now(),
        challenger_metrics=ch_scores,
        champion_metrics=champ_scores,
        holdout_rows=len(holdout),
        holdout_fingerprint=fingerprint,
        dry_run=dry_run,
    )
    logger.info(
        "%s%s v%s vs champion v%s: %s — %s",
        "[dry run] " if dry_run else "",
        model_name,
        challenger,
        champion,
        action,
        decision.reason,
    )
    if dry_run:
        return decision
    if moves:
        if champion is not None:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, champion)
        client.set_registered_model_alias(model_name, CHAMPION, challenger)
        client.set_model_version_tag(model_name, challenger, "champion_since", decision.decided_at)
    _record(client, decision, tag_version=challenger, params={
        "margin": margin, "calibration_bound": calibration_bound, "segment_floor": segment_floor,
        "min_segment_rows": min_segment_rows, "min_segment_positives": min_segment_positives,
        "approve_below": approve_below, "deny_above": deny_above,
    })  # fmt: skip
    return decision


def rollback(settings: Settings, model_name: str = MODEL_NAME) -> PromotionDecision:
    """``champion`` ← ``previous-champion`` in one call, recorded like a promotion.

    The ``previous-champion`` alias is removed afterwards (a second rollback fails clearly rather
    than flipping back to the model just withdrawn); the log keeps the whole history.
    ValueError when there is no previous champion.
    """
    client = tracking_client(settings)
    previous = version_by_alias(client, model_name, PREVIOUS_CHAMPION)
    if previous is None:
        raise ValueError(
            f"{model_name} has no @{PREVIOUS_CHAMPION}: nothing to roll back to "
            "(no promotion since the first champion, or already rolled back)"
        )
    champion = version_by_alias(client, model_name, CHAMPION)
    decision = PromotionDecision(  # challenger_version: the version withdrawn
        action=ROLLED_BACK,
        model_name=model_name,
        challenger_version=champion,
        champion_version_before=champion,
        champion_version_after=previous,
        previous_champion_version=None,
        reasons=[f"rollback: champion v{champion} withdrawn, v{previous} restored"],
        actor=actor(),
        decided_at=_now(),
    )
    client.set_registered_model_alias(model_name, CHAMPION, previous)
    client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
    client.set_model_version_tag(model_name, previous, "champion_since", decision.decided_at)
    logger.info("%s: %s (by %s)", model_name, decision.reason, decision.actor)
    _record(client, decision, tag_version=champion, params={})
    return decision


def _record(
    client: MlflowClient,
    decision: PromotionDecision,
    tag_version: str | None,
    params: dict[str, Any],
) -> None:
    """Tags on the model version + one run in the promotion experiment; sets ``log_run_id``."""
    tags = {
        "model_name": decision.model_name,
        "action": decision.action,
        "promoted": str(decision.promoted).lower(),
        "reason": decision.reason[:_TAG_LIMIT],
        "actor": decision.actor,
        "decided_at": decision.decided_at,
        "challenger_version": decision.challenger_version or "",
        "champion_version_before": decision.champion_version_before or "",
        "champion_version_after": decision.champion_version_after or "",
        "previous_champion_version": decision.previous_champion_version or "",
        "holdout_fingerprint": decision.holdout_fingerprint,
    }
    metrics = {f"challenger.{k}": v for k, v in decision.challenger_metrics.items()}
    metrics.update({f"champion.{k}": v for k, v in decision.champion_metrics.items()})
    metrics["holdout_rows"] = float(decision.holdout_rows)
    metrics["promoted"] = float(decision.promoted)
    run_name = f"{decision.model_name}-v{decision.challenger_version}-{decision.action}"
    with mlflow.start_run(
        experiment_id=experiment_id(client, PROMOTION_EXPERIMENT), run_name=run_name
    ) as run:
        mlflow.set_tags(tags)
        if params:
            mlflow.log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        decision.log_run_id = run.info.run_id
    if tag_version is not None:
        version_tags = {f"promotion.{k}": v for k, v in tags.items() if k != "model_name"}
        version_tags["promotion.log_run_id"] = decision.log_run_id
        for key in COMPARED_METRICS:
            for side, scores in (
                ("challenger", decision.challenger_metrics),
                ("champion", decision.champion_metrics),
            ):
                if key in scores:
                    version_tags[f"promotion.{side}_{key}"] = f"{scores[key]:.6f}"
        for key, value in version_tags.items():
            client.set_model_version_tag(decision.model_name, tag_version, key, value)


def promotion_log(settings: Settings, model_name: str = MODEL_NAME) -> pd.DataFrame:
    """Every recorded decision about ``model_name``, oldest first (:data:`LOG_COLUMNS`)."""
    client = tracking_client(settings)
    experiment = client.get_experiment_by_name(PROMOTION_EXPERIMENT)
    if experiment is None:
        return pd.DataFrame(columns=LOG_COLUMNS)
    quoted = model_name.replace("\\", "\\\\").replace("'", "\\'")
    runs = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.model_name = '{quoted}'",
        output_format="list",
    )
    rows = []
    for run in runs:
        tags, m = run.data.tags, run.data.metrics
        rows.append(
            {
                "decided_at": tags.get("decided_at"),
                "action": tags.get("action"),
                "promoted": tags.get("promoted") == "true",
                "model_name": tags.get("model_name"),
                "challenger_version": tags.get("challenger_version") or None,
                "champion_version_before": tags.get("champion_version_before") or None,
                "champion_version_after": tags.get("champion_version_after") or None,
                "previous_champion_version": tags.get("previous_champion_version") or None,
                "challenger_f1_at_threshold": m.get("challenger.f1_at_threshold"),
                "champion_f1_at_threshold": m.get("champion.f1_at_threshold"),
                "challenger_roc_auc": m.get("challenger.roc_auc"),
                "champion_roc_auc": m.get("champion.roc_auc"),
                "challenger_calibration_gap": m.get("challenger.calibration_gap"),
                "reason": tags.get("reason"),
                "actor": tags.get("actor"),
                "holdout_rows": int(m.get("holdout_rows", 0)),
                "holdout_fingerprint": tags.get("holdout_fingerprint") or None,
                "run_id": run.info.run_id,
            }
        )
    frame = pd.DataFrame(rows, columns=LOG_COLUMNS)
    return frame.sort_values("decided_at", kind="stable").reset_index(drop=True)


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
    run_id = version_run_id(client, settings.model_name, version)
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
    current Feast training set); aliases move only when the challenger wins
    (:func:`promote_if_better`). ValueError when there is no challenger or no holdout."""
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
