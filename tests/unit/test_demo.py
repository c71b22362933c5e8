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


def test_the_summary_names_the_drifted_segments_and_the_realized_figures() -> None:
    from commands.demo import _performance_line, _segments_line

    drift = {"drifted_segments": [f"uf_cultura={uf}/SOJA" for uf in ("MT", "GO", "MS")] * 3}
    assert _segments_line(drift) == (
        "uf_cultura=MT/SOJA, uf_cultura=GO/SOJA, uf_cultura=MS/SOJA, uf_cultura=MT/SOJA, "
        "uf_cultura=GO/SOJA, uf_cultura=MS/SOJA (+3 more)"
    )
    assert _segments_line({"drifted_segments": []}) == "none"
    assert _performance_line({"matured": False, "message": "no matured outcomes yet"}) == (
        "no matured outcomes yet"
    )
    performance = {
        "matured": True, "alarm": True, "reasons": ["a", "b", "c"], "reference_auc": 0.81,
        "window_start": "2025-01-01T00:00:00+00:00", "window_end": "2025-04-01T00:00:00+00:00",
        "sources": {"applications": {"metrics": {
            "n": 7000.0, "roc_auc": 0.8, "ks": 0.45, "brier": 0.1, "mean_prob": 0.12,
            "observed_rate": 0.15,
        }}},
    }  # fmt: skip
    assert _performance_line(performance) == (
        "7,000 matured applications (2025-01-01 .. 2025-04-01): AUC 0.800 (holdout 0.810), "
        "KS 0.450, Brier 0.100, predicted 0.120 vs realized 0.150 default rate; ALARM: a; b"
    )
