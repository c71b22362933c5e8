"""The alias history: every change of ``@champion``, ``@challenger`` and ``@previous-champion``,
whoever made it, as runs of the MLflow experiment :data:`PROMOTION_EXPERIMENT`.

MLflow keeps no alias history (mlflow#2169), so Safra does. Every record is one run, tagged with
the model name, the action, who and when, the reasons and the whole alias state before and after
(``alias.before.<alias>`` / ``alias.after.<alias>``):

- ``trained`` — :mod:`ml.train` registered a new ``@challenger``;
- ``first-champion`` / ``promoted`` / ``refused`` — :mod:`ml.promote`'s decisions, with both
  models' scores and the paired comparison;
- ``rolled-back`` — :func:`ml.promote.rollback`;
- ``manual-change`` — a change nobody recorded (a person in the MLflow UI, a script):
  :func:`unrecorded_change` finds it by comparing the registry with the newest record;
  :func:`ml.promote.reconcile` records it with the new champion's guardrail verdict.

A decision that moves aliases is written ``pending`` first (with its plan), the aliases move,
then it becomes ``final`` (:mod:`ml.promote`); a record left ``pending`` by a killed run is
completed or ``reverted`` by the next promotion. The registered model's tag
:data:`RECORDED_CHAMPION` names the champion the newest record left: the API compares it with the
alias it follows to see an unrecorded change within one poll.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException

from ml.registry import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, actor, experiment_id
from safra import locks
from safra.settings import Settings

logger = logging.getLogger(__name__)

PROMOTION_EXPERIMENT = "safra-promotions"
ALIASES: tuple[str, ...] = (PREVIOUS_CHAMPION, CHAMPION, CHALLENGER)
"""The aliases on record, in the order a plan moves them."""
RECORDED_CHAMPION = "safra.recorded_champion"
"""Registered-model tag: the ``@champion`` version the newest record left."""
RECORDED_GUARDRAILS = "safra.recorded_champion_guardrails"
"""Registered-model tag: that champion's guardrail verdict (``hold`` / ``breach: …``)."""

TRAINED = "trained"
FIRST_CHAMPION = "first-champion"
PROMOTED = "promoted"
REFUSED = "refused"
ROLLED_BACK = "rolled-back"
MANUAL = "manual-change"

PENDING = "pending"
FINAL = "final"
REVERTED = "reverted"
ABANDONED = "abandoned"
_TAG_LIMIT = 5000
LOCK_WAIT_S = 120.0

Aliases = dict[str, str | None]

LOG_COLUMNS = [
    "decided_at",
    "action",
    "status",
    "promoted",
    "model_name",
    "challenger_version",
    "champion_version_before",
    "champion_version_after",
    "previous_champion_version",
    "challenger_f1_at_threshold",
    "champion_f1_at_threshold",
    "f1_gain",
    "f1_gain_low",
    "f1_gain_high",
    "challenger_roc_auc",
    "champion_roc_auc",
    "auc_gain_low",
    "auc_gain_high",
    "challenger_calibration_gap",
    "guardrails",
    "reason",
    "actor",
    "holdout_rows",
    "holdout_fingerprint",
    "run_id",
]


