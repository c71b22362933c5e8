"""The MLflow registry as Safra uses it: aliases, loading a version, scoring with it, and what
travels with a version.

Aliases, not stages: ``challenger`` (the newest trained candidate), ``champion`` (what serving
follows), ``previous-champion`` (what :func:`ml.promote.rollback` restores). The registry keeps no
alias history; :mod:`ml.promote` keeps the promotion log.

Every training run logs a **reference sample** of its training inputs
(:data:`REFERENCE_ARTIFACT`: model inputs, the label, the model's ``prob_default``):
:func:`log_reference_sample` writes it (:mod:`ml.train`), :func:`reference_sample` reads it back
for a registered version (the drift monitor, :mod:`ml.drift`; the API's reasons,
:mod:`serving.model_watcher`).

Only signed versions are loaded (:mod:`ml.signing`): :func:`sign_version` signs a registered
version's artifacts (training calls it right after registering); :func:`load_version` downloads a
version, verifies the signature of what it downloaded, and only then deserializes the pipeline
from that same local copy. Pipelines are saved with skops (:data:`SKOPS_TRUSTED_TYPES`), never
pickled, so loading runs no code of the artifact's choosing.
"""

from __future__ import annotations

import getpass
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import skops.io
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from skops.io.exceptions import UntrustedTypesFoundException

from ml import signing
from ml.signing import UntrustedModel
from safra.settings import Settings

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
MODEL_NAME = "safra-credit"
"""The registered model's default name."""
REFERENCE_ARTIFACT = "reference/train_sample.parquet"
"""Where a training run keeps its reference sample (an artifact path of the run)."""
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]
"""The types beyond skops' defaults that Safra's pipelines hold (ColumnTransformer,
SimpleImputer, OneHotEncoder, then HistGradientBoostingClassifier or RandomForestClassifier; or
QuantileTransformer, StandardScaler, PolynomialFeatures and LogisticRegression, all among skops'
defaults): what :func:`load_version` lets skops build, whatever a model's own MLmodel file says."""


def tracking_client(settings: Settings) -> MlflowClient:
    """A client of the settings' MLflow server; also points the fluent API (``mlflow.*``) at it."""
    os.environ.update(settings.mlflow_environment())  # the identity, for this process
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri
    )


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when absent (without changing the active one)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:  # created meanwhile by another process
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def version_by_alias(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version ``alias`` points to, or None when the alias (or the model) does not exist."""
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        # with MLflow's authentication on, the alias of a model that does not exist is a 403
        # (no permission can be found for it), not a 404
        if exc.error_code == "PERMISSION_DENIED" and not _exists(client, model_name):
            return None
        raise


def _exists(client: MlflowClient, model_name: str) -> bool:
    try:
        client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def version_run_id(client: MlflowClient, model_name: str, version: str) -> str | None:
    """The training run of ``model_name`` version ``version`` (its ``run_id``, else the
    ``run_id`` tag), None when the version records none."""
    meta = client.get_model_version(model_name, version)
    return meta.run_id or (meta.tags or {}).get("run_id") or None


def actor() -> str:
    """Who acts (trains, promotes): ``SAFRA_ACTOR`` (set by Airflow / CI), else the OS user."""
    explicit = os.environ.get("SAFRA_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def metric_key(*parts: str) -> str:
    """An MLflow-safe metric name of ``parts`` joined by dots (letters, digits, ``_ - . /`` and
    spaces; anything else becomes ``_``)."""
    raw = ".".join(parts)
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in raw)


def log_reference_sample(sample: pd.DataFrame) -> None:
    """Log ``sample`` as the active run's reference sample (:data:`REFERENCE_ARTIFACT`)."""
    artifact = Path(REFERENCE_ARTIFACT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / artifact.name
        sample.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(artifact.parent))


def reference_sample(client: MlflowClient, model_name: str, version: str) -> pd.DataFrame:
    """The reference sample of ``model_name`` version ``version``'s training run.

    LookupError (naming the version, the run and the cause) when the version records no run or
    its run has no sample; MlflowException when the registry cannot be read.
    """
    run_id = version_run_id(client, model_name, version)
    if not run_id:
        raise LookupError(
            f"{model_name} version {version} has no run: no reference sample to compare with"
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, REFERENCE_ARTIFACT, dst_path=tmp)
        except (MlflowException, OSError) as exc:
            raise LookupError(
                f"{model_name} version {version} (run {run_id}) has no reference sample "
                f"{REFERENCE_ARTIFACT!r}: {exc}"
            ) from exc
        return pd.read_parquet(path)


def download_version(model_name: str, version: str, dst: Path) -> Path:
    """The model directory of ``model_name`` version ``version``, downloaded into ``dst``
    (the fluent API's registry: :func:`tracking_client` points it)."""
    dst.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{model_name}/{version}", dst_path=str(dst)
    )
    return Path(local)


