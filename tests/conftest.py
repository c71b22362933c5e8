"""Shared fixtures. Integration and e2e tests run against the real services of the tests' own
stack (:mod:`tests.own_stack`: ``.safra-test/``, the default ports + 20000), never the user's."""

from __future__ import annotations

import pytest

from commands import stack
from safra.settings import Settings, get_settings
from tests import own_stack


def pytest_configure(config: pytest.Config) -> None:
    own_stack.apply()
    from ml.registry import tracking_client

    tracking_client(get_settings())  # MLflow's clients of this process: Safra's identity


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def local_stack(settings: Settings) -> Settings:
    """The test stack, up (idempotent: a stack already up is reused, a missing service started)."""
    stack.up(settings)
    return settings
