"""The scoring computation alone, by batch size: what coalescing requests buys.

    .venv/bin/python bench/scoring_batch_bench.py                 # batches 1, 8, 32, 64
    .venv/bin/python bench/scoring_batch_bench.py --batches 1,64 --repeats 50

No services: a gradient-boosting pipeline (the production candidate's settings) trained on
simulator data, an in-memory online store (every applicant known) and no Kafka. Times
``Scorer.score_parsed`` — features, the occluded copies, one prediction, decisions, reasons —
and ``ml.features.model_inputs`` of one row. Single-threaded OpenMP, as the API predicts.
Prints one JSON object: per batch size, the milliseconds per batch and per request.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before scikit-learn loads its OpenMP runtime

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _timed_ms(call: Any, repeats: int) -> float:
    call()  # warm
    began = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - began) * 1000.0 / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--train-rows", type=int, default=20_000)
    args = parser.parse_args()

    from ml.features import model_inputs
    from ml.train import build_pipeline, candidate_classifiers
    from pipelines.simulator import applications_frame, generate_applications, generate_outcomes
    from serving.model_watcher import ModelWatcher, ServingModel
    from serving.online_features import OnlineHistory
    from serving.reasons import reference_values
    from serving.scoring import Scorer

    apps = generate_applications(
        args.train_rows, seed=11, start=datetime(2023, 1, 1), end=datetime(2024, 12, 31)
    )
    y = np.array([o["inadimplente"] for o in generate_outcomes(apps, seed=11)], dtype=int)
    x = model_inputs(applications_frame(apps))
    began = time.perf_counter()
    classifier = candidate_classifiers(len(x))["hist_gradient_boosting"]
    pipeline = build_pipeline(classifier).fit(x, y)
    train_s = time.perf_counter() - began
    model = ServingModel("bench", "1", pipeline, reference=reference_values(x))
    watcher = ModelWatcher("bench", lambda: "1", lambda _v: model, 60.0)
    watcher.poll()
    known = {"hist_n_solicitacoes": 4.0, "hist_valor_medio": 80_000.0, "serasa_score": 640,
             "hist_inadimplencias_anteriores": 1.0, "hist_desfechos_conhecidos": 3.0,
             "cultura_principal": "SOJA", "area_total_hectares": 350.0}  # fmt: skip
    scorer = Scorer(watcher, OnlineHistory(lambda ids: [known] * len(ids), 5.0), None, 0.10, 0.30)
    rng = np.random.default_rng(3)
    bodies = [
        {
            "id_proponente": f"bench-{i}",
            "uf": str(rng.choice(["MT", "PR", "GO", "BA", "RS"])),
            "renda_liquida_mes": float(rng.lognormal(9.5, 0.7)),
            "valor_solicitado": float(rng.lognormal(11, 0.8)),
            "prazo": int(rng.choice([12, 24, 36])),
        }
        for i in range(max(int(b) for b in args.batches.split(",")))
    ]
    one_row = pd.DataFrame([{**known, "renda_bruta_anual_declarada": 150_000.0,
                             "valor_solicitado_credito": 50_000.0, "uf": "MT"}])  # fmt: skip
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
        "model": {
            "classifier": type(classifier).__name__,
            "train_rows": len(x),
            "trees": int(pipeline[-1].n_iter_),
            "train_s": round(train_s, 1),
        },  # fmt: skip
        "model_inputs_one_row_ms": round(_timed_ms(lambda: model_inputs(one_row), 200), 3),
        "score_parsed": {},
    }
    for size in (int(b) for b in args.batches.split(",")):
        batch = [scorer.parse(b) for b in bodies[:size]]
        ms = _timed_ms(lambda batch=batch: scorer.score_parsed(batch), args.repeats)
        result["score_parsed"][str(size)] = {
            "ms_per_batch": round(ms, 2),
            "ms_per_request": round(ms / size, 3),
        }
    result["machine"]["loadavg_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
