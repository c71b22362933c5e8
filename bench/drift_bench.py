"""Monitoring benchmark: the drift check's known error rates (JSON).

What :func:`ml.drift.compare` decides — population drift or a drifted segment — measured on the
simulator, whose scenarios say where the truth changed:

- **false-alarm rate**: ``--windows`` baseline windows (no drift), each with its own reference
  (a champion's 20,000-row training sample) and its own current sample (other seeds);
  goal ≤ 5 %;
- **detection rate** per scenario (``drought``, ``bureau_recalibration``,
  ``income_overstatement``): the same references against ``--windows`` fully drifted windows;
  goal ≥ 95 %; with the segments each one named most often;
- **detection delay** per scenario, in drifted applications: the check reads the newest
  ``--rows`` applications; once the world changes, each new application is drifted, so after
  ``k`` drifted applications the window holds ``k`` drifted and ``rows - k`` older baseline
  ones. The delay is the smallest ``k`` of :data:`DELAY_GRID` at which the check flags (found by
  bisection, detection being monotone in ``k``), over ``--delay-seeds`` seeds.

The model is fitted once on baseline data (what the check compares is its inputs and its
``prob_default``). Reading the data from Trino, the HTML report and MLflow are not timed
(``compare_seconds`` is the decision itself).

The realized-performance half of the monitoring (outcomes, months later: false alarms on
matured baseline windows, delay from a deteriorated world to the alarm) comes from
``bench/performance_bench.py`` (:func:`performance_bench.measure`), under
``realized_performance``; ``--no-performance`` leaves it out.

    .venv/bin/python bench/drift_bench.py [--windows 20] [--rows 20000] [--delay-seeds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.drift import compare, current_inputs
from ml.train import REFERENCE_SAMPLE_ROWS, fit_candidates
from pipelines.simulator import generate_applications, labelled_frame
from safra.settings import get_settings

SCENARIOS: tuple[str, ...] = ("drought", "bureau_recalibration", "income_overstatement")
DELAY_GRID: tuple[int, ...] = (250, 500, 1_000, 2_000, 3_000, 4_000, 6_000, 8_000, 12_000,
                               16_000, 20_000)  # fmt: skip


def applications(n: int, seed: int, scenario: str = "baseline") -> pd.DataFrame:
    apps = generate_applications(
        n, seed=seed, start=datetime(2024, 1, 1), end=datetime(2025, 1, 1), scenario=scenario
    )
    return labelled_frame(apps, seed, scenario)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Check:
    """The drift decision with the settings' parameters; counts and times its calls."""

    def __init__(self, rows: int) -> None:
        self.settings = get_settings()
        self.rows = rows
        self.seconds: list[float] = []

    def __call__(self, reference: pd.DataFrame, current: pd.DataFrame) -> Any:
        began = time.perf_counter()
        result = compare(
            reference, current, drift_share=self.settings.drift_share,
            alpha=self.settings.drift_alpha,
            min_segment_rows=self.settings.drift_min_segment_rows,
        )  # fmt: skip
        self.seconds.append(time.perf_counter() - began)
        return result


def delay(
    check: Check, reference: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame
) -> int | None:
    """The smallest k of DELAY_GRID (≤ rows) at which the newest ``rows`` applications — ``k``
    drifted ones after ``rows - k`` baseline ones — are flagged; None if never."""
    grid = [k for k in DELAY_GRID if k <= check.rows]

    def flags(k: int) -> bool:
        window = pd.concat([before.iloc[: check.rows - k], after.iloc[:k]], ignore_index=True)
        return bool(check(reference, window).drift)

    if not flags(grid[-1]):
        return None
    low, high = -1, len(grid) - 1  # grid[high] flags; grid[low] (if any) does not
    while high - low > 1:
        mid = (low + high) // 2
        if flags(grid[mid]):
            high = mid
        else:
            low = mid
    return grid[high]


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--rows", type=int, default=get_settings().drift_sample_rows)
    parser.add_argument("--delay-seeds", type=int, default=3)
    parser.add_argument("--no-performance", action="store_true")
    args = parser.parse_args()
    check = Check(args.rows)
    s = check.settings
    began = time.perf_counter()
    hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    model = fit_candidates(
        applications(8_000, 1), applications(2_000, 2), "inadimplente", candidates={"hgb": hgb}
    ).best.pipeline
    references = []
    for i in range(args.windows):
        references.append(current_inputs(applications(REFERENCE_SAMPLE_ROWS, 1_000 + i), model))
    progress(f"{args.windows} references of {REFERENCE_SAMPLE_ROWS:,} rows ready")

    alarms: list[dict[str, Any]] = []
    for i, reference in enumerate(references):
        result = check(reference, current_inputs(applications(args.rows, 2_000 + i), model))
        if result.drift:
            alarms.append({"window": i, "population": result.population_drift,
                           "segments": result.drifted_segments})  # fmt: skip
        progress(f"baseline window {i + 1}/{args.windows}: drift={result.drift}")
    out: dict[str, Any] = {
        "rows_reference": REFERENCE_SAMPLE_ROWS,
        "rows_current": args.rows,
        "drift_share": s.drift_share,
        "segment_alpha": s.drift_alpha,
        "segment_min_rows": s.drift_min_segment_rows,
        "false_alarms": {
            "windows": args.windows,
            "alarms": len(alarms),
            "rate": round(len(alarms) / args.windows, 4),
            "goal": "<= 0.05",
            "details": alarms,
        },
        "scenarios": {},
    }
    for offset, scenario in enumerate(SCENARIOS, start=1):
        detected, population, named = 0, 0, Counter[str]()
        for i, reference in enumerate(references):
            current = current_inputs(applications(args.rows, 10_000 * offset + i, scenario), model)
            result = check(reference, current)
            detected += bool(result.drift)
            population += bool(result.population_drift)
            named.update(result.drifted_segments)
        progress(f"{scenario}: detected in {detected}/{args.windows} windows")
        delays: list[int | None] = []
        for i in range(args.delay_seeds):
            before = current_inputs(applications(args.rows, 20_000 * offset + i), model)
            after = current_inputs(applications(args.rows, 30_000 * offset + i, scenario), model)
            delays.append(delay(check, references[i], before, after))
            progress(f"{scenario}: delay seed {i + 1}/{args.delay_seeds}: {delays[-1]}")
        found = [d for d in delays if d is not None]
        out["scenarios"][scenario] = {
            "windows": args.windows,
            "detected": detected,
            "detection_rate": round(detected / args.windows, 4),
            "goal": ">= 0.95",
            "population_drift": population,
            "segments_named_most": named.most_common(8),
            "delay_drifted_applications": {
                "per_seed": delays,
                "median": statistics.median(found) if found else None,
                "max": max(found) if len(found) == len(delays) else None,
                "grid": [k for k in DELAY_GRID if k <= args.rows],
            },
        }
    out["compare_seconds"] = {
        "checks": len(check.seconds),
        "median": round(statistics.median(check.seconds), 2),
        "max": round(max(check.seconds), 2),
    }
    if not args.no_performance:
        from performance_bench import measure  # bench/ is this script's folder

        progress("realized performance (bench/performance_bench.py)")
        out["realized_performance"] = measure(
            windows=args.windows, per_day=80.0, seed=7, window_days=s.performance_window_days
        )
    out["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
