"""Expectation suites as code, one module per layer.

Each layer module exposes ``expectations(...) -> dict[str, list[Expectation]]``: for every table
of the layer, the GX Core expectations it must meet. Every expectation carries in ``meta``:

- ``critical`` (bool): a failure stops the pipeline (the gate fails); otherwise it is a warning.
- ``why`` (str): the business reason, shown in the report.
- ``sensitive`` (bool, optional): its unexpected values may be PII and are never reported.
"""

from __future__ import annotations

from great_expectations.expectations import Expectation


def critical(expectation: Expectation, why: str, *, sensitive: bool = False) -> Expectation:
    """Mark ``expectation`` as critical: when it fails, the pipeline stops."""
    return _flag(expectation, critical=True, why=why, sensitive=sensitive)


def warning(expectation: Expectation, why: str, *, sensitive: bool = False) -> Expectation:
    """Mark ``expectation`` as a warning: a failure is reported, the pipeline goes on."""
    return _flag(expectation, critical=False, why=why, sensitive=sensitive)


def is_critical(expectation: Expectation) -> bool:
    return bool((expectation.meta or {}).get("critical"))


def _flag(expectation: Expectation, *, critical: bool, why: str, sensitive: bool) -> Expectation:
    expectation.meta = {
        **(expectation.meta or {}),
        "critical": critical,
        "why": why,
        "sensitive": sensitive,
    }
    return expectation
