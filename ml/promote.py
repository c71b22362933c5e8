"""Promotion: challenger against champion on the same holdout, with statistics; rollback; the
alias audit. One at a time, atomic, every step on record.

**The decision** (:func:`promote_if_better`): both models score the same holdout rows (looked
up once with the aliases, pinned by a fingerprint, trained on by neither); the rule of
:mod:`ml.promotion_rule` judges the paired comparison of :mod:`ml.comparison` (a paired bootstrap
of the F1 gain at the business threshold, DeLong for the AUC, the guardrails of both). With no
champion, a challenger that keeps the guardrails becomes the first one. A version that a
rollback withdrew is refused unless the caller gives a reason to promote it anyway (recorded).
``dry_run`` decides and records nothing.

**One at a time, atomic** (:func:`promotion_lock`, :func:`_move`): a promotion or rollback holds
a per-model ``flock`` (released by the kernel if its holder is killed). A move is written as a
``pending`` record with its plan first; then the aliases move if nobody moved them meanwhile;
then the tags; then the record becomes ``final``. A run killed or failed between two steps leaves
its ``pending`` record: the next promotion or rollback (:func:`recover`) completes it when
``@champion`` already moved (the API may already serve it), else reverts the aliases it had
moved, and says so.

**Rollback retires** (:func:`rollback`): ``@champion`` ← ``@previous-champion``; the withdrawn
version is tagged :data:`WITHDRAWN` with the reason; ``@challenger`` is cleared if it names it.

**The alias audit** (:func:`reconcile`): an alias change nobody recorded (the MLflow UI, a
script) is recorded as ``manual-change``, and a new champion is judged against the guardrails on
the holdout after the fact (``guardrails``: ``hold`` / ``breach: …``), also tagged on the version
(:data:`AUDIT_TAG`) for the API's ``/metrics``.

The records are runs of ``safra-promotions`` (:mod:`ml.alias_history`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from ml.alias_history import (
    ABANDONED,
    FINAL,
    FIRST_CHAMPION,
    LOCK_WAIT_S,
    MANUAL,
    PENDING,
    PROMOTED,
    RECORDED_CHAMPION,
    RECORDED_GUARDRAILS,
    REFUSED,
    REVERTED,
    ROLLED_BACK,
    Aliases,
    PromotionDecision,
    alias_state,
    champion_timeline,
    now,
    plan_of,
    promotion_lock,
    promotion_log,
    record_runs,
    set_aliases,
    set_status,
    unrecorded_change,
    write_record,
)
from ml.comparison import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    smallest_detectable_f1_gain,
)
from ml.feature_store import feature_store
from ml.features import model_inputs
from ml.promotion_rule import Guardrails, judge_one, judge_pair, rule_text
from ml.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    actor,
    load_version,
    predict_default_probability,
    tracking_client,
    version_run_id,
)
from ml.train import DEFAULT_VALID_FRACTION, labels, out_of_time_split
from ml.training_set import LABEL, build_training_set
from safra import locks
from safra.settings import Settings

logger = logging.getLogger(__name__)

WITHDRAWN = "safra.withdrawn"
"""Version tag set by a rollback (with ``safra.withdrawn_reason`` / ``_at`` / ``_by``)."""
AUDIT_TAG = "safra.guardrails"
"""Version tag: the guardrail verdict of a champion that came by a manual change."""
COMPARED_METRICS = ("f1_at_threshold", "roc_auc", "pr_auc", "brier", "ks", "calibration_gap")
UNKNOWN_AUTHOR = "unknown (MLflow records no author of an alias change)"

PromotionBusy = locks.Busy


class PromotionConflict(RuntimeError):
    """The aliases changed between the decision and the move; nothing moved."""


def _after_step(step: str) -> None:
    """Called after each step of a move (``pending``, ``alias:<name>``, ``tags``): where the
    tests inject a failure or a kill."""


def ensure_reachable(settings: Settings, timeout_s: float = 5.0) -> None:
    """ConnectionError naming the MLflow server when its ``/health`` does not answer: a
    promotion against a registry that is down fails at once, before anything is read or moved
    (the client itself would retry for minutes)."""
    url = settings.mlflow_tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our URL
            response.read()
    except (OSError, urllib.error.URLError) as exc:
        raise ConnectionError(
            f"the MLflow server at {settings.mlflow_tracking_uri} does not answer ({exc}); "
            "nothing was changed (is the stack up? `safra stack status`)"
        ) from exc


def holdout_fingerprint(holdout: pd.DataFrame) -> str:
    """A short content hash of the holdout, so the log shows both models met the same rows."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(holdout, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _probabilities(
    settings: Settings, model_name: str, version: str, inputs: pd.DataFrame
) -> np.ndarray:
    """The default probabilities of a version (loaded only once its signature verified)."""
    return predict_default_probability(load_version(settings, model_name, version), inputs)


