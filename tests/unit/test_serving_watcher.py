"""The champion watcher's swap logic, with two tiny in-memory scikit-learn models (no services)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.features import model_inputs
from ml.signing import UntrustedModel
from ml.train import build_pipeline
from pipelines.simulator import applications_frame, generate_applications, generate_outcomes
from serving.model_watcher import (
    MAX_RETRY_AFTER_S,
    RETRY_AFTER_S,
    ModelCheckError,
    ModelWatcher,
    ServingModel,
    check_model,
)
from serving.reasons import reference_values


@pytest.fixture(scope="module")
def training() -> tuple[pd.DataFrame, np.ndarray]:
    apps = generate_applications(
        1_500, seed=5, start=datetime(2024, 1, 1), end=datetime(2024, 7, 1)
    )
    outcomes = generate_outcomes(apps, seed=5)
    frame = applications_frame(apps)
    y = np.array([o["inadimplente"] for o in outcomes], dtype=int)
    return model_inputs(frame), y


def tiny_model(training: tuple[pd.DataFrame, np.ndarray], depth: int, version: str) -> ServingModel:
    x, y = training
    classifier = HistGradientBoostingClassifier(max_iter=15, max_depth=depth, random_state=0)
    pipeline = build_pipeline(classifier).fit(x, y)
    return ServingModel("m", version, pipeline, reference=reference_values(x))


class BrokenModel:
    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.column_stack([np.full(len(x), 0.5), np.full(len(x), np.nan)])


class Registry:
    """An alias and versions in memory; counts loads."""

    def __init__(self, models: dict[str, ServingModel | Exception]) -> None:
        self.models = models
        self.alias: str | None = None
        self.loads: list[str] = []

    def resolve(self) -> str | None:
        return self.alias

    def load(self, version: str) -> ServingModel:
        self.loads.append(version)
        found = self.models[version]
        if isinstance(found, Exception):
            raise found
        return found


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def models(training: tuple[pd.DataFrame, np.ndarray]) -> dict[str, ServingModel | Exception]:
    return {
        "1": tiny_model(training, 3, "1"),
        "2": tiny_model(training, 2, "2"),
        "3": ServingModel("m", "3", BrokenModel()),
        "4": OSError("artifact missing"),
    }


def watcher(registry: Registry, clock: Clock | None = None) -> ModelWatcher:
    return ModelWatcher("m", registry.resolve, registry.load, poll_s=0.05, clock=clock or Clock())


def test_no_champion_is_not_ready_and_says_why(models) -> None:
    registry = Registry(models)
    w = watcher(registry)
    assert w.current is None
    assert "being loaded" in (w.not_ready_reason() or "")
    assert w.poll() is None
    assert "no champion" in (w.not_ready_reason() or "")
    assert registry.loads == []


def test_alias_move_swaps_after_warm_check(models) -> None:
    registry = Registry(models)
    swapped: list[str] = []
    w = ModelWatcher(
        "m", registry.resolve, registry.load, 1.0, on_swap=lambda m: swapped.append(m.version)
    )
    registry.alias = "1"
    first = w.poll()
    assert first is not None and first.version == "1"
    assert w.not_ready_reason() is None
    in_flight = w.current  # a request holds this reference
    registry.alias = "2"
    w.poll()
    assert w.current is not None and w.current.version == "2"
    assert in_flight is first and in_flight.version == "1"  # the old object is untouched
    w.poll()  # same version: nothing loaded again
    assert registry.loads == ["1", "2"]
    assert swapped == ["1", "2"]
    assert w.state.swaps == 2


def test_failing_versions_are_never_swapped_in_and_not_retried_in_a_loop(models, caplog) -> None:
    registry = Registry(models)
    clock = Clock()
    failures: list[str] = []
    w = ModelWatcher("m", registry.resolve, registry.load, 1.0, clock=clock,
                     on_failure=lambda v, e: failures.append(v))  # fmt: skip
    registry.alias = "1"
    w.poll()
    registry.alias = "3"  # loads, but predicts NaN
    with caplog.at_level(logging.ERROR, logger="serving.model_watcher"):
        w.poll()
    assert w.current is not None and w.current.version == "1"
    assert "m v3 (@champion) failed to load or check" in caplog.text
    assert "ModelCheckError" in w.failures["3"].error
    for _ in range(5):
        w.poll()
    assert registry.loads == ["1", "3"]  # remembered: not retried on every poll
    clock.now += RETRY_AFTER_S + 1
    w.poll()
    assert registry.loads == ["1", "3", "3"]
    assert w.failures["3"].attempts == 2
    assert w.failures["3"].retry_at == pytest.approx(clock.now + 2 * RETRY_AFTER_S)
    registry.alias = "4"  # cannot even be loaded
    w.poll()
    assert w.current.version == "1"
    assert "artifact missing" in w.failures["4"].error
    assert failures == ["3", "3", "4"]
    assert w.state.failed_loads == 3
    registry.alias = "2"
    w.poll()
    assert w.current.version == "2"


def test_untrusted_version_is_refused_logged_with_its_cause_and_counted_apart(
    models, caplog
) -> None:
    untrusted = UntrustedModel("m", "5", "no signature tag 'safra.signature'")
    registry = Registry({**models, "5": untrusted})
    failures: list[BaseException] = []
    w = ModelWatcher("m", registry.resolve, registry.load, 1.0, clock=Clock(),
                     on_failure=lambda v, e: failures.append(e))  # fmt: skip
    registry.alias = "1"
    w.poll()
    registry.alias = "5"
    with caplog.at_level(logging.ERROR, logger="serving.model_watcher"):
        w.poll()
    assert w.current is not None and w.current.version == "1"
    assert (
        "m v5 (@champion) refused, untrusted: no signature tag 'safra.signature' (attempt 1; "
        "next try in 60s); still serving v1"
    ) in caplog.text
    assert "Traceback" not in caplog.text
    assert failures == [untrusted]
    assert w.failures["5"].untrusted and "UntrustedModel" in w.failures["5"].error
    assert (w.state.untrusted_loads, w.state.failed_loads) == (1, 0)
    registry.alias = "4"  # an ordinary load failure is counted as such
    w.poll()
    assert (w.state.untrusted_loads, w.state.failed_loads) == (1, 1)
    assert not w.failures["4"].untrusted


def test_backoff_is_capped(models) -> None:
    registry = Registry(models)
    clock = Clock()
    w = watcher(registry, clock)
    registry.alias = "4"
    for _ in range(12):
        w.poll()
        clock.now += MAX_RETRY_AFTER_S + 1
    assert w.failures["4"].retry_at - w.failures["4"].failed_at == MAX_RETRY_AFTER_S
    assert "failed to load: OSError: artifact missing" in (w.not_ready_reason() or "")


def test_registry_unreachable_keeps_serving(models) -> None:
    registry = Registry(models)
    w = watcher(registry)
    registry.alias = "1"
    w.poll()

    def down() -> str | None:
        raise ConnectionError("mlflow down")

    w._resolve = down
    w.poll()
    assert w.current is not None and w.current.version == "1"
    assert w.state.last_poll_error == "ConnectionError: mlflow down"


def test_check_model_rejects_nan_and_accepts_a_probability(models) -> None:
    with pytest.raises(ModelCheckError, match="not finite"):
        check_model(models["3"])
    assert 0.0 < check_model(models["1"]) < 1.0


def test_background_thread_follows_the_alias(models) -> None:
    registry = Registry(models)
    w = watcher(registry)
    registry.alias = "1"
    swapped = threading.Event()
    w._on_swap = lambda m: swapped.set() if m.version == "2" else None
    w.start()
    try:
        for _ in range(100):
            if w.current is not None:
                break
            threading.Event().wait(0.02)
        assert w.current is not None and w.current.version == "1"
        registry.alias = "2"
        assert swapped.wait(5)
        assert w.current.version == "2"
    finally:
        w.stop()


def test_start_waits_for_the_first_load(models) -> None:
    """A starting worker takes requests only after its first load (the workers share a port:
    another worker's /readyz says nothing about this one)."""
    registry = Registry(models)
    registry.alias = "1"
    w = watcher(registry)
    try:
        assert w.start(wait_s=10) is True
        assert w.current is not None and w.current.version == "1"
    finally:
        w.stop()
