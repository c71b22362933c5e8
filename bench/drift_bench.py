"""Drift check benchmark: time of one comparison and the drifted share per scenario (JSON).

A small model is fitted on baseline data; the reference is a 5,000-row baseline sample scored by
it (what ml.train logs); each current sample has ``SAFRA_DRIFT_SAMPLE_ROWS`` rows (default
20,000) of one scenario. Times cover ml.drift.compare (Evidently) and writing the HTML report;
reading the data from Trino and logging to MLflow are not included.

    .venv/bin/python bench/drift_bench.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.drift import compare, current_inputs, write_report
from ml.train import REFERENCE_SAMPLE_ROWS, fit_candidates
from pipelines.simulator import generate_applications, labelled_frame
from safra.settings import get_settings


def applications(n: int, seed: int, scenario: str = "baseline") -> pd.DataFrame:
    apps = generate_applications(
        n, seed=seed, start=datetime(2024, 1, 1), end=datetime(2025, 1, 1), scenario=scenario
    )
    return labelled_frame(apps, seed, scenario)


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=settings.drift_sample_rows)
    args = parser.parse_args()
    hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    model = fit_candidates(
        applications(8_000, 1), applications(2_000, 2), "inadimplente", candidates={"hgb": hgb}
    ).best.pipeline
    reference = current_inputs(applications(REFERENCE_SAMPLE_ROWS, 3), model)
    out: dict[str, object] = {
        "rows_reference": len(reference),
        "rows_current": args.rows,
        "drift_share": settings.drift_share,
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for seed, scenario in enumerate(("baseline", "drought", "bureau_recalibration"), start=10):
            current = current_inputs(applications(args.rows, seed, scenario), model)
            began = time.perf_counter()
            result = compare(reference, current, drift_share=settings.drift_share)
            compared = time.perf_counter() - began
            write_report(result, Path(tmp), "bench", scenario)
            out["scenarios"][scenario] = {  # type: ignore[index]
                "drift": result.drift,
                "drifted_share": round(result.drifted_share, 4),
                "drifted_columns": result.drifted_columns,
                "max_column_distance": round(max(result.column_scores.values()), 4),
                "compare_seconds": round(compared, 2),
                "compare_and_report_seconds": round(time.perf_counter() - began, 2),
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