# --- moving aliases: pending → aliases → tags → final ------------------------------------------


def _apply(client: MlflowClient, model_name: str, plan: dict[str, Any], run_id: str) -> None:
    set_aliases(client, model_name, plan["after"], step=_after_step)
    for version, tags in plan["version_tags"].items():
        for key, value in {**tags, "promotion.log_run_id": run_id}.items():
            client.set_model_version_tag(model_name, version, key, value)
    for key, value in plan["model_tags"].items():
        client.set_registered_model_tag(model_name, key, value)
    _after_step("tags")


def _move(
    client: MlflowClient,
    decision: PromotionDecision,
    params: dict[str, Any],
    version_tags: dict[str, dict[str, str]],
) -> None:
    """Write ``decision`` pending with its plan, move the aliases, tag, finalize."""
    model_name = decision.model_name
    plan = {
        "before": decision.aliases_before,
        "after": decision.aliases_after,
        "version_tags": version_tags,
        "model_tags": {
            RECORDED_CHAMPION: decision.aliases_after[CHAMPION] or "",
            RECORDED_GUARDRAILS: decision.guardrails[:5000],
        },
    }
    decision.status = PENDING
    run_id = write_record(client, decision, params, {"plan": json.dumps(plan)})
    _after_step("pending")
    current = alias_state(client, model_name)
    if current != decision.aliases_before:
        note = (
            f"the aliases changed between the decision and the move: {decision.aliases_before}"
            f" -> {current}; nothing moved"
        )
        set_status(client, run_id, ABANDONED, note)
        decision.status = ABANDONED
        raise PromotionConflict(f"{model_name}: {note}; run the command again")
    _apply(client, model_name, plan, run_id)
    set_status(client, run_id, FINAL)
    decision.status = FINAL


def recover(client: MlflowClient, model_name: str) -> list[str]:
    """Complete or revert every ``pending`` record of ``model_name`` (a run killed or failed
    mid-move); what was done, one line each (also logged)."""
    notes = []
    for run in record_runs(client, model_name, PENDING):
        tags, run_id = run.data.tags, run.info.run_id
        plan = plan_of(run)
        what = f"the pending {tags.get('action')} of {tags.get('decided_at')} (record {run_id})"
        current = alias_state(client, model_name)
        if current[CHAMPION] == plan["after"][CHAMPION]:
            _apply(client, model_name, plan, run_id)
            note = (
                f"completed {what}: @champion had already moved to v{current[CHAMPION]}; "
                f"the rest of its plan is applied (by {actor()} at {now()})"
            )
            set_status(client, run_id, FINAL, note)
        elif current[CHAMPION] == plan["before"][CHAMPION]:
            set_aliases(client, model_name, plan["before"])
            note = (
                f"reverted {what}: @champion had not moved; aliases restored to "
                f"{plan['before']} (by {actor()} at {now()})"
            )
            set_status(client, run_id, REVERTED, note)
        else:
            note = (
                f"abandoned {what}: @champion is v{current[CHAMPION]}, neither the plan's "
                f"before nor after; aliases left as they are"
            )
            set_status(client, run_id, ABANDONED, note)
        logger.warning("%s: %s", model_name, note)
        notes.append(note)
    return notes


# --- the alias audit ---------------------------------------------------------------------------


def _describe(before: Aliases, after: Aliases) -> list[str]:
    return [
        f"@{alias}: {'v' + b if b else 'none'} -> {'v' + a if a else 'none'}"
        for alias, b in before.items()
        if (a := after.get(alias)) != b
    ]