@dataclass
class PromotionDecision:
    """One record of the alias history: a decision, a rollback, a training, a manual change."""

    action: str
    model_name: str
    challenger_version: str | None
    champion_version_before: str | None
    champion_version_after: str | None
    previous_champion_version: str | None
    reasons: list[str]
    actor: str
    decided_at: str
    """UTC, ISO 8601 with microseconds."""
    aliases_before: Aliases = field(default_factory=dict)
    aliases_after: Aliases = field(default_factory=dict)
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)
    """:meth:`ml.comparison.PairedComparison.as_dict` (empty without a champion)."""
    rule: str = ""
    basis: str | None = None
    guardrails: str = ""
    """``hold`` / ``breach`` / ``not-evaluated: <why>`` (manual changes and first champions)."""
    holdout_rows: int = 0
    holdout_fingerprint: str = ""
    holdout_from: str | None = None
    dry_run: bool = False
    status: str = FINAL
    log_run_id: str | None = None
    """The run of this record in :data:`PROMOTION_EXPERIMENT` (None for a dry run)."""

    @property
    def promoted(self) -> bool:
        """True when the champion alias moved."""
        return self.champion_version_after != self.champion_version_before

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``--json``): every field, ``promoted``; NaN metrics as None."""
        out = asdict(self)
        out["promoted"] = self.promoted
        for key in ("challenger_metrics", "champion_metrics"):
            out[key] = {k: (v if np.isfinite(v) else None) for k, v in out[key].items()}
        return out


@contextlib.contextmanager
def promotion_lock(
    settings: Settings, model_name: str, wait_s: float = LOCK_WAIT_S
) -> Iterator[None]:
    """One alias move of ``model_name`` at a time on this machine (a promotion, a rollback, a
    training registering its challenger): :func:`safra.locks.exclusive`."""
    path = settings.data_dir / "locks" / f"promotion-{model_name}.lock"
    with locks.exclusive(path, f"another promotion or rollback of {model_name}", wait_s):
        yield


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def alias_state(client: MlflowClient, model_name: str) -> Aliases:
    """The three aliases of ``model_name`` now, from one registry read (None: not set)."""
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return dict.fromkeys(ALIASES)
        raise
    found = {str(k): str(v) for k, v in (registered.aliases or {}).items()}
    return {alias: found.get(alias) for alias in ALIASES}


def set_aliases(client: MlflowClient, model_name: str, target: Aliases, step: Any = None) -> None:
    """Move each alias of ``target`` that differs from the registry now (None: delete it), in
    :data:`ALIASES` order; ``step(name)`` is called after each write (failure injection)."""
    current = alias_state(client, model_name)
    for alias in ALIASES:
        if alias not in target or current[alias] == target[alias]:
            continue
        version = target[alias]
        if version is None:
            client.delete_registered_model_alias(model_name, alias)
        else:
            client.set_registered_model_alias(model_name, alias, version)
        if step is not None:
            step(f"alias:{alias}")


def _finite(values: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if np.isfinite(value):
            out[key] = float(value)
    return out


def write_record(
    client: MlflowClient,
    decision: PromotionDecision,
    params: dict[str, Any] | None = None,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Write ``decision`` as a run of :data:`PROMOTION_EXPERIMENT` (left RUNNING while
    ``pending``); sets and returns ``decision.log_run_id``."""
    tags = {
        "model_name": decision.model_name,
        "action": decision.action,
        "status": decision.status,
        "promoted": str(decision.promoted).lower(),
        "reason": decision.reason[:_TAG_LIMIT],
        "actor": decision.actor,
        "decided_at": decision.decided_at,
        "challenger_version": decision.challenger_version or "",
        "champion_version_before": decision.champion_version_before or "",
        "champion_version_after": decision.champion_version_after or "",
        "previous_champion_version": decision.previous_champion_version or "",
        "holdout_fingerprint": decision.holdout_fingerprint,
        "rule": decision.rule[:_TAG_LIMIT],
        "basis": decision.basis or "",
        "guardrails": decision.guardrails[:_TAG_LIMIT],
        **{f"alias.before.{a}": v or "" for a, v in decision.aliases_before.items()},
        **{f"alias.after.{a}": v or "" for a, v in decision.aliases_after.items()},
        **(extra_tags or {}),
    }
    metrics = {f"challenger.{k}": v for k, v in decision.challenger_metrics.items()}
    metrics.update({f"champion.{k}": v for k, v in decision.champion_metrics.items()})
    for key, value in decision.comparison.items():
        if isinstance(value, dict):  # an interval
            metrics.update({f"{key}.{part}": v for part, v in value.items()})
        else:
            metrics[key] = value
    metrics["holdout_rows"] = decision.holdout_rows
    metrics["promoted"] = float(decision.promoted)
    run = client.create_run(
        experiment_id(client, PROMOTION_EXPERIMENT),
        run_name=f"{decision.model_name}-{decision.action}-v{decision.challenger_version}",
        tags={"mlflow.user": decision.actor},
    )
    stamp = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, stamp, 0) for k, v in _finite(metrics).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in tags.items()],
    )
    if decision.status != PENDING:
        client.set_terminated(run.info.run_id, "FINISHED")
    decision.log_run_id = run.info.run_id
    return run.info.run_id


def set_status(client: MlflowClient, run_id: str, status: str, note: str | None = None) -> None:
    """Move a record to ``status`` (with a ``status_note``) and end its run."""
    client.set_tag(run_id, "status", status)
    if note:
        client.set_tag(run_id, "status_note", note[:_TAG_LIMIT])
    client.set_terminated(run_id, "FINISHED" if status == FINAL else "KILLED")


def record_runs(client: MlflowClient, model_name: str, status: str | None = None) -> list[Run]:
    """The records of ``model_name`` (only those in ``status`` when given), oldest first."""
    experiment = client.get_experiment_by_name(PROMOTION_EXPERIMENT)
    if experiment is None:
        return []
    quoted = model_name.replace("\\", "\\\\").replace("'", "\\'")
    query = f"tags.model_name = '{quoted}'"
    if status:
        query += f" and tags.status = '{status}'"
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment.experiment_id], query, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    return sorted(runs, key=lambda r: r.data.tags.get("decided_at", ""))


