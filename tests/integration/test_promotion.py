"""Promotion governance against the real MLflow of the tests' stack: the statistical rule on the
demo's story, the alias audit, one promotion at a time, repair after a failure or a kill at any
step, rollback retiring the withdrawn version. Each test has its own registered model name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

import ml.promote as promote
from ml.alias_history import (
    FINAL,
    MANUAL,
    PENDING,
    RECORDED_CHAMPION,
    REVERTED,
    alias_state,
    promotion_log,
    record_runs,
    unrecorded_change,
)
from ml.promotion_rule import REPLACES_FAILING_CHAMPION, Guardrails
from ml.registry import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, tracking_client
from ml.train import candidate_classifiers, out_of_time_split, train_and_register
from pipelines.simulator import generate_applications, labelled_frame
from safra.settings import Settings

pytestmark = pytest.mark.stack

EXPERIMENT = "safra-credit-integration-tests"
DAY = timedelta(days=1)
DRIFT_END = datetime(2025, 11, 28, tzinfo=UTC)
SEED = 3
"""The demo's story at this seed: the equal-skill challenger is refused, the post-drift one is
promoted (bench/promotion_bench.py shows how often over 20 seeds)."""
ANY_GAIN = -1.0
"""A margin every challenger clears: the mechanics tests are about moving aliases, not the rule."""
NO_SEGMENT_FLOOR = Guardrails(segment_floor=0.0)


def _name() -> str:
    return f"it-promo-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def story() -> dict[str, pd.DataFrame]:
    """The demo's story at full scale: a year of baseline history, then 180 days of the bureau
    recalibration; each split out of time (older 80 % to train, newest 20 % to judge)."""
    start = DRIFT_END - 180 * DAY
    past = labelled_frame(generate_applications(30_000, SEED, start - 360 * DAY, start), SEED)
    moved = labelled_frame(
        generate_applications(15_000, SEED + 2, start, DRIFT_END, scenario="bureau_recalibration"),
        SEED + 2,
        "bureau_recalibration",
    )
    past_train, past_holdout = out_of_time_split(past, valid_fraction=0.2)
    moved_train, moved_holdout = out_of_time_split(moved, valid_fraction=0.2)
    return {"past_train": past_train, "past_holdout": past_holdout,
            "moved_train": moved_train, "moved_holdout": moved_holdout}  # fmt: skip


def _register(s: Settings, name: str, train: pd.DataFrame, valid: pd.DataFrame, clf) -> str:
    result = train_and_register(
        train, valid, settings=s, model_name=name, candidates={"model": clf},
        experiment_name=EXPERIMENT,
    )  # fmt: skip
    assert result.version is not None
    return result.version


def _learner(random_state: int) -> HistGradientBoostingClassifier:
    return candidate_classifiers(24_000, random_state=random_state)["hist_gradient_boosting"]


def test_an_equal_skill_challenger_is_refused_with_the_statistics_on_record(
    local_stack: Settings, story: dict[str, pd.DataFrame]
) -> None:
    s, name = local_stack, _name()
    client = tracking_client(s)
    train, holdout = story["past_train"], story["past_holdout"]
    v1 = _register(s, name, train, holdout, _learner(42))
    first = promote.promote_if_better(s, name, holdout)
    assert first.action == "first-champion" and first.guardrails == "hold"
    v2 = _register(s, name, train, holdout, _learner(1000 + SEED))  # same learner, another seed

    refused = promote.promote_if_better(s, name, holdout)

    assert refused.action == "refused" and not refused.promoted
    assert refused.reasons[0].startswith("F1 gain") and "lower bound <= margin" in refused.reason
    c = refused.comparison
    assert (c["rows"], c["resamples"], c["seed"]) == (len(holdout), 2000, 2026)
    assert c["f1_gain"]["low"] <= s.promotion_margin
    assert 0.01 < c["smallest_detectable_f1_gain"] < 0.05
    assert alias_state(client, name) == {PREVIOUS_CHAMPION: None, CHAMPION: v1, CHALLENGER: v2}
    log = promotion_log(client, name)
    assert log["action"].tolist() == ["trained", "first-champion", "trained", "refused"]
    last = log.iloc[-1]
    assert last["f1_gain_low"] == pytest.approx(c["f1_gain"]["low"])
    assert last["auc_gain_high"] == pytest.approx(c["auc_gain"]["high"])
    assert last["holdout_rows"] == len(holdout)
    run = client.get_run(last["run_id"])
    assert run.data.tags["rule"].startswith("promote iff the challenger keeps the guardrails")
    assert run.data.params["seed"] == "2026" and run.data.params["resamples"] == "2000"
    # the same inputs give the same decision, bit for bit
    again = promote.promote_if_better(s, name, holdout, dry_run=True)
    assert again.comparison == refused.comparison and again.action == "refused"


def test_the_post_drift_challenger_is_promoted_and_a_manual_move_back_is_audited(
    local_stack: Settings, story: dict[str, pd.DataFrame]
) -> None:
    s, name = local_stack, _name()
    client = tracking_client(s)
    holdout = story["moved_holdout"]
    v1 = _register(s, name, story["past_train"], story["past_holdout"], _learner(42))
    assert promote.promote_if_better(s, name, story["past_holdout"]).action == "first-champion"
    v2 = _register(s, name, story["moved_train"], holdout, _learner(42))

    promoted = promote.promote_if_better(s, name, holdout)

    assert promoted.action == "promoted", promoted.reasons
    assert promoted.basis == REPLACES_FAILING_CHAMPION
    assert (
        promoted.champion_metrics["calibration_gap"]
        > 0.05
        > promoted.challenger_metrics["calibration_gap"]
    )
    assert promoted.comparison["brier_gain"]["low"] > 0
    assert alias_state(client, name) == {PREVIOUS_CHAMPION: v1, CHAMPION: v2, CHALLENGER: v2}
    assert client.get_registered_model(name).tags[RECORDED_CHAMPION] == v2
    assert unrecorded_change(client, name) is None

    # a person moves @champion back to v1 by hand (the MLflow UI does this call)
    client.set_registered_model_alias(name, CHAMPION, v1)
    assert unrecorded_change(client, name) is not None
    manual = promote.reconcile(s, client, name, holdout)

    assert manual is not None and manual.action == MANUAL
    assert manual.actor.startswith("unknown")
    assert manual.guardrails.startswith("breach: calibration gap")  # v1 misjudges this world
    assert manual.reasons[0] == f"alias changed outside Safra: @champion: v{v2} -> v{v1}"
    assert client.get_model_version(name, v1).tags[promote.AUDIT_TAG].startswith("breach")
    assert client.get_registered_model(name).tags[RECORDED_CHAMPION] == v1
    assert unrecorded_change(client, name) is None  # recorded once
    assert promote.reconcile(s, client, name, holdout) is None
    timeline = promote.champion_timeline(promotion_log(client, name))
    assert timeline["version"].tolist() == [v1, v2, v1]
    assert timeline["how"].tolist() == ["first-champion", "promoted", MANUAL]


# --- the mechanics: one at a time, atomic, repaired ---------------------------------------------


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    apps = generate_applications(3_000, 21, datetime(2024, 1, 1), datetime(2025, 1, 1))
    train, holdout = out_of_time_split(labelled_frame(apps, 21), valid_fraction=0.3)
    return {"train": train, "holdout": holdout}


def _champion_and_challenger(s: Settings, small: dict[str, pd.DataFrame]) -> tuple[str, str, str]:
    """A model with v1 @champion (recorded) and v2 @challenger; (name, v1, v2)."""
    name = _name()
    forest = RandomForestClassifier(n_estimators=10, min_samples_leaf=20, random_state=1)
    v1 = _register(s, name, small["train"], small["holdout"], forest)
    first = promote.promote_if_better(s, name, small["holdout"], guardrails=NO_SEGMENT_FLOOR)
    assert first.action == "first-champion", first.reasons
    forest = RandomForestClassifier(n_estimators=10, min_samples_leaf=20, random_state=2)
    v2 = _register(s, name, small["train"], small["holdout"], forest)
    return name, v1, v2


def _promote(s: Settings, name: str, small: dict[str, pd.DataFrame]):
    return promote.promote_if_better(
        s, name, small["holdout"], margin=ANY_GAIN, guardrails=NO_SEGMENT_FLOOR
    )


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("step", "repair"),
    [
        ("pending", "reverted"),
        ("alias:previous-champion", "reverted"),
        ("alias:champion", "completed"),
        ("tags", "completed"),
    ],
)
def test_a_promotion_failed_at_any_step_is_completed_or_reverted_by_the_next(
    local_stack: Settings, small: dict[str, pd.DataFrame], monkeypatch, step: str, repair: str
) -> None:
    s = local_stack
    client = tracking_client(s)
    name, v1, v2 = _champion_and_challenger(s, small)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    monkeypatch.setattr(promote, "_after_step", crash)
    with pytest.raises(Crash):
        _promote(s, name, small)
    monkeypatch.undo()
    pending = record_runs(client, name, PENDING)
    assert len(pending) == 1  # the half-done move is on record, never invisible

    after = _promote(s, name, small)

    assert after.reasons[0].startswith(f"{repair} the pending promoted")
    status = client.get_run(pending[0].info.run_id).data.tags["status"]
    assert status == (FINAL if repair == "completed" else REVERTED)
    assert record_runs(client, name, PENDING) == []
    # either way the promotion ends done once: v2 champion, v1 previous, the tags written
    assert alias_state(client, name) == {PREVIOUS_CHAMPION: v1, CHAMPION: v2, CHALLENGER: v2}
    # completed: the repair finished the move, so the new command finds v2 already champion;
    # reverted: nothing had moved, so the new command promotes v2 itself
    expected = "refused" if repair == "completed" else "promoted"
    assert after.action == expected
    tags = client.get_model_version(name, v2).tags
    assert tags["promotion.action"] == expected and "champion_since" in tags
    assert unrecorded_change(client, name) is None


def test_a_killed_promotion_leaves_no_lock_and_is_completed_by_the_next(
    local_stack: Settings, small: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    s = local_stack
    client = tracking_client(s)
    name, v1, v2 = _champion_and_challenger(s, small)
    holdout = tmp_path / "holdout.parquet"
    small["holdout"].to_parquet(holdout)
    script = f"""