def _audit(
    settings: Settings,
    model_name: str,
    version: str,
    holdout: pd.DataFrame | None,
    guardrails: Guardrails,
) -> tuple[str, dict[str, float]]:
    """(verdict, scores) of a champion that came by a manual change, on ``holdout``."""
    if holdout is None or holdout.empty:
        return "not-evaluated: no labelled holdout at hand", {}
    inputs = model_inputs(holdout)
    try:
        prob = _probabilities(settings, model_name, version, inputs)
    except ValueError as exc:  # an untrusted or unloadable model
        return f"breach: cannot be scored ({exc})", {}
    scores, breaks, _ = judge_one(
        inputs, labels(holdout), prob, guardrails, deny_above=settings.deny_above,
        approve_below=settings.approve_below,
    )  # fmt: skip
    return ("breach: " + "; ".join(breaks) if breaks else "hold"), scores


def reconcile(
    settings: Settings,
    client: MlflowClient,
    model_name: str,
    holdout: pd.DataFrame | None = None,
    guardrails: Guardrails | None = None,
) -> PromotionDecision | None:
    """Record an alias change nobody recorded (``manual-change``), judging a new champion
    against the guardrails on ``holdout``; None when the records account for the registry."""
    change = unrecorded_change(client, model_name)
    if change is None:
        return None
    recorded, current = change
    champion = current[CHAMPION]
    verdict, scores = "", dict[str, float]()
    if champion is not None and champion != recorded[CHAMPION]:
        verdict, scores = _audit(
            settings, model_name, champion, holdout, guardrails or Guardrails()
        )
    decision = PromotionDecision(
        action=MANUAL,
        model_name=model_name,
        challenger_version=champion,
        champion_version_before=recorded[CHAMPION],
        champion_version_after=champion,
        previous_champion_version=current[PREVIOUS_CHAMPION],
        reasons=["alias changed outside Safra: " + ", ".join(_describe(recorded, current))]
        + ([f"guardrails of the new champion after the fact: {verdict}"] if verdict else []),
        actor=UNKNOWN_AUTHOR,
        decided_at=now(),
        aliases_before=recorded,
        aliases_after=current,
        challenger_metrics=scores,
        guardrails=verdict,
        holdout_rows=0 if holdout is None else len(holdout),
        holdout_fingerprint="" if holdout is None else holdout_fingerprint(holdout),
    )
    write_record(client, decision)
    client.set_registered_model_tag(model_name, RECORDED_CHAMPION, champion or "")
    if champion != recorded[CHAMPION]:
        client.set_registered_model_tag(model_name, RECORDED_GUARDRAILS, verdict[:5000])
    if verdict and champion is not None:
        client.set_model_version_tag(model_name, champion, AUDIT_TAG, verdict[:5000])
        client.set_model_version_tag(model_name, champion, "champion_since", decision.decided_at)
    logger.warning("%s: %s", model_name, decision.reason)
    return decision


# --- the decision ------------------------------------------------------------------------------


HoldoutSource: TypeAlias = pd.DataFrame | Callable[[Aliases], pd.DataFrame]


def _withdrawn(client: MlflowClient, model_name: str, version: str) -> str | None:
    tags = client.get_model_version(model_name, version).tags or {}
    if tags.get(WITHDRAWN) != "true":
        return None
    return (
        f"v{version} was withdrawn by a rollback on {tags.get(WITHDRAWN + '_at')} by "
        f"{tags.get(WITHDRAWN + '_by')}: {tags.get(WITHDRAWN + '_reason')}"
    )


