"""Shared fixtures. Integration and e2e tests run against the real local stack."""

from __future__ import annotations

import pytest

from commands import stack
from safra.settings import Settings, get_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def local_stack(settings: Settings) -> Settings:
    """The local stack, up (idempotent: a stack already up is reused, a missing service started)."""
    stack.up(settings)
    return settings