import os, signal
import pandas as pd
import ml.promote as promote
from ml.promotion_rule import Guardrails
from safra.settings import get_settings
def kill(step):
    if step == "alias:champion":
        os.kill(os.getpid(), signal.SIGKILL)
promote._after_step = kill
promote.promote_if_better(get_settings(), {name!r}, pd.read_parquet({str(holdout)!r}),
                          margin=-1.0, guardrails=Guardrails(segment_floor=0.0))
"""
    killed = subprocess.run([sys.executable, "-c", script], cwd=Path.cwd(), env=os.environ.copy())
    assert killed.returncode == -signal.SIGKILL
    assert alias_state(client, name)[CHAMPION] == v2  # the kill came after the alias moved
    assert len(record_runs(client, name, PENDING)) == 1

    after = _promote(s, name, small)  # the lock is free at once: the kernel released it

    assert after.reasons[0].startswith("completed the pending promoted")
    assert alias_state(client, name) == {PREVIOUS_CHAMPION: v1, CHAMPION: v2, CHALLENGER: v2}
    assert record_runs(client, name, PENDING) == []


def test_two_promotions_at_once_never_both_run(
    local_stack: Settings, small: dict[str, pd.DataFrame]
) -> None:
    s = local_stack
    client = tracking_client(s)
    name, v1, v2 = _champion_and_challenger(s, small)
    records = len(record_runs(client, name))
    with promote.promotion_lock(s, name), pytest.raises(promote.PromotionBusy, match=name):
        promote.promote_if_better(s, name, small["holdout"], margin=ANY_GAIN, lock_wait_s=1.0)
    assert alias_state(client, name)[CHAMPION] == v1
    assert len(record_runs(client, name)) == records  # the refused one wrote nothing
    assert _promote(s, name, small).action == "promoted"  # and the lock is free again


def test_rollback_retires_the_withdrawn_version(
    local_stack: Settings, small: dict[str, pd.DataFrame]
) -> None:
    s = local_stack
    client = tracking_client(s)
    name, v1, v2 = _champion_and_challenger(s, small)
    assert _promote(s, name, small).action == "promoted"

    back = promote.rollback(s, name, "complaints from the field")

    assert back.action == "rolled-back"
    assert alias_state(client, name) == {PREVIOUS_CHAMPION: None, CHAMPION: v1, CHALLENGER: None}
    tags = client.get_model_version(name, v2).tags
    assert tags[promote.WITHDRAWN] == "true"
    assert tags[promote.WITHDRAWN + "_reason"] == "complaints from the field"
    with pytest.raises(ValueError, match="no @challenger"):
        _promote(s, name, small)  # nothing left to put it back by accident
    with pytest.raises(ValueError, match="nothing to roll back"):
        promote.rollback(s, name)

    client.set_registered_model_alias(name, CHALLENGER, v2)  # someone points @challenger at it
    refused = _promote(s, name, small)
    assert refused.action == "refused"
    assert "withdrawn by a rollback" in refused.reason and "--allow-withdrawn" in refused.reason
    assert alias_state(client, name)[CHAMPION] == v1
    allowed = promote.promote_if_better(
        s, name, small["holdout"], margin=ANY_GAIN, guardrails=NO_SEGMENT_FLOOR,
        allow_withdrawn="fixed upstream, reviewed by risk",
    )  # fmt: skip
    assert allowed.action == "promoted"
    assert "promoted anyway on request: fixed upstream, reviewed by risk" in allowed.reason
    assert client.get_model_version(name, v2).tags[promote.WITHDRAWN] == "false"
    actions = promotion_log(client, name)["action"].tolist()
    assert actions == ["trained", "first-champion", "trained", "promoted", "rolled-back",
                       MANUAL, "refused", "promoted"]  # fmt: skip
