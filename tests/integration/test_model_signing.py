"""Signed models against the real MLflow of the tests' stack: a version trained by Safra loads,
an unsigned one and a signed one altered after registration are refused before anything of
them is deserialized. (The scoring API's side: tests/integration/test_serving.py,
``test_unsigned_champion_is_refused_and_counted``.)"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier

from ml import registry, signing
from ml.features import model_inputs
from ml.registry import (
    SKOPS_TRUSTED_TYPES,
    download_version,
    load_version,
    sign_version,
    tracking_client,
)
from ml.signing import UntrustedModel
from ml.train import TrainResult, build_pipeline, labels, out_of_time_split, train_and_register
from pipelines.simulator import generate_applications, labelled_frame
from safra.settings import Settings

pytestmark = pytest.mark.stack

EXPERIMENT = "safra-signing-integration-tests"


def _forest(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=20, min_samples_leaf=20, n_jobs=1, random_state=seed)


@pytest.fixture(scope="module")
def windows() -> dict[str, pd.DataFrame]:
    apps = generate_applications(
        3_000, seed=31, start=datetime(2024, 1, 1), end=datetime(2025, 1, 1)
    )
    train, valid = out_of_time_split(labelled_frame(apps, seed=31), valid_fraction=0.2)
    return {"train": train, "valid": valid}


@pytest.fixture(scope="module")
def trained(local_stack: Settings, windows: dict[str, pd.DataFrame]) -> Iterator[TrainResult]:
    """One registered model (its own name) whose version 1 Safra trained and signed."""
    name = f"it-signing-{uuid.uuid4().hex[:8]}"
    result = train_and_register(
        windows["train"], windows["valid"], settings=local_stack, model_name=name,
        experiment_name=EXPERIMENT, candidates={"random_forest": _forest(1)},
    )  # fmt: skip
    assert result.version is not None
    yield result
    with contextlib.suppress(Exception):
        tracking_client(local_stack).delete_registered_model(name)


@contextlib.contextmanager
def _nothing_deserialized() -> Iterator[None]:
    """Fails the test if a model is deserialized in the block (a refused version must not be)."""
    calls: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        calls.append(str(args))
        raise AssertionError("a model was deserialized before its signature was accepted")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "load_pipeline", refuse)
        mp.setattr(skops.io, "load", refuse)
        yield
    assert calls == []


def _experiment_id(settings: Settings) -> str:
    return registry.experiment_id(tracking_client(settings), EXPERIMENT)


def test_a_version_trained_by_safra_is_signed_and_loads(
    local_stack: Settings, trained: TrainResult, windows: dict[str, pd.DataFrame]
) -> None:
    name, version = trained.model_name, str(trained.version)
    tags = tracking_client(local_stack).get_model_version(name, version).tags
    assert tags[signing.KEY_ID_TAG] == signing.key_id(
        signing.public_key(local_stack.model_verify_key)
    )
    with tempfile.TemporaryDirectory() as tmp:
        local = download_version(name, version, Path(tmp))
        files = signing.manifest(local)
        assert tags[signing.DIGEST_TAG] == signing.digest(files)
    assert "model.skops" in files and not any(f.endswith(".pkl") for f in files)  # no pickle

    model = load_version(local_stack, name, version)
    inputs = model_inputs(windows["valid"].head(200))
    assert trained.pipeline is not None
    np.testing.assert_allclose(model.predict_proba(inputs), trained.pipeline.predict_proba(inputs))
    # MLflow's own pyfunc flavour still loads it (the skops trusted types are in its MLmodel)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    np.testing.assert_allclose(
        np.asarray(pyfunc.predict(inputs))[:, 1], model.predict_proba(inputs)[:, 1]
    )


def test_a_version_registered_directly_with_mlflow_is_refused(
    local_stack: Settings,
    trained: TrainResult,
    windows: dict[str, pd.DataFrame],
) -> None:
    name = trained.model_name
    train = windows["train"]
    pipeline = build_pipeline(_forest(2)).fit(model_inputs(train), labels(train))
    tracking_client(local_stack)
    with mlflow.start_run(experiment_id=_experiment_id(local_stack), run_name="unsigned"):
        info = mlflow.sklearn.log_model(
            pipeline, name="model", serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )  # fmt: skip
    unsigned = str(mlflow.register_model(info.model_uri, name).version)

    with _nothing_deserialized(), pytest.raises(UntrustedModel, match="no signature tag") as err:
        load_version(local_stack, name, unsigned)
    assert str(err.value).startswith(f"{name} version {unsigned} is not a trusted model")
    assert "'safra.signature'" in str(err.value)
    assert mlflow.pyfunc.load_model(f"models:/{name}/{unsigned}") is not None  # a working model

    # the signature tags of the signed version copied onto it: they sign other files
    client = tracking_client(local_stack)
    signed_tags = client.get_model_version(name, str(trained.version)).tags
    for key in (signing.SCHEME_TAG, signing.DIGEST_TAG, signing.SIGNATURE_TAG, signing.KEY_ID_TAG):
        client.set_model_version_tag(name, unsigned, key, signed_tags[key])
    with _nothing_deserialized(), pytest.raises(UntrustedModel, match="artifact altered"):
        load_version(local_stack, name, unsigned)


def test_a_signed_version_altered_after_registration_is_refused(
    local_stack: Settings, trained: TrainResult, windows: dict[str, pd.DataFrame]
) -> None:
    name = trained.model_name
    client = tracking_client(local_stack)
    with tempfile.TemporaryDirectory() as tmp:
        # a signed version of its own (a copy of the trained one's files, in a run's artifacts)
        local = download_version(name, str(trained.version), Path(tmp) / "download")
        with mlflow.start_run(experiment_id=_experiment_id(local_stack), run_name="copy") as run:
            mlflow.log_artifacts(str(local), "model")
        copy = str(mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version)
        sign_version(local_stack, client, name, copy)
        assert load_version(local_stack, name, copy) is not None  # signed and intact: loads

        # then its model file is replaced in the artifact store by another (working) model
        train = windows["train"]
        other = build_pipeline(_forest(3)).fit(model_inputs(train), labels(train))
        swapped = Path(tmp) / "swap" / "model.skops"
        swapped.parent.mkdir()
        skops.io.dump(other, swapped)
        client.log_artifact(run.info.run_id, str(swapped), "model")
        again = download_version(name, copy, Path(tmp) / "again")
        assert (again / "model.skops").read_bytes() == swapped.read_bytes()  # the store changed

    altered = "digest mismatch: artifact altered after registration"
    with _nothing_deserialized(), pytest.raises(UntrustedModel, match=altered):
        load_version(local_stack, name, copy)
    # the version Safra trained is untouched and still loads
    assert load_version(local_stack, name, str(trained.version)) is not None


def test_without_the_right_verify_key_nothing_loads(
    local_stack: Settings, trained: TrainResult
) -> None:
    name, version = trained.model_name, str(trained.version)
    no_key = local_stack.model_copy(update={"model_verify_key": ""})
    _, other_public = signing.new_key_pair()
    other = local_stack.model_copy(update={"model_verify_key": other_public})
    with _nothing_deserialized():
        with pytest.raises(UntrustedModel, match="no verify key configured"):
            load_version(no_key, name, version)
        with pytest.raises(UntrustedModel, match="signed by another key"):
            load_version(other, name, version)
