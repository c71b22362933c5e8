"""Realized-performance benchmark: false alarms on baseline worlds, delay to the alarm after the
world deteriorates (JSON). Offline: the simulator and ml.performance, no services.

A model is fitted on baseline data (as bench/drift_bench.py does); its holdout ROC-AUC is the AUC
test's reference, as the champion's training run's is in ``safra performance``. Applications
arrive at ``--per-day`` a day (the demo's history: ~80), their outcomes when the simulator delays
them (repaid 60-365 days later, defaults 120-365), and the check
(:func:`ml.performance.evaluate_performance`, the settings' bounds) reads the matured window
(applications ``SAFRA_PERFORMANCE_WINDOW_DAYS`` before ``as_of − SAFRA_LABEL_MATURITY_DAYS``):

- **false alarms**: one check on each of ``--windows`` baseline worlds (seeds), each a full
  matured window with every outcome arrived;
- **delay**: a baseline world until day D, a scenario (``drought``, ``bureau_recalibration``)
  from D on; the check runs daily and weekly from D; the delay is the first alarm's ``as_of − D``
  (days), with the drifted applications in the matured set it judged. A check before D + maturity
  sees no drifted application: its alarms would be false ones (reported).

    .venv/bin/python bench/performance_bench.py [--windows 20] [--per-day 80]

Importable: :func:`baseline_model`, :func:`world`, :func:`false_alarms`, :func:`detection_delay`.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.drift import current_inputs
from ml.performance import Bounds, evaluate_performance
from ml.performance_check import bounds_from
from ml.train import fit_candidates
from pipelines.simulator import generate_applications, generate_outcomes, labelled_frame
from safra.settings import get_settings

D = datetime(2030, 1, 1, tzinfo=UTC)
"""The day the world changes (any date: the simulator has no calendar effects)."""
SCENARIOS: tuple[str, ...] = ("drought", "bureau_recalibration", "income_overstatement")
CADENCES: dict[str, int] = {"daily": 1, "weekly": 7}


def _applications(n: int, seed: int) -> pd.DataFrame:
    apps = generate_applications(n, seed=seed, start=datetime(2024, 1, 1), end=datetime(2025, 1, 1))
    return labelled_frame(apps, seed, "baseline")


def baseline_model(seed: int = 1) -> tuple[Any, float]:
    """(a model fitted on baseline applications, its holdout ROC-AUC)."""
    hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    best = fit_candidates(
        _applications(8_000, seed), _applications(2_000, seed + 1), "inadimplente",
        candidates={"hgb": hgb},
    ).best  # fmt: skip
    return best.pipeline, float(best.metrics["roc_auc"])


def _part(
    model: Any, n: int, seed: int, start: datetime, end: datetime, scenario: str
) -> pd.DataFrame:
    apps = generate_applications(n, seed=seed, start=start, end=end, scenario=scenario)
    outcomes = generate_outcomes(apps, seed, scenario)
    frame = pd.DataFrame(
        {
            "data_solicitacao": pd.to_datetime([a["data_solicitacao"] for a in apps], unit="ms",
                                               utc=True),
            "data_desfecho": pd.to_datetime([o["data_desfecho"] for o in outcomes], unit="ms",
                                            utc=True),
            "inadimplente": [o["inadimplente"] for o in outcomes],
        }
    )  # fmt: skip
    flat = labelled_frame(apps, seed, scenario)
    for column in ("uf", "cultura_principal", "tipo_pessoa", "valor_solicitado_credito"):
        frame[column] = flat[column].to_numpy()
    frame["prob_default"] = current_inputs(flat, model)["prob_default"].to_numpy()
    frame["drifted"] = scenario != "baseline"
    return frame


def world(
    model: Any, seed: int, per_day: float, start: datetime, end: datetime,
    scenario: str = "baseline", change_at: datetime | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Applications of ``[start, end)`` scored by ``model`` with their outcomes (and when each
    arrives): baseline until ``change_at``, ``scenario`` from it on."""
    change = change_at or end
    parts = [_part(model, int(per_day * (change - start).days), seed, start, change, "baseline")]
    if change < end:
        days = (end - change).days
        parts.append(_part(model, int(per_day * days), seed + 10_000, change, end, scenario))
    return pd.concat(parts, ignore_index=True)


