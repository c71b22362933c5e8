"""The compiled model (ml.compiled): ONNX parity with the scikit-learn pipeline on simulator data
with gaps, unknown categories and extreme values; the hot path's numpy features equal the
pandas ones; a version without a faithful graph is tagged and served by the reference."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from ml import compiled
from ml.evaluate import decide
from ml.features import CATEGORICAL, FEATURE_COLUMNS, NUMERIC, model_input_columns, model_inputs
from ml.registry import SKOPS_TRUSTED_TYPES
from ml.train import build_pipeline, out_of_time_split
from pipelines.simulator import applications_frame, generate_applications, generate_outcomes
from serving.model_watcher import ModelWatcher, ServingModel
from serving.online_features import OnlineHistory
from serving.reasons import occlusion_columns, occlusion_frame, reference_values
from serving.scoring import Scorer

APPROVE_BELOW, DENY_ABOVE = 0.10, 0.30


def applications(n: int, seed: int) -> pd.DataFrame:
    """Simulator applications (+ label) with a history for ~60 % of them (the rest unknown)."""
    apps = generate_applications(n, seed=seed, start=datetime(2023, 1, 1), end=datetime(2024, 6, 1))
    frame = applications_frame(apps)
    frame["inadimplente"] = [o["inadimplente"] for o in generate_outcomes(apps, seed=seed)]
    rng = np.random.default_rng(seed)
    known = rng.random(n) < 0.6

    def hist(values: np.ndarray) -> np.ndarray:
        return np.where(known, values, np.nan)

    frame["hist_n_solicitacoes"] = hist(rng.integers(1, 12, n).astype(float))
    frame["hist_valor_medio"] = hist(rng.lognormal(11, 0.8, n))
    frame["hist_valor_max"] = frame["hist_valor_medio"] * 1.3
    frame["hist_valor_desvio"] = hist(rng.lognormal(9, 1, n))
    frame["hist_score_medio"] = hist(rng.uniform(300, 900, n))
    frame["hist_share_ibama"] = hist(rng.choice([0.0, 0.0, 0.5, 1.0], n))
    frame["hist_dias_desde_ultima"] = hist(rng.uniform(1, 900, n))
    frame["hist_inadimplencias_anteriores"] = hist(rng.integers(0, 3, n).astype(float))
    frame["hist_desfechos_conhecidos"] = hist(rng.integers(0, 6, n).astype(float))
    frame["hist_perfil_volatilidade"] = np.where(known, rng.choice(["BAIXA", "ALTA"], n), None)
    frame["hist_perfil_frequencia"] = np.where(known, rng.choice(["RARA", "REGULAR"], n), None)
    return frame


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    train, valid = out_of_time_split(applications(3_000, seed=4))
    return model_inputs(train), train["inadimplente"].astype(int).to_numpy(), model_inputs(valid)


@pytest.fixture(scope="module")
def linear(data: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> Any:
    x, y, _ = data
    return build_pipeline(LogisticRegression(C=0.03, max_iter=2_000, random_state=0)).fit(x, y)


def test_the_normal_quantile_function_matches_scipy() -> None:
    p = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 20_001), [1e-7, 0.075, 0.925, 0.5]])
    assert np.max(np.abs(compiled.ndtri(p) - norm.ppf(p))) < 1e-13


@pytest.mark.parametrize("n_quantiles", [2, 31, 32, 33, 100])
@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_the_quantile_graph_equals_scikit_learn_on_ties_constants_and_gaps(
    n_quantiles: int, distribution: str
) -> None:
    """The vectorized QuantileTransformer (two-level count over blocks of quantiles): columns with
    ties, a constant column, a gap column; values equal to quantiles, between, outside, NaN."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.preprocessing import QuantileTransformer

    rng = np.random.default_rng(n_quantiles)
    fit = np.column_stack(
        [
            rng.normal(size=500),
            rng.choice([0.0, 1.0, 1.0, 5.0], size=500),  # ties
            np.full(500, 7.0),  # constant
            np.where(rng.random(500) < 0.3, np.nan, rng.lognormal(size=500)),  # gaps
        ]
    )
    qt = QuantileTransformer(n_quantiles=n_quantiles, output_distribution=distribution).fit(fit)
    probe = np.concatenate([fit[:100], qt.quantiles_, qt.quantiles_ + 1e-9, qt.quantiles_ - 1e-9])
    probe = np.concatenate([probe, np.array([[np.nan] * 4, [-1e12] * 4, [1e12] * 4])])
    compiled._register_quantile_normal()
    graph = to_onnx(qt, initial_types=[("x", DoubleTensorType([None, 4]))], target_opset=17)
    (got,) = compiled.session(graph.SerializeToString()).run(None, {"x": probe})
    expected = qt.transform(probe)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.nanmax(np.abs(got - expected)) < 1e-12