def promote_if_better(
    settings: Settings,
    model_name: str,
    holdout: HoldoutSource | None = None,
    margin: float | None = None,
    guardrails: Guardrails | None = None,
    dry_run: bool = False,
    *,
    allow_withdrawn: str | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    lock_wait_s: float = LOCK_WAIT_S,
) -> PromotionDecision:
    """Judge ``@challenger`` against ``@champion`` on ``holdout`` (a frame, or a function of the
    alias snapshot returning one) and move the aliases if the rule says so (module docstring).

    ``margin`` defaults to ``settings.promotion_margin``; ``allow_withdrawn``: the reason to
    promote a withdrawn version anyway. ValueError when there is no challenger or no holdout;
    :data:`PromotionBusy` when another promotion holds the lock past ``lock_wait_s``.
    """
    ensure_reachable(settings)
    margin = settings.promotion_margin if margin is None else margin
    g = guardrails or Guardrails()
    client = tracking_client(settings)
    with promotion_lock(settings, model_name, lock_wait_s):
        repairs = [] if dry_run else recover(client, model_name)
        before = alias_state(client, model_name)  # the one lookup the whole decision uses
        challenger, champion = before[CHALLENGER], before[CHAMPION]
        if challenger is None:
            raise ValueError(f"{model_name} has no @{CHALLENGER}: train one first")
        frame = holdout(before) if callable(holdout) else holdout
        if frame is None or frame.empty:
            raise ValueError("promotion needs a labelled holdout")
        if not dry_run:
            reconcile(settings, client, model_name, frame, g)
        decision = _decide(
            settings, client, model_name, before, frame, margin, g, allow_withdrawn,
            resamples, seed,
        )  # fmt: skip
        decision.reasons = repairs + decision.reasons
        decision.dry_run = dry_run
        logger.info(
            "%s%s v%s vs champion v%s: %s — %s", "[dry run] " if dry_run else "", model_name,
            challenger, champion, decision.action, decision.reason,
        )  # fmt: skip
        if dry_run:
            return decision
        params = {
            "margin": margin, **asdict(g), "approve_below": settings.approve_below,
            "deny_above": settings.deny_above, "resamples": resamples, "seed": seed,
            "allow_withdrawn": allow_withdrawn or "",
        }  # fmt: skip
        tags = _version_tags(decision)
        if decision.promoted:
            tags["champion_since"] = decision.decided_at
            if allow_withdrawn:
                tags[WITHDRAWN] = "false"
                tags[WITHDRAWN + "_overridden"] = allow_withdrawn
            _move(client, decision, params, {challenger: tags})
        else:
            write_record(client, decision, params)
            for key, value in {**tags, "promotion.log_run_id": decision.log_run_id}.items():
                client.set_model_version_tag(model_name, challenger, key, str(value))
        return decision


def _decide(
    settings: Settings,
    client: MlflowClient,
    model_name: str,
    before: Aliases,
    frame: pd.DataFrame,
    margin: float,
    g: Guardrails,
    allow_withdrawn: str | None,
    resamples: int,
    seed: int,
) -> PromotionDecision:
    challenger, champion = before[CHALLENGER], before[CHAMPION]
    assert challenger is not None
    decision = PromotionDecision(
        action=REFUSED,
        model_name=model_name,
        challenger_version=challenger,
        champion_version_before=champion,
        champion_version_after=champion,
        previous_champion_version=before[PREVIOUS_CHAMPION],
        reasons=[],
        actor=actor(),
        decided_at=now(),
        aliases_before=dict(before),
        aliases_after=dict(before),
        rule=rule_text(margin, DEFAULT_CONFIDENCE),
        holdout_rows=len(frame),
        holdout_fingerprint=holdout_fingerprint(frame),
    )
    withdrawn = _withdrawn(client, model_name, challenger)
    if champion == challenger:
        decision.reasons = [f"challenger version {challenger} is already the champion"]
        return decision
    if withdrawn and not allow_withdrawn:
        decision.reasons = [f"{withdrawn}; promote it only with --allow-withdrawn and a reason"]
        return decision
    inputs, y = model_inputs(frame), labels(frame, LABEL)
    thresholds = {"deny_above": settings.deny_above, "approve_below": settings.approve_below}
    new = _probabilities(settings, model_name, challenger, inputs)
    if champion is None:
        scores, breaks, notes = judge_one(inputs, y, new, g, **thresholds)
        decision.challenger_metrics = scores
        decision.guardrails = "breach: " + "; ".join(breaks) if breaks else "hold"
        decision.reasons = [f"challenger breaks a guardrail: {b}" for b in breaks] or [
            f"no champion yet; challenger keeps the guardrails (f1_at_threshold "
            f"{scores['f1_at_threshold']:.4f}, roc_auc {scores['roc_auc']:.4f})"
        ]
        if not breaks:
            decision.action = FIRST_CHAMPION
    else:
        old = _probabilities(settings, model_name, champion, inputs)
        judged = judge_pair(
            inputs, y, old, new, margin=margin, guardrails=g, resamples=resamples, seed=seed,
            **thresholds,
        )  # fmt: skip
        notes = list(judged.notes)
        decision.challenger_metrics = judged.challenger_scores
        decision.champion_metrics = judged.champion_scores
        decision.comparison = {
            **judged.comparison.as_dict(),
            "smallest_detectable_f1_gain": smallest_detectable_f1_gain(judged.comparison, margin),
        }
        decision.basis = judged.verdict.basis
        decision.reasons = judged.verdict.reasons
        if judged.verdict.promote:
            decision.action = PROMOTED
    if withdrawn:
        notes.append(f"{withdrawn}; promoted anyway on request: {allow_withdrawn}")
    decision.reasons += notes
    if decision.action in (PROMOTED, FIRST_CHAMPION):
        decision.guardrails = "hold"
        decision.champion_version_after = challenger
        decision.aliases_after[CHAMPION] = challenger
        if champion is not None:
            decision.previous_champion_version = champion
            decision.aliases_after[PREVIOUS_CHAMPION] = champion
    return decision