def _aliases_of(run: Run, side: str) -> Aliases:
    tags = run.data.tags
    return {a: tags.get(f"alias.{side}.{a}") or None for a in ALIASES}


def recorded_state(client: MlflowClient, model_name: str) -> Aliases | None:
    """The alias state the records account for (the newest final record's ``after``; a reverted
    one's ``before``), None when nothing is on record."""
    for run in reversed(record_runs(client, model_name)):
        status = run.data.tags.get("status", FINAL)
        if status == FINAL:
            return _aliases_of(run, "after")
        if status == REVERTED:
            return _aliases_of(run, "before")
    return None


def unrecorded_change(client: MlflowClient, model_name: str) -> tuple[Aliases, Aliases] | None:
    """(recorded, now) when the registry's aliases differ from what the records account for;
    None when they agree (or when nothing is recorded and no alias is set)."""
    current = alias_state(client, model_name)
    recorded = recorded_state(client, model_name)
    if recorded is None:
        recorded = dict.fromkeys(ALIASES)
    return None if recorded == current else (recorded, current)


def plan_of(run: Run) -> dict[str, Any]:
    """The plan a pending record carries (aliases before/after, tags to write)."""
    return json.loads(run.data.tags.get("plan", "{}"))


def promotion_log(client: MlflowClient, model_name: str) -> pd.DataFrame:
    """Every record about ``model_name``, oldest first (:data:`LOG_COLUMNS`)."""
    rows = []
    for run in record_runs(client, model_name):
        tags, m = run.data.tags, run.data.metrics
        rows.append(
            {
                "decided_at": tags.get("decided_at"),
                "action": tags.get("action"),
                "status": tags.get("status", FINAL),
                "promoted": tags.get("promoted") == "true",
                "model_name": tags.get("model_name"),
                "challenger_version": tags.get("challenger_version") or None,
                "champion_version_before": tags.get("champion_version_before") or None,
                "champion_version_after": tags.get("champion_version_after") or None,
                "previous_champion_version": tags.get("previous_champion_version") or None,
                "challenger_f1_at_threshold": m.get("challenger.f1_at_threshold"),
                "champion_f1_at_threshold": m.get("champion.f1_at_threshold"),
                "f1_gain": m.get("f1_gain.estimate"),
                "f1_gain_low": m.get("f1_gain.low"),
                "f1_gain_high": m.get("f1_gain.high"),
                "challenger_roc_auc": m.get("challenger.roc_auc"),
                "champion_roc_auc": m.get("champion.roc_auc"),
                "auc_gain_low": m.get("auc_gain.low"),
                "auc_gain_high": m.get("auc_gain.high"),
                "challenger_calibration_gap": m.get("challenger.calibration_gap"),
                "guardrails": tags.get("guardrails") or None,
                "reason": tags.get("reason"),
                "actor": tags.get("actor"),
                "holdout_rows": int(m.get("holdout_rows", 0)),
                "holdout_fingerprint": tags.get("holdout_fingerprint") or None,
                "run_id": run.info.run_id,
            }
        )
    return pd.DataFrame(rows, columns=LOG_COLUMNS)


def champion_timeline(log: pd.DataFrame) -> pd.DataFrame:
    """From a :func:`promotion_log`: one row per champion the records show, oldest first —
    version, since, how it got there (action), evidence (reason), guardrails, who, record."""
    moved = log[
        (log["status"] == FINAL)
        & (log["champion_version_after"].fillna("") != log["champion_version_before"].fillna(""))
    ]
    return pd.DataFrame(
        {
            "version": moved["champion_version_after"],
            "since": moved["decided_at"],
            "how": moved["action"],
            "evidence": moved["reason"],
            "guardrails": moved["guardrails"],
            "who": moved["actor"],
            "record": moved["run_id"],
        }
    ).reset_index(drop=True)


def record_challenger(
    settings: Settings, client: MlflowClient, model_name: str, version: str, reason: str
) -> PromotionDecision:
    """Point ``@challenger`` at ``version`` (a training registered it) and record it."""
    with promotion_lock(settings, model_name):
        before = alias_state(client, model_name)
        client.set_registered_model_alias(model_name, CHALLENGER, version)
        decision = PromotionDecision(
            action=TRAINED,
            model_name=model_name,
            challenger_version=version,
            champion_version_before=before[CHAMPION],
            champion_version_after=before[CHAMPION],
            previous_champion_version=before[PREVIOUS_CHAMPION],
            reasons=[reason],
            actor=actor(),
            decided_at=now(),
            aliases_before=before,
            aliases_after={**before, CHALLENGER: version},
        )
        write_record(client, decision)
        return decision
