"""CompiledShapes on a real OpenVINO model (a tiny graph built with OpenVINO's own ops): one
dynamic compile for any shape, a fixed-shape compile for a shape met again, the cap, and the
same outputs either way. Skipped only where OpenVINO is not installed (CI installs it)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'streamcam[openvino]')")

import openvino as ov

from streamcam.explain.runtime.compiled_shapes import _MAX_COUNTED, FIX_AFTER, FIX_UP_TO_PIXELS, CompiledShapes


def tiny_model():
    """x (N, H, W, 3) float32 -> features (N, H, W, 4) = relu(x @ W), logits (N, 4) = mean of the features."""
    from openvino import opset13 as ops

    x = ops.parameter(ov.PartialShape([-1, -1, -1, 3]), ov.Type.f32, name="x")
    weights = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    features = ops.relu(ops.matmul(x, ops.constant(weights), False, False))
    logits = ops.reduce_mean(features, ops.constant(np.array([1, 2], np.int64)), False)
    features.output(0).get_tensor().set_names({"features"})
    logits.output(0).get_tensor().set_names({"logits"})
    return ov.Model([features, logits], [x], "tiny"), weights


def batch(n: int, h: int = 5, w: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, h, w, 3)).astype(np.float32)


@pytest.fixture
def compiled():
    model, weights = tiny_model()
    return CompiledShapes(ov.Core(), model, {"INFERENCE_PRECISION_HINT": "f32"}, ("features", "logits"), max_fixed=2), weights


def test_a_shape_met_again_is_compiled_fixed_and_gives_the_same_outputs(compiled):
    shapes, weights = compiled
    x = batch(2)
    expected = np.maximum(x @ weights, 0)
    outputs = [shapes(x) for _ in range(FIX_AFTER + 1)]
    assert shapes.fixed_shapes == (x.shape,)
    assert not shapes._fixed[x.shape].compiled.input(0).get_partial_shape().is_dynamic
    for out in outputs:  # the dynamic compile's first answer and the fixed compile's later ones
        np.testing.assert_allclose(out["features"], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["logits"], expected.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_shapes_met_once_stay_on_the_dynamic_compile(compiled):
    shapes, _ = compiled
    for n, h, w in ((1, 5, 7), (3, 5, 7), (2, 9, 4)):
        assert shapes(batch(n, h, w))["features"].shape == (n, h, w, 4)
    assert shapes.fixed_shapes == ()


def test_at_most_max_fixed_shapes_are_compiled_the_rest_run_dynamic(compiled):
    shapes, weights = compiled
    for n in range(1, shapes.max_fixed + 3):
        for _ in range(FIX_AFTER):
            out = shapes(batch(n))
        np.testing.assert_allclose(out["features"], np.maximum(batch(n) @ weights, 0), rtol=1e-5, atol=1e-6)
    assert shapes.fixed_shapes == tuple(batch(n).shape for n in range(1, shapes.max_fixed + 1))


def test_a_large_shape_stays_on_the_dynamic_compile_however_often_it_comes(compiled):
    shapes, weights = compiled
    x = batch(1, FIX_UP_TO_PIXELS // 100 + 1, 100)
    for _ in range(FIX_AFTER + 1):
        out = shapes(x)
    assert shapes.fixed_shapes == ()
    np.testing.assert_allclose(out["logits"], np.maximum(x @ weights, 0).mean(axis=(1, 2)), rtol=1e-4, atol=1e-6)


def test_the_outputs_are_copies_that_the_next_call_leaves_alone(compiled):
    shapes, _ = compiled
    first = shapes(batch(2, seed=1))["logits"]
    kept = first.copy()
    shapes(batch(2, seed=2))
    np.testing.assert_array_equal(first, kept)


def test_the_shape_count_starts_again_after_many_new_shapes(compiled):
    """Ever-new sizes (images of every size) keep the count bounded; a size that then repeats is still fixed."""
    shapes, _ = compiled
    for w in range(1, _MAX_COUNTED + 2):
        shapes(batch(1, 2, w))
    assert len(shapes._seen) <= _MAX_COUNTED and shapes.fixed_shapes == ()
    for _ in range(FIX_AFTER):
        shapes(batch(1, 3, 3))
    assert shapes.fixed_shapes == ((1, 3, 3, 3),)


def test_a_compile_that_follows_another_fixes_only_shapes_the_other_has_met(compiled):
    """bf16+f32's f32 model: near-tie subsets of sizes the fast model never gets stay dynamic however
    often they come; the whole batch, which the fast model met first, is fixed once it repeats here,
    even where the fast model never fixes it (a run of near ties goes whole to the f32 model)."""
    fast, weights = compiled
    exact = CompiledShapes(ov.Core(), fast._model, {"INFERENCE_PRECISION_HINT": "f32"}, ("features",), max_fixed=1, follows=fast)
    fast(batch(4))  # the first batch: to the fast model
    for _ in range(FIX_AFTER + 1):
        exact(batch(1))  # a one-frame subset, again and again
        exact(batch(3))
    assert exact.fixed_shapes == () and fast.fixed_shapes == ()
    for _ in range(FIX_AFTER):
        out = exact(batch(4))  # whole batches of near ties
    assert exact.fixed_shapes == ((4, 5, 7, 3),) and fast.fixed_shapes == ()
    np.testing.assert_allclose(out["features"], np.maximum(batch(4) @ weights, 0), rtol=1e-5, atol=1e-6)
