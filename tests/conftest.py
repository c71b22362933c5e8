"""Shared fixtures. Integration and e2e tests run against the real services of the tests' own
stack (:mod:`tests.own_stack`: ``.safra-test/``, the default ports + 20000), never the user's."""

from __future__ import annotations

import os

import pytest

from commands import stack
from safra.settings import Settings, get_settings
from tests import own_stack


def pytest_configure(config: pytest.Config) -> None:
    own_stack.apply()
    # MLflow's clients in this process: Safra's identity (without importing MLflow here: that
    # would import prometheus_client before BentoML sets up its multiprocess metrics)
    os.environ.update(get_settings().mlflow_environment())


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def local_stack(settings: Settings) -> Settings:
    """The test stack, up (idempotent: a stack already up is reused, a missing service started)."""
    stack.up(settings)
    return settings
