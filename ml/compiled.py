"""The compiled model: the fitted scikit-learn pipeline as ONNX, run by onnxruntime.

Why: a request's prediction through scikit-learn costs milliseconds of Python (the
ColumnTransformer on a pandas frame, a walk over the trees); the same arithmetic in onnxruntime
costs microseconds. The scikit-learn pipeline stays the reference: the ONNX graph is logged
beside it in the same MLflow model directory (:data:`ONNX_FILE`, covered by the version's
signature) only after :func:`parity` shows it gives the same probabilities.

- :func:`to_onnx` converts the whole pipeline (preprocessing included) with skl2onnx: one input
  per model input (:data:`ml.features.FEATURE_COLUMNS`): numerics ``double [N, 1]`` (float64
  end to end, so no threshold or quantile moves by a float32 rounding), categoricals
  ``string [N, 1]`` with an unknown value as :data:`MISSING_CATEGORY`. skl2onnx's
  QuantileTransformer converter knows the uniform output only; :func:`_convert_quantile`
  extends it to ``output_distribution="normal"``: the same interpolation, then the normal
  quantile function (Wichura's AS241, accurate to about 1e-16) and scikit-learn's clipping,
  and scikit-learn's rule for a constant column (its one value maps to the lower bound).
- :func:`parity` compares the two on rows the caller gives (training passes the whole
  validation holdout plus :func:`edge_rows`: gaps, unknown categories, extreme values) and
  decides: the largest absolute difference of probabilities at most :data:`MAX_ABS_DIFF` and
  the same decision for every row at the configured thresholds.
- :func:`session` opens a graph for serving: one thread, sequential (one worker per core, and
  a request's batch is a few rows); :func:`feeds` builds its inputs from model-input columns.

A version that fails parity (or whose conversion fails) carries the tag
``compiled = reference-only: <why>`` and is served through the scikit-learn pipeline.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.evaluate import decide
from ml.features import CATEGORICAL, FEATURE_COLUMNS, NUMERIC

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
"""The compiled graph's file name inside the logged MLflow model directory."""
COMPILED_TAG = "compiled"
"""Version (and run) tag: ``onnx`` when the graph passed parity, else ``reference-only: <why>``."""
COMPILED_ONNX = "onnx"
MAX_ABS_DIFF = 1e-5
"""Parity bound on the probabilities (compiled vs scikit-learn)."""
MISSING_CATEGORY = "None"
"""A categorical input's unknown value (None) as the string the graph receives: skl2onnx writes
a one-hot encoder's categories as ``str(category)``, so a None level learned at fit (an unknown
crop, an unknown applicant's profile) is ``"None"`` in the graph; where None was not learned, it
is an unknown level there as in scikit-learn (all zeros)."""
PROBABILITIES = "probabilities"
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


class CompileError(RuntimeError):
    """The pipeline has no faithful ONNX equivalent (a step does not convert)."""


# --- conversion --------------------------------------------------------------------------------


def _register_quantile_normal() -> None:
    """Replace skl2onnx's QuantileTransformer converter by one that also knows the normal output."""
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.quantile_transformer import (
        quantile_transformer_shape_calculator,
    )
    from sklearn.preprocessing import QuantileTransformer

    update_registered_converter(
        QuantileTransformer,
        "SklearnQuantileTransformer",
        quantile_transformer_shape_calculator,
        _convert_quantile,
        overwrite=True,
    )


def _register_imputer() -> None:
    """Replace skl2onnx's SimpleImputer converter: it drops ``add_indicator``'s columns and
    onnxruntime's ``Imputer`` has no double kernel; :func:`_convert_imputer` does both."""
    from skl2onnx import update_registered_converter
    from sklearn.impute import SimpleImputer

    update_registered_converter(
        SimpleImputer, "SklearnImputer", _imputer_shape, _convert_imputer, overwrite=True
    )


def _imputer_shape(operator: Any) -> None:
    op = operator.raw_operator
    (inp,) = operator.inputs
    indicators = len(op.indicator_.features_) if op.add_indicator else 0
    operator.outputs[0].type = copy.deepcopy(inp.type)
    operator.outputs[0].type.shape = [inp.get_first_dimension(), len(op.statistics_) + indicators]


