"""Fixtures of the unit tests (no services)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def scored_request() -> dict[str, Any]:
    """One scored request as the API logs it (Avro ``scored_request`` v1; its ``features`` map
    holds a missing value)."""
    return {
        "id_requisicao": "req-1",
        "proponente_id": "p-1",
        "requested_at": 1_717_200_000_123,
        "model_name": "safra-credit",
        "model_version": "3",
        "probabilidade_inadimplencia": 0.12,
        "score": 880,
        "decisao": "APPROVE",
        "features": {"debt_to_income": 0.4, "serasa_score": None},
        "latency_ms": 12.5,
        "proponente_conhecido": True,
    }