def test_edge_rows_hold_gaps_unknown_categories_and_extremes(data) -> None:
    _, _, valid = data
    edges = compiled.edge_rows(valid)
    assert len(edges) == 200 and list(edges.columns) == list(FEATURE_COLUMNS)
    assert edges[list(NUMERIC)].isna().to_numpy().sum() > 0
    assert (edges[list(NUMERIC)].abs() == 1e12).to_numpy().sum() > 0
    values = set(edges[list(CATEGORICAL)].to_numpy().ravel().tolist())
    assert {None, "DESCONHECIDA", ""} <= values


def assert_parity(pipeline: Any, rows: pd.DataFrame) -> compiled.Parity:
    graph, result = compiled.compile_with_parity(pipeline, rows, APPROVE_BELOW, DENY_ABOVE)
    assert graph is not None and result.passed and result.tag == compiled.COMPILED_ONNX
    assert result.rows == len(rows) + 200
    # independently of compile_with_parity: every row, the bound and the decisions
    every = compiled.parity_inputs(rows)
    ours = compiled.predict(compiled.session(graph), {c: every[c] for c in FEATURE_COLUMNS})
    theirs = pipeline.predict_proba(every)[:, 1]
    assert np.max(np.abs(ours - theirs)) <= compiled.MAX_ABS_DIFF
    assert [decide(p, APPROVE_BELOW, DENY_ABOVE) for p in ours] == [
        decide(p, APPROVE_BELOW, DENY_ABOVE) for p in theirs
    ]
    return result


def test_the_linear_pipeline_compiles_with_parity(data, linear) -> None:
    """QuantileTransformer(normal) + imputer with indicators + scaler + one-hot + crosses +
    logistic regression: float64 end to end, so the figures agree to rounding."""
    result = assert_parity(linear, data[2])
    assert result.max_abs_diff < 1e-12


def test_the_random_forest_compiles_with_parity(data) -> None:
    x, y, valid = data
    forest = RandomForestClassifier(n_estimators=15, min_samples_leaf=20, random_state=0)
    assert_parity(build_pipeline(forest).fit(x, y), valid)


def test_gradient_boosting_is_reference_only_with_the_reason(data) -> None:
    """onnxruntime's TreeEnsembleClassifier has no double output: the graph does not run, the
    version is tagged and served by the reference."""
    x, y, valid = data
    hgb = build_pipeline(HistGradientBoostingClassifier(max_iter=10, random_state=0)).fit(x, y)
    graph, result = compiled.compile_with_parity(hgb, valid, APPROVE_BELOW, DENY_ABOVE)
    assert graph is None and not result.passed
    assert result.tag.startswith("reference-only: ")


def test_a_graph_that_differs_fails_parity_with_its_figures(data, linear) -> None:
    x, y, valid = data
    other = build_pipeline(LogisticRegression(C=1.0, max_iter=2_000)).fit(x, 1 - y)
    result = compiled.parity(other, compiled.to_onnx(linear), valid, APPROVE_BELOW, DENY_ABOVE)
    assert not result.passed and result.max_abs_diff > 0.1 and result.decision_mismatches > 0
    assert result.tag.startswith("reference-only: parity failed on")