def _convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """``Where(IsNaN(x), statistics, x)`` then, with ``add_indicator``, ``IsNaN`` of the columns
    that had gaps at fit (``indicator_.features_``) as 0/1 — scikit-learn's layout."""
    from onnx import TensorProto

    op = operator.raw_operator
    if op.strategy not in ("mean", "median", "most_frequent", "constant"):
        raise CompileError(f"SimpleImputer(strategy={op.strategy!r}) has no converter")
    if not (isinstance(op.missing_values, float) and np.isnan(op.missing_values)):
        raise CompileError("SimpleImputer compiles with missing_values=NaN only")
    (inp,) = operator.inputs
    double = inp.type.__class__.__name__ == "DoubleTensorType"
    dtype: Any = np.float64 if double else np.float32
    proto = TensorProto.DOUBLE if double else TensorProto.FLOAT
    statistics = np.asarray(op.statistics_, dtype=dtype)
    if np.isnan(statistics).any():
        if not op.keep_empty_features:
            raise CompileError("SimpleImputer drops empty features: not compiled")
        statistics = np.nan_to_num(statistics, nan=0.0)  # scikit-learn imputes them with 0

    def name(base: str) -> str:
        return str(scope.get_unique_variable_name(base))

    def node(op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or name(f"imp_{op_type.lower()}")
        container.add_node(
            op_type, inputs, [out], name=scope.get_unique_operator_name(op_type), **attrs
        )
        return out

    stats = name("imp_statistics")
    container.add_initializer(stats, proto, [1, len(statistics)], statistics.tolist())
    missing = node("IsNaN", [inp.full_name])
    features = list(op.indicator_.features_) if op.add_indicator else []
    if not features:
        node("Where", [missing, stats, inp.full_name], out=operator.outputs[0].full_name)
        return
    imputed = node("Where", [missing, stats, inp.full_name])
    idx = name("imp_features")
    container.add_initializer(idx, TensorProto.INT64, [len(features)], features)
    flags = node("Cast", [node("Gather", [missing, idx], axis=1)], to=proto)
    node("Concat", [imputed, flags], out=operator.outputs[0].full_name, axis=1)


def _register_polynomial() -> None:
    """Replace skl2onnx's PolynomialFeatures converter (two nodes per output column: 240 for
    the crop x region crosses, most of the graph's run time) by :func:`_convert_polynomial`."""
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.polynomial_features import (
        calculate_sklearn_polynomial_features,
    )
    from sklearn.preprocessing import PolynomialFeatures

    update_registered_converter(
        PolynomialFeatures,
        "SklearnPolynomialFeatures",
        calculate_sklearn_polynomial_features,
        _convert_polynomial,
        overwrite=True,
    )


def _convert_polynomial(scope: Any, operator: Any, container: Any) -> None:
    """Degree <= 2: every output column is the product of two columns of ``[X, 1]`` (a column
    and 1 for the linear terms, 1 and 1 for the bias, a column twice for a square): two Gathers
    and one Mul, in ``powers_``' order."""
    from onnx import TensorProto

    op = operator.raw_operator
    powers = np.asarray(op.powers_)
    if powers.size and powers.sum(axis=1).max() > 2:
        raise CompileError("PolynomialFeatures of degree > 2 has no converter here")
    (inp,) = operator.inputs
    double = inp.type.__class__.__name__ == "DoubleTensorType"
    proto = TensorProto.DOUBLE if double else TensorProto.FLOAT
    n_in = powers.shape[1]
    left, right = [], []
    for row in powers:
        factors = [c for c, p in enumerate(row) for _ in range(int(p))] + [n_in, n_in]
        left.append(factors[0])
        right.append(factors[1])

    def name(base: str) -> str:
        return str(scope.get_unique_variable_name(base))

    def node(op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or name(f"poly_{op_type.lower()}")
        container.add_node(
            op_type, inputs, [out], name=scope.get_unique_operator_name(op_type), **attrs
        )
        return out

    def const(values: Any, kind: int) -> str:
        arr = np.asarray(values)
        out = name("poly_const")
        container.add_initializer(out, kind, list(arr.shape), arr.ravel().tolist())
        return out

    first = node("Gather", [inp.full_name, const([0], TensorProto.INT64)], axis=1)
    ones = node("Add", [node("Mul", [first, const(0.0, proto)]), const(1.0, proto)])
    extended = node("Concat", [inp.full_name, ones], axis=1)
    a = node("Gather", [extended, const(left, TensorProto.INT64)], axis=1)
    b = node("Gather", [extended, const(right, TensorProto.INT64)], axis=1)
    node("Mul", [a, b], out=operator.outputs[0].full_name)


_AS241 = {
    "a": (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
          1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
          3.3430575583588128105e4, 2.5090809287301226727e3),
    "b": (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
          2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
          5.2264952788528545610e3),
    "c": (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
          3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
          2.27238449892691845833e-2, 7.74545014278341407640e-4),
    "d": (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
          1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
          1.05075007164441684324e-9),
    "e": (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
          2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
          2.71155556874348757815e-5, 2.01033439929228813265e-7),
    "f": (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
          7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
          2.04426310338993978564e-15),
}  # fmt: skip
"""Coefficients of Wichura's algorithm AS241 (PPND16), lowest degree first."""


def ndtri(p: np.ndarray) -> np.ndarray:
    """AS241 in numpy: the same arithmetic as the graph's, for tests (scipy is the reference)."""
    p = np.asarray(p, dtype=float)
    q = p - 0.5

    def poly(name: str, x: np.ndarray) -> np.ndarray:
        acc = np.zeros_like(x)
        for c in reversed(_AS241[name]):
            acc = acc * x + c
        return acc

    r1 = 0.180625 - q * q
    central = q * poly("a", r1) / poly("b", r1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(-np.log(np.where(q < 0, p, 1.0 - p)))
        near = poly("c", r - 1.6) / poly("d", r - 1.6)
        far = poly("e", r - 5.0) / poly("f", r - 5.0)
    tail = np.where(r <= 5.0, near, far)
    tail = np.where(q < 0, -tail, tail)
    return np.where(np.abs(q) <= 0.425, central, tail)


QUANTILE_BLOCK = 32
"""Quantiles per block of the graph's two-level count (a coarse count over each block's first
quantile, then a fine count inside the one block it points to): 2 x 32 comparisons per value
instead of ``n_quantiles`` for a flat count or ~10 dependent steps for a binary search."""


def _convert_quantile(scope: Any, operator: Any, container: Any) -> None:
    """scikit-learn's ``QuantileTransformer.transform`` (double inputs), all columns at once:
    per column ``0.5 * (interp(x, q, r) - interp(-x, -q[::-1], -r[::-1]))`` with numpy's
    ``interp`` arithmetic, then scikit-learn's bounds: ``x == q[-1]`` → 1 then ``x == q[0]`` → 0
    for the uniform output, ``x + 1e-7 > q[-1]`` → 1 then ``x - 1e-7 < q[0]`` → 0 for the normal
    one (the lower bound wins on a constant column), NaN kept; for the normal output, the clip to
    ``[1e-7 - eps, 1 - (1e-7 - eps)]`` (``ppf`` is monotone, so clipping before it equals
    scikit-learn's clipping after it) and AS241.

    The forward and the backward interpolations are one: ``[x, -x]`` (``[N, 2k]``) against a
    table of ``2k`` columns (``q`` and ``-q[::-1]``). ``interp`` needs ``count`` = how many of
    a column's quantiles are ``<= v`` (numpy's binary search finds ``j = count - 1``); the
    quantiles are sorted, so it is a coarse count over each block's first quantile then a fine
    count inside one block (:data:`QUANTILE_BLOCK`; padding is NaN, never ``<=``): a few
    broadcast nodes over ``[N, 2k, 32]`` instead of a binary search of ~10 dependent steps per
    interpolation — onnxruntime's cost here is per node, not per comparison.
    Written node by node: skl2onnx's own converter (uniform only) takes exponential time to
    build on more than a few quantiles."""
    from onnx import TensorProto
    from sklearn.preprocessing._data import BOUNDS_THRESHOLD

    op = operator.raw_operator
    if op.output_distribution not in ("uniform", "normal"):
        raise CompileError(f"QuantileTransformer({op.output_distribution!r}) has no converter")
    if operator.inputs[0].type.__class__.__name__ != "DoubleTensorType":
        raise CompileError("the QuantileTransformer is compiled for double inputs only")
    proto, i64 = TensorProto.DOUBLE, TensorProto.INT64

    def const(value: Any, kind: int = proto) -> str:
        dtypes: dict[int, Any] = {TensorProto.BOOL: np.bool_, i64: np.int64}
        arr = np.asarray(value, dtype=dtypes.get(kind, np.float64))
        name = scope.get_unique_variable_name("qt_const")
        container.add_initializer(name, kind, list(arr.shape), arr.ravel().tolist())
        return str(name)

    def node(op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        name = out or scope.get_unique_variable_name(f"qt_{op_type.lower()}")
        container.add_node(
            op_type, list(inputs), [name], name=scope.get_unique_operator_name(op_type), **attrs
        )
        return str(name)

    x = operator.inputs[0].full_name
    quantiles = np.asarray(op.quantiles_, dtype=np.float64)  # [n_quantiles, n_features]
    references = np.asarray(op.references_, dtype=np.float64)
    n_q, n_f = quantiles.shape
    if n_q < 2:
        raise CompileError("a QuantileTransformer of fewer than 2 quantiles is not compiled")
    # columns 0..k-1: forward (q, r); k..2k-1: backward (-q[::-1], -r[::-1])
    table = np.concatenate([quantiles.T, -quantiles[::-1].T], axis=0)  # [2k, n_q]
    refs = np.concatenate([np.tile(references, (n_f, 1)), np.tile(-references[::-1], (n_f, 1))])
    cols = 2 * n_f
    block = QUANTILE_BLOCK
    blocks = -(-n_q // block)
    padded = np.full((cols, blocks * block), np.nan)
    padded[:, :n_q] = table
    axis2 = const([2], i64)

    def count_le(tab: str, values: str, m: int) -> str:
        """How many entries of ``tab`` (``[..., m]``) are <= ``values`` (``[N, 2k, 1]``): a
        MatMul by ones (onnxruntime's ReduceSum of int64 is a slow generic loop)."""
        le = node("Cast", node("LessOrEqual", tab, values), to=proto)
        summed = node("MatMul", le, const(np.ones((m, 1))))
        return node("Cast", node("Squeeze", summed, axis2), to=i64)

    v = node("Concat", x, node("Neg", x), axis=1)  # [N, 2k]
    v3 = node("Unsqueeze", v, axis2)  # [N, 2k, 1]
    coarse = count_le(const(padded[:, ::block].reshape(1, cols, blocks)), v3, blocks)
    b = node("Max", node("Sub", coarse, const(1, i64)), const(0, i64))
    rows = node("Add", b, const(np.arange(cols) * blocks, i64))
    fine = node("Gather", const(padded.reshape(cols * blocks, block)), rows, axis=0)
    fine = count_le(fine, v3, block)
    count = node("Add", node("Mul", b, const(block, i64)), fine)
    j = node("Max", node("Min", node("Sub", count, const(1, i64)), const(n_q - 2, i64)),
             const(0, i64))  # fmt: skip
    lo = node("Add", j, const(np.arange(cols) * n_q, i64))
    hi = node("Add", lo, const(1, i64))
    q_flat, r_flat = const(table.ravel()), const(refs.ravel())
    q_lo, q_hi = node("Gather", q_flat, lo), node("Gather", q_flat, hi)
    r_lo, r_hi = node("Gather", r_flat, lo), node("Gather", r_flat, hi)
    slope = node("Div", node("Sub", r_hi, r_lo), node("Sub", q_hi, q_lo))
    inner = node("Add", node("Mul", slope, node("Sub", v, q_lo)), r_lo)
    inner = node("Where", node("Equal", v, q_lo), r_lo, inner)
    left = node("Equal", count, const(0, i64))
    right = node("Equal", count, const(n_q, i64))
    both = node("Where", right, const(refs[:, -1].reshape(1, cols)),
                node("Where", left, const(refs[:, 0].reshape(1, cols)), inner))  # fmt: skip
    forward = node("Slice", both, const([0], i64), const([n_f], i64), const([1], i64))
    backward = node("Slice", both, const([n_f], i64), const([cols], i64), const([1], i64))
    p = node("Mul", node("Sub", forward, backward), const(0.5))
    lowest, highest = const(quantiles[0]), const(quantiles[-1])
    if op.output_distribution == "uniform":
        upper, lower = node("Equal", x, highest), node("Equal", x, lowest)
    else:  # scikit-learn's bounds for the normal output: within BOUNDS_THRESHOLD of q[0], q[-1]
        upper = node("Greater", node("Add", x, const(BOUNDS_THRESHOLD)), highest)
        lower = node("Less", node("Sub", x, const(BOUNDS_THRESHOLD)), lowest)
    p = node("Where", upper, const(1.0), p)
    p = node("Where", lower, const(0.0), p)
    p = node("Where", node("IsNaN", x), x, p)
    if op.output_distribution == "uniform":
        node("Identity", p, out=operator.outputs[0].full_name)
        return
    low, high = BOUNDS_THRESHOLD - np.spacing(1), 1.0 - (BOUNDS_THRESHOLD - np.spacing(1))
    p = node("Where", node("Less", p, const(low)), const(low), p)  # NaN stays NaN
    p = node("Where", node("Greater", p, const(high)), const(high), p)
    _ndtri_nodes(p, operator.outputs[0].full_name, const, node)


def _ndtri_nodes(p: str, out: str, const: Any, node: Any) -> None:
    """AS241 of ``p`` into ``out``, one region per element: the region (central, near tail, far
    tail) picks the polynomials' argument and their coefficients (a Gather of a ``[3, 8]``
    table), the polynomials are sums of the argument's powers (built by doubling; Pow is slow):
    ~30 nodes whatever the shape, instead of a Horner chain of ~100 per region."""
    from onnx import TensorProto

    i64 = TensorProto.INT64
    numerators = np.array([_AS241["a"], _AS241["c"], _AS241["e"]])
    denominators = np.array([_AS241["b"], _AS241["d"], _AS241["f"]])
    q = node("Sub", p, const(0.5))
    r1 = node("Sub", const(0.180625), node("Mul", q, q))
    below = node("Less", q, const(0.0))
    smaller = node("Where", below, p, node("Sub", const(1.0), p))
    r = node("Sqrt", node("Neg", node("Log", smaller)))
    central = node("LessOrEqual", node("Abs", q), const(0.425))
    near = node("LessOrEqual", r, const(5.0))
    region = node("Where", central, const(0, i64), node("Where", near, const(1, i64),
                                                          const(2, i64)))  # fmt: skip
    shift = node("Gather", const([0.0, 1.6, 5.0]), region)
    arg = node("Where", central, r1, node("Sub", r, shift))
    # [1, t, ..., t^7] by doubling: [1, t], then x [1, t^2], then x [1, t^4] (Pow is slow)
    t1 = node("Unsqueeze", arg, const([-1], i64))
    t2 = node("Mul", t1, t1)
    t4 = node("Mul", t2, t2)
    powers = node("Add", node("Mul", t1, const([0.0, 1.0])), const([1.0, 0.0]))
    powers = node("Concat", powers, node("Mul", powers, t2), axis=-1)
    powers = node("Concat", powers, node("Mul", powers, t4), axis=-1)
    axis = const([-1], i64)
    num = node("ReduceSum", node("Mul", powers, node("Gather", const(numerators), region)),
               axis, keepdims=0)  # fmt: skip
    den = node("ReduceSum", node("Mul", powers, node("Gather", const(denominators), region)),
               axis, keepdims=0)  # fmt: skip
    ratio = node("Div", num, den)
    tail = node("Where", below, node("Neg", ratio), ratio)
    node("Where", central, node("Mul", q, ratio), tail, out=out)


def to_onnx(pipeline: Any) -> bytes:
    """The ONNX graph of ``pipeline`` (over :data:`FEATURE_COLUMNS`), serialized.
    :class:`CompileError` when a step does not convert."""
    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    _register_quantile_normal()
    _register_imputer()
    _register_polynomial()
    inputs: list[tuple[str, Any]] = [(c, DoubleTensorType([None, 1])) for c in NUMERIC]
    inputs += [(c, StringTensorType([None, 1])) for c in CATEGORICAL]
    try:
        model = convert(
            pipeline,
            initial_types=inputs,
            options={"zipmap": False},
            target_opset=TARGET_OPSET,
        )
    except CompileError:
        raise
    except Exception as exc:  # skl2onnx raises many types for an unsupported step
        raise CompileError(f"{type(exc).__name__}: {exc}") from exc
    _keep_probabilities_only(model)
    return bytes(model.SerializeToString())


def _keep_probabilities_only(model: Any) -> None:
    """Drop the graph's other outputs (the label) and the nodes only they need: onnxruntime
    runs every node of the graph whatever the outputs fetched, and the API reads the
    probabilities only."""
    graph = model.graph
    kept_outputs = [o for o in graph.output if o.name == PROBABILITIES]
    if not kept_outputs:
        raise CompileError(f"the graph has no {PROBABILITIES!r} output")
    needed = {PROBABILITIES}
    kept = []
    for n in reversed(graph.node):
        if any(o in needed for o in n.output):
            kept.append(n)
            needed.update(i for i in n.input if i)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    del graph.output[:]
    graph.output.extend(kept_outputs)
    used = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)


# --- running it --------------------------------------------------------------------------------


def session(model: bytes | str) -> Any:
    """An onnxruntime session of ``model`` (serialized graph or path): one intra-op and one
    inter-op thread, sequential execution, CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def category_array(values: Sequence[Any]) -> np.ndarray:
    """A categorical input column as the graph takes it: ``[N, 1]`` strings, None as
    :data:`MISSING_CATEGORY`."""
    out = np.array([MISSING_CATEGORY if v is None else str(v) for v in values], dtype=object)
    return out.reshape(-1, 1)


def feeds(columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The session's inputs from model-input columns (``name -> N values``, as
    :func:`ml.features.model_inputs` or :func:`ml.features.model_input_columns` give them)."""
    out: dict[str, np.ndarray] = {}
    for c in NUMERIC:
        out[c] = np.asarray(columns[c], dtype=np.float64).reshape(-1, 1)
    for c in CATEGORICAL:
        values = columns[c]
        out[c] = category_array(values.tolist() if isinstance(values, pd.Series) else values)
    return out


def predict(sess: Any, columns: Mapping[str, Any]) -> np.ndarray:
    """Probability of default of each row of ``columns`` by ``sess``."""
    (prob,) = sess.run([PROBABILITIES], feeds(columns))
    return np.asarray(prob, dtype=np.float64)[:, 1]


# --- parity ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parity:
    """Compiled vs reference on ``rows`` rows."""

    rows: int
    max_abs_diff: float
    decision_mismatches: int
    error: str | None = None

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.max_abs_diff <= MAX_ABS_DIFF
            and self.decision_mismatches == 0
        )

    @property
    def tag(self) -> str:
        """The ``compiled`` tag's value."""
        if self.passed:
            return COMPILED_ONNX
        if self.error is not None:
            return f"reference-only: {self.error}"[:250]
        return (
            f"reference-only: parity failed on {self.rows} rows (max abs diff "
            f"{self.max_abs_diff:.3g} > {MAX_ABS_DIFF:g} or {self.decision_mismatches} "
            "different decisions)"
        )


def parity(
    pipeline: Any,
    model: bytes,
    inputs: pd.DataFrame,
    approve_below: float,
    deny_above: float,
) -> Parity:
    """Compare ``model`` (the ONNX of ``pipeline``) with ``pipeline`` on ``inputs`` (model
    inputs): probabilities and decisions at the thresholds."""
    reference = np.asarray(pipeline.predict_proba(inputs), dtype=float)[:, 1]
    try:
        compiled = predict(session(model), {c: inputs[c] for c in FEATURE_COLUMNS})
    except Exception as exc:
        return Parity(len(inputs), float("inf"), len(inputs), f"{type(exc).__name__}: {exc}")
    diff = np.abs(compiled - reference)
    max_diff = float(np.max(diff)) if len(diff) else 0.0
    if np.isnan(diff).any():
        max_diff = float("inf")
    mismatches = sum(
        decide(float(a), approve_below, deny_above) != decide(float(b), approve_below, deny_above)
        for a, b in zip(compiled, reference, strict=True)
    )
    return Parity(len(inputs), max_diff, int(mismatches))


def edge_rows(inputs: pd.DataFrame, n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Rows the holdout may lack, made from ``inputs`` (model inputs): numerics with gaps
    (NaN), at zero, at ±1e12 and at the extremes seen; categoricals unknown (a level never
    trained on) or missing (None). Each of ``n`` rows changes a few columns of a sampled row."""
    rng = np.random.default_rng(seed)
    base = inputs.iloc[rng.integers(0, len(inputs), size=n)].reset_index(drop=True).copy()
    base = base.astype({c: object for c in CATEGORICAL})
    for i in range(n):
        for column in rng.choice(list(FEATURE_COLUMNS), size=4, replace=False):
            j = base.columns.get_loc(column)
            if column in CATEGORICAL:
                base.iat[i, j] = [None, "DESCONHECIDA", ""][int(rng.integers(0, 3))]
            else:
                known = inputs[column].dropna()
                choices = [np.nan, 0.0, -1e12, 1e12, -1.0]
                if len(known):
                    choices += [float(known.min()), float(known.max())]
                base.iat[i, j] = choices[int(rng.integers(0, len(choices)))]
    for column in NUMERIC:
        base[column] = base[column].astype("float64")
    return base


def parity_inputs(valid_inputs: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The rows training checks parity on: the whole holdout, then :func:`edge_rows`."""
    return pd.concat([valid_inputs, edge_rows(valid_inputs, seed=seed)], ignore_index=True)


def compile_with_parity(
    pipeline: Any,
    valid_inputs: pd.DataFrame,
    approve_below: float,
    deny_above: float,
) -> tuple[bytes | None, Parity]:
    """(the graph when it passed parity else None, the parity figures). Never raises for a
    pipeline that does not convert: its :class:`Parity` says why."""
    rows = parity_inputs(valid_inputs)
    began = datetime.now()
    try:
        model = to_onnx(pipeline)
    except CompileError as exc:
        logger.error("the pipeline does not compile to ONNX, served by the reference: %s", exc)
        return None, Parity(len(rows), float("inf"), len(rows), f"conversion failed: {exc}")
    result = parity(pipeline, model, rows, approve_below, deny_above)
    seconds = (datetime.now() - began).total_seconds()
    if result.passed:
        logger.info(
            "compiled to ONNX: parity on %d rows (holdout + edge cases), max abs diff %.3g, "
            "same decisions (%.1fs)", result.rows, result.max_abs_diff, seconds,
        )  # fmt: skip
        return model, result
    logger.error(
        "ONNX parity FAILED on %d rows: max abs diff %.3g, %d different decisions%s; this "
        "version will be served by the scikit-learn reference",
        result.rows, result.max_abs_diff, result.decision_mismatches,
        f" ({result.error})" if result.error else "",
    )  # fmt: skip
    return None, result


# --- serving -----------------------------------------------------------------------------------


def onnx_file(model_dir: Path) -> Path | None:
    """The ONNX graph logged in the MLflow model directory ``model_dir`` (an ``extra_files``
    entry of its scikit-learn flavour named :data:`ONNX_FILE`), None when it has none."""
    from mlflow.models import Model

    flavor = Model.load(str(model_dir)).flavors.get("sklearn") or {}
    for entry in flavor.get("extra_files") or []:
        path = model_dir / str(entry.get("path", ""))
        if path.name == ONNX_FILE and path.is_file():
            return path
    return None


def serving_path(tags: Mapping[str, str], model_dir: Path) -> tuple[Path | None, str]:
    """(the graph to serve or None, why): the graph when the version's ``compiled`` tag says it
    passed parity and its directory holds it; else None and the reason the reference serves."""
    tag = tags.get(COMPILED_TAG)
    path = onnx_file(model_dir)
    if tag == COMPILED_ONNX and path is not None:
        return path, "grafo ONNX com paridade verificada no treino"
    if tag is None:
        return None, "versão sem modelo compilado (treinada antes da compilação)"
    if tag == COMPILED_ONNX:
        return None, "a tag compiled=onnx não tem grafo no diretório do modelo"
    return None, tag
