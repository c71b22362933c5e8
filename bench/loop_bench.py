"""The loop's figures (JSON): loop time, model quality before and after the drift, demo time.

Runs `safra demo`'s story (commands.demo.Demo) on the running local stack (it starts what is
missing) and prints:

- ``loop_seconds``: from the first drifted message produced to the new champion answering
  (goal <= 300 s); ``null`` when the challenger was refused;
- ``auc_fraction_of_best``: on the drifted holdout, the old champion's and the new one's AUC as
  a fraction of the best achievable (the simulator's hidden model on the same rows); and the
  first champion's on its own (baseline) holdout;
- the load during the switch (requests, failures, answers per version) and ``demo_seconds``.

    .venv/bin/python bench/loop_bench.py [--scale full|ci] [--scenario bureau_recalibration]

On a fresh lakehouse (``SAFRA_DATA_DIR`` pointing at an empty folder, the stack stopped first)
the first champion is the baseline model; on a lakehouse that already went round the loop the
champion is already adapted to the drift and the challenger is usually refused.

`make demo`'s wall time on a fresh machine is `bench/stack_bench.py --cold`'s business; on a warm
one, time `make demo` itself.
"""

from __future__ import annotations

import argparse
import json
import os

from commands.demo import SCALES, Demo
from safra.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="ci", choices=sorted(SCALES))
    parser.add_argument("--scenario", default="bureau_recalibration")
    parser.add_argument("--seed", type=int, default=2026, help="the simulator's seed")
    args = parser.parse_args()
    summary = Demo(get_settings(), SCALES[args.scale], args.scenario, seed=args.seed).run()
    f = summary.figures
    promotion, retraining = f["promotion"], f["retraining"]
    best = retraining["best_achievable_auc"]
    print(json.dumps({
        "scale": args.scale,
        "scenario": args.scenario,
        "drift": {k: f["drift"][k] for k in ("drift", "drifted_share", "threshold",
                                             "drifted_columns")},
        "promotion": promotion["action"],
        "loop_seconds": f.get("loop_seconds"),
        "auc_fraction_of_best": {
            "first_champion_on_baseline_holdout": f["first_training"]["auc_fraction_of_best"],
            "old_champion_on_drifted_holdout": promotion["champion_metrics"]["roc_auc"] / best,
            "new_champion_on_drifted_holdout": promotion["challenger_metrics"]["roc_auc"] / best,
        },
        "load": f["load"],
        "stages_seconds": {s.name: round(s.seconds, 1) for s in summary.stages},
        "demo_seconds": summary.seconds,
        "load_average": os.getloadavg(),
    }, indent=2, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
