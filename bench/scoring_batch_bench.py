"""The scoring computation alone, compiled (ONNX) vs reference (scikit-learn), by batch size.

    .venv/bin/python bench/scoring_batch_bench.py                 # batches 1, 8, 32, 64
    .venv/bin/python bench/scoring_batch_bench.py --batches 1,64 --repeats 50
    .venv/bin/python bench/scoring_batch_bench.py --candidate hist_gradient_boosting

No services: the candidate's pipeline (default the logistic regression, the usual champion;
the production settings) trained on simulator data, an in-memory online store (every applicant
known) and no Kafka. For each path — ``onnx`` (:mod:`ml.compiled`: onnxruntime, one thread, on
numpy columns) and ``referencia`` (the scikit-learn pipeline on a frame) — times:

- ``prediction_one_row_with_reasons_ms``: one request's model inputs, its occluded copies and the
  one prediction of them all (the goal: <= 0.2 ms compiled);
- ``score_parsed``: the whole ``Scorer.score_parsed`` (features, occlusion, prediction,
  decisions, reasons, answers) per batch size, per batch and per request.

Single-threaded (OpenMP and onnxruntime), as the API predicts. Prints one JSON object.
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
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--candidate", default="logistic_regression")
    args = parser.parse_args()

    from ml import compiled
    from ml.features import FEATURE_COLUMNS, model_input_columns, model_inputs
    from ml.train import build_pipeline, candidate_classifiers
    from pipelines.simulator import applications_frame, generate_applications, generate_outcomes
    from serving.model_watcher import ModelWatcher, ServingModel
    from serving.online_features import OnlineHistory
    from serving.reasons import occlusion_columns, occlusion_frame, reference_values
    from serving.scoring import Scorer

    apps = generate_applications(
        args.train_rows, seed=11, start=datetime(2023, 1, 1), end=datetime(2024, 12, 31)
    )
    y = np.array([o["inadimplente"] for o in generate_outcomes(apps, seed=11)], dtype=int)
    x = model_inputs(applications_frame(apps))
    began = time.perf_counter()
    classifier = candidate_classifiers(len(x))[args.candidate]
    pipeline = build_pipeline(classifier).fit(x, y)
    train_s = time.perf_counter() - began
    began = time.perf_counter()
    graph, parity = compiled.compile_with_parity(pipeline, x.tail(2_000), 0.10, 0.30)
    compile_s = time.perf_counter() - began
    reference = reference_values(x)
    models = {"referencia": ServingModel("bench", "1", pipeline, reference=reference)}
    if graph is not None:
        models["onnx"] = ServingModel(
            "bench", "1", None, reference=reference, session=compiled.session(graph)
        )
    known = {"hist_n_solicitacoes": 4.0, "hist_valor_medio": 80_000.0, "serasa_score": 640,
             "hist_inadimplencias_anteriores": 1.0, "hist_desfechos_conhecidos": 3.0,
             "cultura_principal": "SOJA", "area_total_hectares": 350.0}  # fmt: skip
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
    one = {**known, "renda_bruta_anual_declarada": 150_000.0,
           "valor_solicitado_credito": 50_000.0, "prazo_meses": 24, "uf": "MT"}  # fmt: skip
    one_row = pd.DataFrame([one])

    def compiled_one() -> Any:
        model = models.get("onnx", models["referencia"])
        columns = model_input_columns([one])
        plain = {c: v.tolist() for c, v in columns.items()}
        rows = [{c: plain[c][0] for c in FEATURE_COLUMNS}]
        batch, _ = occlusion_columns(columns, rows, reference)
        return model.predict(batch)

    def reference_one() -> Any:
        inputs = model_inputs(one_row)
        frame, _ = occlusion_frame(inputs, reference)
        return models["referencia"].predict(frame)

    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
        "model": {
            "candidate": args.candidate,
            "classifier": type(classifier).__name__,
            "train_rows": len(x),
            "train_s": round(train_s, 1),
            "compiled": parity.tag,
            "parity_rows": parity.rows,
            "parity_max_abs_diff": parity.max_abs_diff,
            "compile_and_parity_s": round(compile_s, 1),
            "occluded_copies_one_row": len(reference_one()) - 1,
        },
        "model_inputs_one_row_ms": round(_timed_ms(lambda: model_inputs(one_row), 200), 3),
        "model_input_columns_one_row_ms": round(
            _timed_ms(lambda: model_input_columns([one]), 2_000), 4
        ),
        "prediction_one_row_with_reasons_ms": {
            "referencia": round(_timed_ms(reference_one, 200), 4),
        },
        "score_parsed": {},
    }
    if "onnx" in models:
        result["prediction_one_row_with_reasons_ms"]["onnx"] = round(
            _timed_ms(compiled_one, 5_000), 4
        )
    for path, model in models.items():
        watcher = ModelWatcher("bench", lambda: "1", lambda _v, m=model: m, 60.0)
        watcher.poll()
        history = OnlineHistory(lambda ids: [known] * len(ids), 5.0)
        scorer = Scorer(watcher, history, None, 0.10, 0.30)
        timings: dict[str, Any] = {}
        for size in (int(b) for b in args.batches.split(",")):
            batch = [scorer.parse(b) for b in bodies[:size]]
            ms = _timed_ms(lambda b=batch, s=scorer: s.score_parsed(b), args.repeats)
            timings[str(size)] = {
                "ms_per_batch": round(ms, 3),
                "ms_per_request": round(ms / size, 4),
            }
        result["score_parsed"][path] = timings
    result["machine"]["loadavg_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