def _version_tags(decision: PromotionDecision) -> dict[str, str]:
    tags = {
        "promotion.action": decision.action,
        "promotion.reason": decision.reason[:5000],
        "promotion.actor": decision.actor,
        "promotion.decided_at": decision.decided_at,
        "promotion.champion_version_before": decision.champion_version_before or "",
        "promotion.holdout_fingerprint": decision.holdout_fingerprint,
    }
    for key in COMPARED_METRICS:
        for side, scores in (
            ("challenger", decision.challenger_metrics),
            ("champion", decision.champion_metrics),
        ):
            if key in scores:
                tags[f"promotion.{side}_{key}"] = f"{scores[key]:.6f}"
    for key in ("f1_gain", "auc_gain", "brier_gain"):
        interval = decision.comparison.get(key)
        if interval:
            tags[f"promotion.{key}"] = (
                f"{interval['estimate']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}]"
            )
    return tags


def rollback(
    settings: Settings,
    model_name: str,
    reason: str | None = None,
    *,
    lock_wait_s: float = LOCK_WAIT_S,
) -> PromotionDecision:
    """``@champion`` ← ``@previous-champion``; the withdrawn version is tagged :data:`WITHDRAWN`
    with ``reason`` and ``@challenger`` is cleared if it names it. ``@previous-champion`` is
    removed (a second rollback fails clearly rather than flipping back). ValueError when there
    is no previous champion."""
    ensure_reachable(settings)
    client = tracking_client(settings)
    with promotion_lock(settings, model_name, lock_wait_s):
        repairs = recover(client, model_name)
        reconcile(settings, client, model_name)
        before = alias_state(client, model_name)
        previous, champion = before[PREVIOUS_CHAMPION], before[CHAMPION]
        if previous is None or champion is None:
            raise ValueError(
                f"{model_name} has no @{PREVIOUS_CHAMPION}: nothing to roll back to "
                "(no promotion since the first champion, or already rolled back)"
            )
        who, when = actor(), now()
        why = reason or "rolled back"
        after = {
            PREVIOUS_CHAMPION: None,
            CHAMPION: previous,
            CHALLENGER: None if before[CHALLENGER] == champion else before[CHALLENGER],
        }
        decision = PromotionDecision(  # challenger_version: the version withdrawn
            action=ROLLED_BACK,
            model_name=model_name,
            challenger_version=champion,
            champion_version_before=champion,
            champion_version_after=previous,
            previous_champion_version=None,
            reasons=repairs
            + [f"rollback: champion v{champion} withdrawn ({why}), v{previous} restored"]
            + ([f"@{CHALLENGER} v{champion} cleared"] if after[CHALLENGER] is None else []),
            actor=who,
            decided_at=when,
            aliases_before=dict(before),
            aliases_after=after,
            guardrails=f"not-evaluated: v{previous} restored by a rollback",
        )
        withdrawn_tags = {
            WITHDRAWN: "true", WITHDRAWN + "_reason": why, WITHDRAWN + "_at": when,
            WITHDRAWN + "_by": who, **_version_tags(decision),
        }  # fmt: skip
        _move(client, decision, {}, {champion: withdrawn_tags, previous: {"champion_since": when}})
        logger.info("%s: %s (by %s)", model_name, decision.reason, who)
        return decision