def test_hot_path_columns_equal_model_inputs(data) -> None:
    """The numpy/dict features are the pandas ones, value for value, gaps included."""
    frame = applications(400, seed=8)
    records = frame.to_dict("records")
    rng = np.random.default_rng(1)
    for record in records[:150]:  # gaps of every kind, as requests and online rows hold them
        for column in rng.choice(sorted(record), size=5, replace=False):
            if column in ("uf", "renda_bruta_anual_declarada", "valor_solicitado_credito"):
                continue
            record[column] = [None, float("nan"), "12.5", "x"][int(rng.integers(0, 4))]
        record.pop("prazo_meses", None)
    expected = model_inputs(pd.DataFrame(records))
    got = model_input_columns(records)
    assert list(got) == list(FEATURE_COLUMNS)
    for column in NUMERIC:
        np.testing.assert_array_equal(got[column], expected[column].to_numpy())
    for column in CATEGORICAL:
        assert got[column].tolist() == expected[column].tolist()
    with pytest.raises(ValueError, match="uf"):
        model_input_columns([{"renda_bruta_anual_declarada": 1.0, "valor_solicitado_credito": 1.0}])


def test_occlusion_columns_equal_occlusion_frame(data) -> None:
    x, _, valid = data
    reference = reference_values(x)
    inputs = valid.head(20).reset_index(drop=True)
    rows = inputs.to_dict("records")
    frame, used = occlusion_frame(inputs, reference, rows=rows)
    columns, used_columns = occlusion_columns(
        {c: inputs[c].to_numpy() for c in FEATURE_COLUMNS}, rows, reference
    )
    assert used_columns == used
    pd.testing.assert_frame_equal(pd.DataFrame(columns), frame, check_dtype=False)


def test_the_api_answers_the_same_on_both_paths(data, linear) -> None:
    x, _, _ = data
    reference = reference_values(x)
    session = compiled.session(compiled.to_onnx(linear))
    fast = ServingModel("m", "1", None, reference=reference, session=session)
    slow = ServingModel("m", "1", linear, reference=reference)
    assert (fast.path, slow.path) == ("onnx", "referencia")
    known = {"hist_n_solicitacoes": 3.0, "hist_valor_medio": 60_000.0, "serasa_score": 610,
             "hist_inadimplencias_anteriores": 1.0, "hist_desfechos_conhecidos": 2.0,
             "cultura_principal": "SOJA", "hist_perfil_volatilidade": "ALTA"}  # fmt: skip
    bodies = [
        {"id_proponente": f"p-{i}", "uf": uf, "renda_liquida_mes": income,
         "valor_solicitado": amount, "prazo": 24}
        for i, (uf, income, amount) in enumerate(
            [("MT", 9_000.0, 80_000.0), ("BA", 2_000.0, 300_000.0), ("RS", 40_000.0, 5_000.0)]
        )
    ]  # fmt: skip
    answers = []
    for model in (fast, slow):
        watcher = ModelWatcher("m", lambda: "1", lambda _v, m=model: m, 60.0)
        watcher.poll()
        history = OnlineHistory(lambda ids: [known if i != "p-2" else None for i in ids], 5.0)
        scorer = Scorer(watcher, history, None, APPROVE_BELOW, DENY_ABOVE)
        batch = scorer.score_parsed([scorer.parse(b) for b in bodies])
        answers.append([{k: a[k] for k in ("probabilidade_inadimplencia", "decisao", "motivos",
                                           "proponente_conhecido")} for a in batch])  # fmt: skip
    assert answers[0] == answers[1]
    assert {a["decisao"] for a in answers[0]} >= {"APPROVE", "DENY"}


def test_the_serving_path_follows_the_tag_and_the_file(tmp_path: Path, linear) -> None:
    graph = tmp_path / compiled.ONNX_FILE
    graph.write_bytes(compiled.to_onnx(linear))
    with_graph, without = tmp_path / "with", tmp_path / "without"
    skops = {"serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
             "skops_trusted_types": SKOPS_TRUSTED_TYPES, "pip_requirements": []}  # fmt: skip
    mlflow.sklearn.save_model(linear, str(with_graph), extra_files=[str(graph)], **skops)
    mlflow.sklearn.save_model(linear, str(without), **skops)
    path, why = compiled.serving_path({compiled.COMPILED_TAG: "onnx"}, with_graph)
    assert path == with_graph / "extra_files" / compiled.ONNX_FILE and "paridade" in why
    failed = "reference-only: parity failed on 10 rows (max abs diff 0.2 > 1e-05 or 3 ...)"
    assert compiled.serving_path({compiled.COMPILED_TAG: failed}, with_graph) == (None, failed)
    path, why = compiled.serving_path({}, without)
    assert path is None and "antes da compilação" in why
