"""The loop end to end on the real stack, scaled down: drift injected → detected → retraining →
promotion → the API answers with the new version, and no request failed during the switch.

It runs `safra demo`'s story (safra.demo.Demo) at the ``ci`` scale on the main tables and model,
as `make demo` does; a second run on the same stack adds new applicants and goes round again.
"""

from __future__ import annotations

import pytest

from safra.demo import SCALES, Demo, ScoringClient
from safra.settings import Settings

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def summary(local_stack: Settings):
    return Demo(local_stack, SCALES["ci"], "bureau_recalibration", seed=2026).run()


def test_the_recalibrated_bureau_is_detected_as_drift(summary) -> None:
    drift = summary.figures["drift"]
    assert drift["drift"] is True
    assert "serasa_score" in drift["drifted_columns"]
    assert drift["drifted_share"] >= drift["threshold"]


def test_the_retrained_challenger_is_promoted(summary) -> None:
    promotion = summary.figures["promotion"]
    assert promotion["promoted"] is True, promotion["reasons"]
    assert str(promotion["champion_version_after"]) == str(summary.figures["retraining"]["version"])
    assert promotion["previous_champion_version"] == promotion["champion_version_before"]
    assert (
        promotion["challenger_metrics"]["f1_at_threshold"]
        >= promotion["champion_metrics"]["f1_at_threshold"] + promotion["margin"]
    )


def test_the_api_switched_under_load_with_no_failed_request(summary, local_stack: Settings) -> None:
    load = summary.figures["load"]
    new = str(summary.figures["promotion"]["champion_version_after"])
    assert load["failed"] == 0, load["errors"]
    assert load["sent"] == load["ok"] > 0
    assert load["versions"].get(new, 0) > 0  # answers carried the new version before the end
    assert "loop_seconds" in summary.figures
    client = ScoringClient(local_stack)
    try:
        assert str(client.model_info()["model_version"]) == new
    finally:
        client.close()


def test_the_story_ends_with_where_to_look(summary) -> None:
    assert [s.name for s in summary.stages][:3] == ["stack", "history", "ingest (history)"]
    assert summary.stages[-1].name == "promote under load"
    assert {"MLflow registry", "Evidently reports", "scoring API docs", "Airflow"} <= set(
        summary.urls
    )