# --- safra promote / rollback / promotions -----------------------------------------------------


def _validation_start(
    client: MlflowClient, model_name: str, version: str | None
) -> pd.Timestamp | None:
    """When the validation window of ``version``'s training run began (its ``valid_from``)."""
    if version is None:
        return None
    run_id = version_run_id(client, model_name, version)
    if not run_id:
        return None
    value = client.get_run(run_id).data.params.get("valid_from")
    if not value:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def promotion_holdout(
    client: MlflowClient,
    model_name: str,
    aliases: Aliases,
    frame: pd.DataFrame,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The labelled rows neither ``@challenger`` nor ``@champion`` of ``aliases`` trained on:
    every row at or after the later of their validation windows' starts (labels that arrived
    since included); the latest ``valid_fraction`` of rows when no start is recorded.
    ValueError when empty."""
    starts = [
        s
        for alias in (CHALLENGER, CHAMPION)
        if (s := _validation_start(client, model_name, aliases[alias])) is not None
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
    allow_withdrawn: str | None = None,
) -> PromotionDecision:
    """``safra promote``: challenger vs champion on :func:`promotion_holdout` of the current
    Feast training set, by the settings' rule (:func:`promote_if_better`). ValueError when there
    is no challenger or no holdout."""
    holdout_from: list[str] = []

    def holdout(aliases: Aliases) -> pd.DataFrame:
        ts = build_training_set(feature_store(settings), settings)
        frame, start = promotion_holdout(
            tracking_client(settings), settings.model_name, aliases, ts.frame
        )
        holdout_from.append(str(start))
        return frame

    decision = promote_if_better(
        settings, settings.model_name, holdout, dry_run=dry_run, allow_withdrawn=allow_withdrawn
    )
    decision.holdout_from = holdout_from[0] if holdout_from else None
    return decision


def run_rollback(settings: Settings, reason: str | None = None) -> PromotionDecision:
    """``safra rollback``: ``champion`` ← ``previous-champion``, the withdrawn version retired."""
    return rollback(settings, settings.model_name, reason)


@dataclass
class PromotionsReport:
    """``safra promotions``: the champion timeline, every record, and what the audit did."""

    model_name: str
    aliases: Aliases
    timeline: list[dict[str, Any]]
    records: list[dict[str, Any]]
    audit: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_promotions(settings: Settings, audit: bool = True) -> PromotionsReport:
    """The alias history of ``settings.model_name``. With ``audit``, first complete or revert a
    pending move and record an alias change nobody recorded, judging a new champion on the
    promotion holdout (built only when there is one to judge)."""
    ensure_reachable(settings)
    client = tracking_client(settings)
    name = settings.model_name
    notes: list[str] = []
    if audit:
        with promotion_lock(settings, name):
            notes += recover(client, name)
            change = unrecorded_change(client, name)
            if change is not None:
                frame = None
                if change[1][CHAMPION] not in (None, change[0][CHAMPION]):
                    try:
                        ts = build_training_set(feature_store(settings), settings)
                        frame, _ = promotion_holdout(client, name, change[1], ts.frame)
                    except (ValueError, OSError) as exc:
                        notes.append(f"no holdout to judge the new champion on: {exc}")
                recorded = reconcile(settings, client, name, frame)
                if recorded is not None:
                    notes.append(recorded.reason)
    log = promotion_log(client, name)
    clean = log.astype(object).where(log.notna(), None)
    return PromotionsReport(
        model_name=name,
        aliases=alias_state(client, name),
        timeline=champion_timeline(log).astype(object).to_dict("records"),
        records=clean.to_dict("records"),
        audit=notes,
    )
