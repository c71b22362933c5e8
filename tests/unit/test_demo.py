"""The demo's clock and requests (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commands.demo import Windows, short_requests
from ml.features import request_to_application
from pipelines.simulator import generate_applications
from safra.settings import Settings


def test_windows_follow_each_other_and_every_label_is_mature() -> None:
    today = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    w = Windows.ending(today)
    assert w.history_start < w.drift_start < w.drift_end < w.outcomes_until
    assert w.outcomes_until == datetime(2026, 11, 25, tzinfo=UTC)
    # outcomes arrive at most 365 days (+ a day of jitter) after the application
    assert w.outcomes_until - w.drift_end > timedelta(days=366)
    # and training's maturity cut keeps the whole drift window
    assert w.drift_end <= today - timedelta(days=Settings().label_maturity_days)


def test_short_requests_map_back_to_the_application_through_the_one_mapping() -> None:
    apps = generate_applications(20, 5, datetime(2026, 1, 1), datetime(2026, 2, 1))
    for app, request in zip(apps, short_requests(apps), strict=True):
        mapped = request_to_application(request)
        assert mapped["proponente_id"] == app["proponente_id"]
        assert mapped["uf"] == app["localizacao_propriedade"]["uf"]
        assert mapped["valor_solicitado_credito"] == app["valor_solicitado_credito"]
        # monthly income is sent to the cent: x 12 / 0.8 turns half a cent into 7.5 cents a year
        assert mapped["renda_bruta_anual_declarada"] == pytest.approx(
            app["renda_bruta_anual_declarada"], abs=0.075
        )
