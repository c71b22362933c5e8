"""The MLflow registry as Safra uses it: aliases, loading a version, scoring with it.

Aliases, not stages: ``challenger`` (the newest trained candidate), ``champion`` (what serving
follows), ``previous-champion`` (what :func:`ml.promote.rollback` restores). The registry keeps no
alias history; :mod:`ml.promote` keeps the promotion log.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from safra.settings import Settings

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
MODEL_NAME = "safra-credit"
"""The registered model's default name."""


def tracking_client(settings: Settings) -> MlflowClient:
    """A client of the settings' MLflow server; also points the fluent API (``mlflow.*``) at it."""
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
        raise


def load_version(model_name: str, version: str) -> Any:
    """The scikit-learn pipeline of ``model_name`` version ``version`` (predict_proba available).

    Loading by version, not by alias, pins what was resolved: an alias moved meanwhile cannot
    swap the model under the caller.
    """
    return mlflow.sklearn.load_model(f"models:/{model_name}/{version}")


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