def sign_version(settings: Settings, client: MlflowClient, model_name: str, version: str) -> None:
    """Sign the artifacts of ``model_name`` version ``version`` as the registry serves them
    (downloaded, not the local copy that was logged) and record the signature in its tags.
    ValueError (naming the fix) when no usable signing key is configured."""
    key = signing.signing_key(settings)
    with tempfile.TemporaryDirectory(prefix="safra-sign-") as tmp:
        local = download_version(model_name, version, Path(tmp))
        tags = signing.sign(signing.digest(signing.manifest(local)), key, model_name, version)
    for name, value in tags.items():
        client.set_model_version_tag(model_name, version, name, value)
    logger.info(
        "%s version %s signed (digest %s..., key %s)",
        model_name,
        version,
        tags[signing.DIGEST_TAG][:16],
        tags[signing.KEY_ID_TAG],
    )


@contextmanager
def verified_version(settings: Settings, model_name: str, version: str) -> Iterator[Path]:
    """A local copy of ``model_name`` version ``version`` whose signature was verified with
    ``settings.model_verify_key`` (removed at the end of the block): what is loaded from it is
    what was verified. :class:`~ml.signing.UntrustedModel` naming the cause otherwise."""
    client = tracking_client(settings)
    tags = dict(client.get_model_version(model_name, version).tags or {})
    with tempfile.TemporaryDirectory(prefix="safra-model-") as tmp:
        local = download_version(model_name, version, Path(tmp))
        began = time.perf_counter()
        try:
            artifact_digest = signing.digest(signing.manifest(local))
        except ValueError as exc:
            raise UntrustedModel(model_name, version, str(exc)) from exc
        signing.verify(tags, artifact_digest, settings.model_verify_key, model_name, version)
        logger.info(
            "%s version %s: signature verified in %.3fs (key %s)",
            model_name,
            version,
            time.perf_counter() - began,
            tags.get(signing.KEY_ID_TAG),
        )
        yield local


def load_pipeline(model_dir: Path, model_name: str, version: str) -> Any:
    """The scikit-learn pipeline saved (skops) in the MLflow model directory ``model_dir``,
    loaded with :data:`SKOPS_TRUSTED_TYPES` only. :class:`~ml.signing.UntrustedModel` when it
    is not a skops model or holds other types."""
    flavor = Model.load(str(model_dir)).flavors.get("sklearn") or {}
    serialization = flavor.get("serialization_format")
    if serialization != mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS or "pickled_model" not in flavor:
        raise UntrustedModel(
            model_name,
            version,
            f"saved as {serialization or 'no scikit-learn model'}: Safra loads skops models only "
            "(no unpickling)",
        )
    try:
        return skops.io.load(model_dir / flavor["pickled_model"], trusted=SKOPS_TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        raise UntrustedModel(
            model_name, version, f"holds types outside Safra's trusted list: {exc}"
        ) from exc


def load_version(settings: Settings, model_name: str, version: str) -> Any:
    """The scikit-learn pipeline of ``model_name`` version ``version`` (predict_proba available),
    loaded only after its signature is verified (:func:`verified_version`), from the very files
    that were verified. :class:`~ml.signing.UntrustedModel` when it is not Safra's.

    Loading by version, not by alias, pins what was resolved: an alias moved meanwhile cannot
    swap the model under the caller.
    """
    with verified_version(settings, model_name, version) as local:
        return load_pipeline(local, model_name, version)


def predict_default_probability(model: Any, inputs: pd.DataFrame) -> np.ndarray:
    """Probability of default (class 1) of each row of ``inputs`` (``model_inputs`` output).

    Works with the scikit-learn pipeline (``predict_proba``) and with the pyfunc flavour logged by
    :mod:`ml.train` (whose ``predict`` is ``predict_proba``: a two-column array or frame).
    """
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(inputs), dtype=float)[:, 1]
    out = model.predict(inputs)
    arr = np.asarray(out, dtype=float)
    return arr[:, 1] if arr.ndim == 2 else arr
