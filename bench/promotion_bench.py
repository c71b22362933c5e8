"""Promotion benchmark: how often the rule promotes an equal-skill challenger (false promotions,
goal ≤ 5 %) and a challenger trained on the drifted world (goal ≥ 95 %), over simulator seeds.

    .venv/bin/python bench/promotion_bench.py                  # 20 seeds, the demo's scenario
    .venv/bin/python bench/promotion_bench.py --seeds 5 --scenario drought

For each seed, the demo's story at its ``full`` scale, in memory (no MLflow: the rule itself,
:func:`ml.promotion_rule.judge_pair`, with the settings' margin and the default guardrails):

- a baseline history (``--history`` applications over a year) and a drifted window
  (``--drift`` applications of ``--scenario`` over the next 180 days), all labelled;
- the champion: the gradient boosting (the demo's winner) trained on the history's older 80 %;
- **equal skill**: the same learner with another seed on the same rows, judged on the history's
  newest 20 % (neither trained on them) — a promotion here is a false promotion;
- **post-drift**: the same learner trained on the drift window's older 80 %, judged on its newest
  20 % (the demo's promotion holdout) — the promotion the loop exists for.

Prints one JSON object: the share promoted in each case, how (basis), the smallest F1 gain each
holdout could detect (median), and per-seed details.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml.comparison import smallest_detectable_f1_gain
from ml.features import model_inputs
from ml.promotion_rule import Guardrails, judge_pair
from ml.train import build_pipeline, candidate_classifiers, labels, out_of_time_split
from pipelines.simulator import generate_applications, labelled_frame
from safra.settings import Settings

DAY = timedelta(days=1)
DRIFT_END = datetime(2025, 11, 28, tzinfo=UTC)
LEARNER = "hist_gradient_boosting"


def _fit(train: pd.DataFrame, random_state: int, learner: str = LEARNER) -> Any:
    classifier = candidate_classifiers(len(train), random_state=random_state)[learner]
    return build_pipeline(classifier).fit(model_inputs(train), labels(train))


def _interval(interval: Any, digits: int) -> list[float]:
    return [round(v, digits) for v in (interval.estimate, interval.low, interval.high)]


def _judge(champion: Any, challenger: Any, holdout: pd.DataFrame, s: Settings) -> dict[str, Any]:
    inputs, y = model_inputs(holdout), labels(holdout)
    judged = judge_pair(
        inputs, y, champion.predict_proba(inputs)[:, 1], challenger.predict_proba(inputs)[:, 1],
        margin=s.promotion_margin, guardrails=Guardrails(), deny_above=s.deny_above,
        approve_below=s.approve_below,
    )  # fmt: skip
    c = judged.comparison
    return {
        "promoted": judged.verdict.promote,
        "basis": judged.verdict.basis,
        "rows": c.rows,
        "f1_gain": _interval(c.f1_gain, 4),
        "auc_gain": _interval(c.auc_gain, 4),
        "brier_gain": _interval(c.brier_gain, 5),
        "champion_calibration_gap": round(judged.champion_scores["calibration_gap"], 4),
        "challenger_calibration_gap": round(judged.challenger_scores["calibration_gap"], 4),
        "smallest_detectable_f1_gain": round(smallest_detectable_f1_gain(c, s.promotion_margin), 4),
    }  # fmt: skip


def run_seed(
    seed: int, history: int, drift: int, scenario: str, s: Settings, learner: str = LEARNER
) -> dict[str, Any]:
    drift_start = DRIFT_END - 180 * DAY
    past = labelled_frame(
        generate_applications(history, seed, drift_start - 360 * DAY, drift_start), seed
    )
    moved = labelled_frame(
        generate_applications(drift, seed + 2, drift_start, DRIFT_END, scenario=scenario),
        seed + 2,
        scenario,
    )
    past_train, past_holdout = out_of_time_split(past, valid_fraction=0.2)
    moved_train, moved_holdout = out_of_time_split(moved, valid_fraction=0.2)
    champion = _fit(past_train, random_state=42, learner=learner)
    return {
        "seed": seed,
        "equal_skill": _judge(
            champion, _fit(past_train, random_state=1000 + seed, learner=learner), past_holdout, s
        ),
        "post_drift": _judge(
            champion, _fit(moved_train, random_state=42, learner=learner), moved_holdout, s
        ),
    }


def _summary(runs: list[dict[str, Any]], case: str) -> dict[str, Any]:
    cases = [r[case] for r in runs]
    bases: dict[str, int] = {}
    for c in cases:
        if c["promoted"]:
            bases[c["basis"]] = bases.get(c["basis"], 0) + 1
    return {
        "promoted_share": round(float(np.mean([c["promoted"] for c in cases])), 3),
        "promoted": sum(c["promoted"] for c in cases),
        "by_basis": bases,
        "holdout_rows_median": statistics.median(c["rows"] for c in cases),
        "smallest_detectable_f1_gain_median": round(
            statistics.median(c["smallest_detectable_f1_gain"] for c in cases), 4
        ),
        "f1_gain_median": round(statistics.median(c["f1_gain"][0] for c in cases), 4),
        "f1_gain_significant": sum(c["f1_gain"][1] > 0 for c in cases),
        "brier_gain_significant": sum(c["brier_gain"][1] > 0 for c in cases),
        "champion_breaks_calibration": sum(
            c["champion_calibration_gap"] > Guardrails().calibration_bound for c in cases
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--history", type=int, default=30_000)
    parser.add_argument("--drift", type=int, default=15_000)
    parser.add_argument("--scenario", default="bureau_recalibration")
    parser.add_argument(
        "--learner", default=LEARNER, help="a candidate of ml.train.candidate_classifiers"
    )
    args = parser.parse_args()
    s = Settings()
    began = time.perf_counter()
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        runs.append(run_seed(seed, args.history, args.drift, args.scenario, s, args.learner))
        print(f"seed {seed}: done", flush=True, file=sys.stderr)
    equal, post = _summary(runs, "equal_skill"), _summary(runs, "post_drift")
    print(
        json.dumps(
            {
                "bench": "promotion",
                "scenario": args.scenario,
                "learner": args.learner,
                "seeds": args.seeds,
                "history": args.history,
                "drift": args.drift,
                "margin": s.promotion_margin,
                "equal_skill": equal,
                "post_drift": post,
                "goals": {
                    "equal_skill_promoted_share_max": 0.05,
                    "post_drift_promoted_share_min": 0.95,
                    "met": equal["promoted_share"] <= 0.05 and post["promoted_share"] >= 0.95,
                },
                "seconds": round(time.perf_counter() - began, 1),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
