"""Per-segment drift (ml.segment_drift) and the segments (ml.segments) on hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.segment_drift import effective_rows, holm, intra_farm_correlation, segment_drift
from ml.segments import segment_labels


def test_holm_adjusts_in_the_inputs_order() -> None:
    # sorted: 0.01*4 = 0.04, 0.03*3 = 0.09, 0.04*2 = 0.08 -> 0.09 (monotone), 0.5*1
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert len(holm([])) == 0


def test_effective_rows_follow_kish() -> None:
    farm = np.array([0, 0, 0, 1])  # sizes 3 and 1: size-weighted mean (9 + 1) / 4 = 2.5
    assert effective_rows(farm, rho=1.0) == pytest.approx(4 / 2.5)
    assert effective_rows(farm, rho=0.5) == pytest.approx(4 / 1.75)
    assert effective_rows(farm, rho=0.0) == pytest.approx(4.0)
    assert effective_rows(np.arange(5), rho=1.0) == pytest.approx(5.0)  # no farm repeats
    assert effective_rows(np.array([], dtype=int)) == 0.0


def test_intra_farm_correlation() -> None:
    farm = np.array([0, 0, 1, 1, 2, 2])
    assert intra_farm_correlation(np.array([1.0, 1.0, 5.0, 5.0, 9.0, 9.0]), farm) == 1.0
    # within-farm differences as large as between-farm ones: no correlation
    assert intra_farm_correlation(np.array([1.0, 6.0, 2.0, 5.0, 3.0, 4.0]), farm) == 0.0
    assert intra_farm_correlation(np.array([1.0, 2.0, 3.0]), np.arange(3)) == 0.0  # singletons


def test_segment_labels() -> None:
    frame = pd.DataFrame(
        {
            "uf": ["MT", "SP", None],
            "cultura_principal": ["SOJA", "CAFE", "MILHO"],
            "valor_solicitado_credito": [250_000.0, 249_999.0, np.nan],
            "prob_default": [0.05, 0.1000001, None],
        }
    )
    labels = segment_labels(frame)
    assert list(labels.columns) == ["uf", "cultura_principal", "uf_cultura", "faixa_valor",
                                    "faixa_score"]  # fmt: skip
    assert labels["uf_cultura"].tolist() == ["MT/SOJA", "SP/CAFE", None]
    assert labels["faixa_valor"].tolist() == ["250K_A_1_5M", "ATE_250K", None]
    assert labels["faixa_score"].tolist() == ["950_1000", "900_949", None]  # 950 and 900
    with pytest.raises(ValueError, match="unknown segment family"):
        segment_labels(frame, ["crop"])


def _frame(rng: np.random.Generator, uf: str, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uf": uf,
            "area_total_hectares": rng.uniform(1, 1000, n),  # one farm per row
            "x": rng.normal(shift, 1.0, n),
            "y": rng.normal(0.0, 1.0, n),
        }
    )


def test_the_shifted_segment_is_named_the_small_one_not_judged() -> None:
    rng = np.random.default_rng(7)
    reference = pd.concat([_frame(rng, "MT", 600), _frame(rng, "SP", 600), _frame(rng, "RJ", 50)])
    current = pd.concat(
        [_frame(rng, "MT", 600, shift=1.0), _frame(rng, "SP", 600), _frame(rng, "RJ", 40)]
    )
    result = segment_drift(
        reference, current, numeric=["x", "y"], categorical=[], alpha=0.01, min_rows=200,
        families=["uf"],
    )  # fmt: skip
    assert [s.name for s in result.drifted] == ["uf=MT"]
    assert [c.column for c in result.drifted[0].shifts] == ["x"]
    assert result.drifted[0].shifts[0].distance > 0.8
    assert result.judged == 2 and result.tests == 4
    assert [s.as_dict() for s in result.not_judged] == [
        {"segment": "uf=RJ", "rows_reference": 50, "rows_current": 40}
    ]
    summary = result.summary()
    assert summary["drifted_segments"] == ["uf=MT"] and summary["drift"] is True


def test_repeated_farms_weigh_once() -> None:
    """The same 20 farms seen 30 times each: a difference between two draws of 20 farms is
    noise, not drift; counted as 600 independent rows, it would look significant."""
    rng = np.random.default_rng(11)

    def farms(n_farms: int) -> pd.DataFrame:
        area = rng.uniform(1, 1000, n_farms)
        return pd.DataFrame({"uf": "MT", "area_total_hectares": np.repeat(area, 30)})

    reference, current = farms(20), farms(20)
    reference["x"], current["x"] = reference["area_total_hectares"], current["area_total_hectares"]
    kwargs = {"numeric": ["x"], "categorical": [], "alpha": 0.01, "min_rows": 200,
              "families": ["uf"]}  # fmt: skip
    assert segment_drift(reference, current, **kwargs).drifted == []
    assert segment_drift(reference, current, **kwargs).segments[0].effective_reference == (
        pytest.approx(20.0)
    )


def test_bad_parameters_are_refused() -> None:
    frame = pd.DataFrame({"uf": ["MT"], "x": [1.0]})
    with pytest.raises(ValueError, match="alpha"):
        segment_drift(frame, frame, numeric=["x"], categorical=[], alpha=0, min_rows=10)
    with pytest.raises(ValueError, match="min_rows"):
        segment_drift(frame, frame, numeric=["x"], categorical=[], alpha=0.01, min_rows=1)
