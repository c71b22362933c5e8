"""Training benchmark: fit time on N labelled rows and validation AUC against the best achievable.

    .venv/bin/python bench/train_bench.py                  # 1,000,000 rows, both candidates
    .venv/bin/python bench/train_bench.py --rows 200000 --n-jobs 2
    .venv/bin/python bench/train_bench.py --feast-only    # training-set build on the lakehouse

Generates ``--rows`` baseline simulator applications with their outcomes (in chunks, to bound
memory), splits them out of time (the latest 20 % validate), and runs
:func:`ml.train.fit_candidates` — the training code itself, without MLflow — timing each
candidate. ``best_achievable_auc`` is the hidden model's AUC on the same validation rows (the
simulator's ceiling); the goal is ``auc_fraction_of_best`` ≥ 0.98.

On 2 cores the random forest is the slow candidate: each of its trees sees a bootstrap sample of
at most ``RF_MAX_ROWS_PER_TREE`` rows (see :mod:`ml.train`); the gradient boosting sees all rows.
``--feast-training-set`` adds (``--feast-only`` prints only) the time Feast's point-in-time join
takes to build the training set from what the lakehouse holds now (Trino over the gold and
silver Iceberg tables, :func:`ml.training_set.build_training_set`).

Prints one JSON object. The machine may be shared: ``cpu_seconds`` and the load average say how
much of the wall clock was ours.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import time
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ml.train import RF_MAX_ROWS_PER_TREE, fit_candidates, out_of_time_split
from pipelines.simulator import best_achievable_auc, generate_applications, labelled_frame

GOAL_FRACTION = 0.98
CHUNK_ROWS = 200_000
START, END = datetime(2022, 1, 1), datetime(2025, 1, 1)


def labelled_applications(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` flat applications with ``inadimplente``, generated in time-ordered chunks."""
    chunks = max(1, -(-rows // CHUNK_ROWS))
    span = (END - START) / chunks
    frames = []
    for i in range(chunks):
        n = min(CHUNK_ROWS, rows - i * CHUNK_ROWS)
        apps = generate_applications(
            n, seed=seed + i, start=START + i * span, end=START + (i + 1) * span
        )
        frames.append(labelled_frame(apps, seed=seed + i))
        del apps
    return pd.concat(frames, ignore_index=True)


def feast_training_set() -> dict[str, Any]:
    """Build the Feast training set from the lakehouse as it is; rows and seconds."""
    from ml.feature_store import feature_store
    from ml.training_set import build_training_set
    from safra.settings import get_settings

    settings = get_settings()
    began = time.perf_counter()
    ts = build_training_set(feature_store(settings), settings)
    total = time.perf_counter() - began
    return {
        "rows": len(ts.frame),
        "rows_with_history": int(ts.frame["hist_n_solicitacoes"].notna().sum()),
        "point_in_time_join_seconds": round(ts.seconds, 2),
        "total_seconds": round(total, 2),
        "feature_service": ts.lineage["feature_service"],
        "load_avg": round(os.getloadavg()[0], 2),
    }


def run(rows: int, seed: int, n_jobs: int, valid_fraction: float) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    frame = labelled_applications(rows, seed)
    generation_s = time.perf_counter() - began
    train, valid = out_of_time_split(frame, valid_fraction=valid_fraction)
    del frame

    cpu_before = time.process_time()
    began = time.perf_counter()
    selection = fit_candidates(train, valid, n_jobs=n_jobs)
    train_s = time.perf_counter() - began
    cpu_s = time.process_time() - cpu_before

    ceiling = best_achievable_auc(valid, valid["inadimplente"].to_numpy())
    best = selection.best
    auc = best.metrics["roc_auc"]
    return {
        "bench": "train",
        "rows": rows,
        "train_rows": len(train),
        "valid_rows": len(valid),
        "default_rate_train": round(float(selection.y_train.mean()), 4),
        "n_jobs": n_jobs,
        "generation_seconds": round(generation_s, 1),
        "train_seconds": round(train_s, 1),
        "cpu_seconds": round(cpu_s, 1),
        "candidates": {
            name: {
                "fit_and_predict_seconds": round(fit.fit_seconds, 1),
                "valid_roc_auc": round(fit.metrics["roc_auc"], 4),
                "valid_f1_at_threshold": round(fit.metrics["f1_at_threshold"], 4),
                "params": {
                    k: v
                    for k, v in fit.pipeline.named_steps["classifier"].get_params().items()
                    if k
                    in (
                        "n_estimators",
                        "max_samples",
                        "min_samples_leaf",
                        "max_iter",
                        "learning_rate",
                        "max_leaf_nodes",
                    )
                },
                **(
                    {"n_iter": int(fit.pipeline.named_steps["classifier"].n_iter_)}
                    if hasattr(fit.pipeline.named_steps["classifier"], "n_iter_")
                    else {}
                ),
            }
            for name, fit in selection.candidates.items()
        },
        "winner": selection.winner,
        "rf_max_rows_per_tree": RF_MAX_ROWS_PER_TREE,
        "valid_auc": round(auc, 4),
        "valid_f1_at_threshold": round(best.metrics["f1_at_threshold"], 4),
        "valid_calibration_gap": round(best.metrics["calibration_gap"], 4),
        "best_achievable_auc": round(ceiling, 4),
        "auc_fraction_of_best": round(auc / ceiling, 4),
        "goal_fraction": GOAL_FRACTION,
        "meets_goal": bool(auc / ceiling >= GOAL_FRACTION),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cores": os.cpu_count(),
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--valid-fraction", type=float, default=0.2)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--feast-training-set", action="store_true")
    parser.add_argument("--feast-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("feast").setLevel(logging.WARNING)
    if args.feast_only:
        print(json.dumps({"bench": "feast_training_set", **feast_training_set()}, indent=2))
        return
    feast = feast_training_set() if args.feast_training_set else None
    out = run(args.rows, args.seed, args.n_jobs, args.valid_fraction)
    if feast is not None:
        out["feast_training_set"] = feast
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
