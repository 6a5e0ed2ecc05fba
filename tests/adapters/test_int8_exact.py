"""The int8 models (the embedder and the cross reader) compute the same integers on every
x86 CPU.

onnxruntime's u8 x s8 kernels on AVX2 CPUs without VNNI add each pair of products in 16 bits
with saturation; VNNI CPUs add exactly. So the model's vectors (and every score built on them)
would differ between machines unless no pair can overflow: the export uses 7-bit weights.
These tests run the real quantized model on real texts, capture the inputs and outputs of each
of its integer kernels (MatMulInteger and QAttention), and compare them with an exact numpy
reference: a kernel that saturates fails here on the machine that has it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

TEXTS = [
    "Putin arrived in North Korea on Wednesday for his first visit in 24 years.",
    "When did Putin last visit North Korea before this trip?",
    "The Rhine flows 1,230 km from the Swiss Alps to the North Sea, through nine countries.",
    "ÄÖÜ 1234567890 !!! ??? ... -- the quick brown fox",
]
HEADS = 12  # all-MiniLM-L6-v2


@pytest.fixture(scope="module", params=["embedder", "cross reader"])
def quantized(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """An int8 model and its runner (with the tokenizer it reads with): the embedder's
    cached export, or the shipped cross reader."""
    import onnx

    if request.param == "cross reader":
        from rag.answering.reader.cross import CrossReader

        cross = CrossReader()
        return onnx.load(cross._path), cross
    runner = request.getfixturevalue("embedder")._int8  # the OnnxInt8 behind the default
    assert runner is not None, "the default embedding backend is onnx-int8"
    return onnx.load(runner._path), runner


def _weights(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _integer_nodes(model: Any) -> list[Any]:
    return [n for n in model.graph.node if n.op_type in ("MatMulInteger", "QAttention")]


def test_no_pair_of_weights_can_overflow_16_bits(quantized: tuple[Any, Any]) -> None:
    """255 * (|w_k| + |w_k+1|) <= 32767 for every pair along the inner dimension."""
    model, _ = quantized
    weights = _weights(model)
    nodes = _integer_nodes(model)
    # 6 layers: QAttention + 3 MatMulInteger each (the cross reader: its two heads too)
    assert len(nodes) in (24, 26), len(nodes)
    for node in nodes:
        w = weights[node.input[1]].astype(np.int32)
        zero = weights.get(node.input[3 if node.op_type == "MatMulInteger" else 7])
        if zero is not None:
            assert not np.any(zero), f"{node.name}: weights are symmetric (zero point 0)"
        pair = np.abs(w[:-1]) + np.abs(w[1:])
        assert int(pair.max()) * 255 <= 32767, f"{node.name}: {int(pair.max())}"


def _capture(model: Any, runner: Any, text: str) -> dict[str, np.ndarray]:
    """Every value feeding or leaving an integer kernel, for one text."""
    import onnx
    import onnxruntime as ort

    names = {v for n in _integer_nodes(model) for v in [*n.input, *n.output] if v}
    names -= {i.name for i in model.graph.initializer}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for name in sorted(names - known):
        probe.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options)
    encoding = runner.tokenizer.encode(text)
    columns = {
        "input_ids": encoding.ids,
        "attention_mask": encoding.attention_mask,
        "token_type_ids": encoding.type_ids,
    }
    feed = {i.name: np.asarray([columns[i.name]], dtype=np.int64) for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    return dict(zip(outputs, session.run(None, feed), strict=True))


def _exact(a: np.ndarray, a_zero: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (a.astype(np.int64) - a_zero.astype(np.int64)) @ w.astype(np.int64)


def _attention(qkv: np.ndarray) -> np.ndarray:
    """Multi-head self-attention over (tokens x 3*hidden) projections, no mask (one text)."""
    hidden = qkv.shape[-1] // 3
    size = hidden // HEADS
    q, k, v = (qkv[:, i * hidden : (i + 1) * hidden].reshape(-1, HEADS, size) for i in range(3))
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(size)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", scores, v).reshape(-1, hidden)


def test_every_integer_product_equals_an_exact_reference(quantized: tuple[Any, Any]) -> None:
    model, runner = quantized
    weights = _weights(model)
    for text in TEXTS:
        seen = _capture(model, runner, text)
        for node in _integer_nodes(model):
            if node.op_type == "MatMulInteger":
                a, w, a_zero = seen[node.input[0]], weights[node.input[1]], seen[node.input[2]]
                got = seen[node.output[0]].astype(np.int64)
                assert np.array_equal(got, _exact(a, a_zero, w)), f"{node.name} on {text!r}"
            else:  # QAttention: the integer QKV projection, then float attention
                a, w = seen[node.input[0]][0], weights[node.input[1]]
                bias = weights[node.input[2]]
                scale = seen[node.input[3]] * weights[node.input[4]]
                a_zero = seen[node.input[6]]
                qkv = _exact(a, a_zero, w).astype(np.float64) * scale + bias
                got = seen[node.output[0]][0].astype(np.float64)
                want = _attention(qkv)
                error = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
                # float32 attention against a float64 reference: ~5e-7 measured; one saturated
                # pair in the projection would move it by orders of magnitude more
                assert error < 1e-5, f"{node.name} on {text!r}: relative error {error:.2e}"


def _saturating(a: np.ndarray, a_zero: np.ndarray, w: np.ndarray) -> np.ndarray:
    """What an AVX2 u8 x s8 kernel without VNNI computes: products of the raw bytes summed
    in pairs with 16-bit saturation, then exactly; the zero point corrected afterwards."""
    a64, w64 = a.astype(np.int64), w.astype(np.int64)
    inner = a64.shape[-1] - a64.shape[-1] % 2
    pairs = a64[..., 0:inner:2, None] * w64[None, 0:inner:2] + (
        a64[..., 1:inner:2, None] * w64[None, 1:inner:2]
    )
    total = np.clip(pairs, -32768, 32767).sum(axis=-2)
    if inner < a64.shape[-1]:
        total += a64[..., -1:] @ w64[-1:]
    return total - a_zero.astype(np.int64) * w64.sum(axis=0)


def test_the_reference_catches_a_saturating_kernel(quantized: tuple[Any, Any]) -> None:
    """The comparison above can fail: with the model's own activations, 8-bit weights summed
    the AVX2 way differ from the exact product, and 7-bit ones (what we ship) do not."""
    model, runner = quantized
    weights = _weights(model)
    seen = _capture(model, runner, TEXTS[2])
    node = next(n for n in _integer_nodes(model) if n.op_type == "MatMulInteger")
    a, a_zero, w7 = seen[node.input[0]], seen[node.input[2]], weights[node.input[1]]
    assert np.array_equal(_saturating(a, a_zero, w7), _exact(a, a_zero, w7))
    w8 = np.clip(w7.astype(np.int32) * 2, -127, 127).astype(np.int8)  # an 8-bit range
    assert not np.array_equal(_saturating(a, a_zero, w8), _exact(a, a_zero, w8))