def false_alarms(
    model: Any, reference_auc: float, bounds: Bounds, *, windows: int, per_day: float,
    maturity_days: int, window_days: int,
) -> dict[str, Any]:  # fmt: skip
    """One check on each of ``windows`` baseline matured windows (seeds 100, 101, ...)."""
    began = time.perf_counter()
    alarms, rows, reasons = 0, [], []
    start = D - timedelta(days=maturity_days + window_days)
    for seed in range(100, 100 + windows):
        frame = world(model, seed, per_day, start, D - timedelta(days=maturity_days))
        result = evaluate_performance(
            frame, as_of=D, maturity_days=maturity_days, bounds=bounds, window_days=window_days,
            reference_auc=reference_auc,
        )  # fmt: skip
        alarms += result.alarm
        rows.append(result.rows["labelled"])
        reasons += result.reasons
    return {
        "windows": windows,
        "alarms": alarms,
        "rate": alarms / windows,
        "matured_rows_per_window": int(np.mean(rows)),
        "reasons": reasons[:5],
        "seconds": round(time.perf_counter() - began, 1),
    }


def detection_delay(
    model: Any, reference_auc: float, bounds: Bounds, scenario: str, *, seed: int,
    per_day: float, maturity_days: int, window_days: int, horizon_days: int = 730,
) -> dict[str, Any]:  # fmt: skip
    """Days (and matured drifted applications) from the change at D to the first alarm, the
    check run daily and weekly from D."""
    began = time.perf_counter()
    frame = world(
        model, seed, per_day, D - timedelta(days=maturity_days + window_days),
        D + timedelta(days=horizon_days), scenario, change_at=D,
    )  # fmt: skip
    out: dict[str, Any] = {}
    for cadence, step in CADENCES.items():
        found: dict[str, Any] = {"alarm": False, "false_alarms_before_maturity": 0}
        for day in range(0, horizon_days + 1, step):
            as_of = D + timedelta(days=day)
            result = evaluate_performance(
                frame[frame["data_solicitacao"] <= pd.Timestamp(as_of)], as_of=as_of,
                maturity_days=maturity_days, bounds=bounds, window_days=window_days,
                reference_auc=reference_auc,
            )  # fmt: skip
            if not result.alarm:
                continue
            window = frame[
                (frame["data_solicitacao"] < pd.Timestamp(result.window_end))
                & (frame["data_solicitacao"] >= pd.Timestamp(result.window_start))
                & (frame["data_desfecho"] <= pd.Timestamp(as_of))
            ]
            drifted = int(window["drifted"].sum())
            if drifted == 0:  # nothing changed in what it judged: a false alarm
                found["false_alarms_before_maturity"] += 1
                continue
            found.update(
                alarm=True, delay_days=day, as_of=as_of.date().isoformat(),
                matured_drifted_applications=drifted, matured_rows=result.rows["labelled"],
                reasons=result.reasons[:3],
            )  # fmt: skip
            break
        out[cadence] = found
    out["seconds"] = round(time.perf_counter() - began, 1)
    return out


def measure(*, windows: int, per_day: float, seed: int, window_days: int) -> dict[str, Any]:
    """The whole benchmark (what :func:`main` prints; ``bench/drift_bench.py`` includes it)."""
    settings = get_settings()
    began = time.perf_counter()
    bounds = bounds_from(settings)
    model, reference = baseline_model()
    common = {
        "per_day": per_day, "maturity_days": settings.label_maturity_days,
        "window_days": window_days,
    }  # fmt: skip
    out: dict[str, Any] = {
        **common,
        "bounds": asdict(bounds),
        "reference_auc": round(reference, 4),
        "false_alarms": false_alarms(model, reference, bounds, windows=windows, **common),
        "detection": {
            scenario: detection_delay(model, reference, bounds, scenario, seed=seed, **common)
            for scenario in SCENARIOS
        },
    }
    out["seconds"] = round(time.perf_counter() - began, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--per-day", type=float, default=80.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--window-days", type=int, default=get_settings().performance_window_days)
    args = parser.parse_args()
    out = measure(
        windows=args.windows, per_day=args.per_day, seed=args.seed, window_days=args.window_days
    )
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
