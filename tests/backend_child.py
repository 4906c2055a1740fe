"""Run streamcam on one Keras backend in a child process (Keras fixes its backend per process).

    python tests/backend_child.py [--block-tensorflow] explain FRAMES.npz OUT.npz
    python tests/backend_child.py [--block-tensorflow] cli ARGS...
    python tests/backend_child.py [--block-tensorflow] suite FRAMES.npz VIDEO OUT_DIR

--block-tensorflow makes `import tensorflow` fail, as on a machine without it, and the child
prints TENSORFLOW_MODULES=<count> at exit: how many tensorflow modules were imported all the same.
The backend comes from KERAS_BACKEND (or --backend in the cli arguments).
explain: for each CAM method, the engine's results on each frame array of FRAMES.npz
(probabilities, class ids, CAMs, local probabilities), plus guided backprop and the target
layer's activations and gradients, into OUT.npz; tests/test_backends.py compares them with
TensorFlow's. cli: streamcam's command line with ARGS. suite: everything tests/test_backends.py
asks of one JAX process, so Keras and JAX start once: explain into OUT_DIR/explain.npz, then
`streamcam analyze VIDEO` into OUT_DIR/analyze/, then the depthwise and compile_for_shapes checks; OUT_DIR/suite.json
holds each step's outcome ('ok', an exit code, or the error).
"""

from __future__ import annotations

import importlib.abc
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np


class _NoTensorflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name} is blocked in this process (a machine without TensorFlow)")
        return None


def explain_all(frames_path: str, out_path: str, sizes: dict | None = None) -> None:
    """sizes: {method: names of the frame arrays to explain}; every other method gets 'wide'."""
    from streamcam.explain.cams import METHODS
    from streamcam.explain.engine import CamEngine
    from streamcam.models import load_classifier

    classifier = load_classifier()
    arrays = dict(np.load(frames_path))
    sizes = sizes or {"gradcam": ("wide", "square")}
    results = {}
    for method in METHODS:
        began = time.perf_counter()
        engine = CamEngine(classifier, method)
        for name in sizes.get(method, ("wide",)):
            images = arrays[name][:1] if engine.method.uses_model else arrays[name]  # Score-CAM: 128 model runs per image
            batch = engine.explain(images, top_k=2, class_ids=[817])  # 817: sports car, tracked
            results[f"{method}/{name}/probabilities"] = batch.probabilities
            results[f"{method}/{name}/class_ids"] = batch.class_ids
            results[f"{method}/{name}/cams"] = batch.cams
            results[f"{method}/{name}/local"] = batch.local_probabilities
        if method == "gradcam":
            images = arrays["wide"]
            results["guided"] = engine.guided_backprop(images[:1], np.array([[817]]))
            results["features"], results["feature_gradients"] = engine.feature_gradients(images[:1], [817])
        print(f"{method}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    results["backend"] = np.array(engine.backend_name)
    np.savez(out_path, **results)


def run_cli(args: list[str]) -> int:
    from streamcam.cli import app

    try:
        app(args, prog_name="streamcam")
    except SystemExit as exc:
        return exc.code or 0
    return 0


# (spatial size, kernel, stride, dilation, padding, depth multiplier): odd sizes, strides, dilation, 'valid'
DEPTHWISE_CASES = [
    ((13, 17), 3, 1, 1, "same", 1),
    ((13, 17), 5, 2, 1, "same", 1),
    ((12, 16), 3, 2, 1, "valid", 2),
    ((15, 15), 3, 1, 2, "same", 1),
    ((9, 11), 3, (2, 1), 1, "same", 3),
]


def check_depthwise() -> None:
    """backends/jax.py's depthwise layers as shifted sums, against lax's grouped convolution."""
    from jax import lax

    from streamcam.backends.jax import _shifted_depthwise

    rng = np.random.default_rng(0)
    for size, k, stride, dilation, padding, multiplier in DEPTHWISE_CASES:
        strides = stride if isinstance(stride, tuple) else (stride, stride)
        x = rng.normal(size=(2, *size, 4)).astype(np.float32)
        w = rng.normal(size=(k, k, 4, multiplier)).astype(np.float32)
        got = np.asarray(_shifted_depthwise(x, w, strides, padding, (dilation, dilation)))
        want = np.asarray(
            lax.conv_general_dilated(
                x,
                w.reshape(k, k, 1, 4 * multiplier),
                strides,
                padding.upper(),
                rhs_dilation=(dilation, dilation),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=4,
            )
        )
        assert got.shape == want.shape, (got.shape, want.shape)
        np.testing.assert_allclose(got, want, atol=1e-4)


def check_compile_for_shapes() -> None:
    """The active backend's compile_for_shapes (what the OpenVINO runtime runs its maps with): one
    compiled call, for any batch and map size, gives what the same code gives run eagerly."""
    from functools import partial

    from streamcam.backends import active, ops
    from streamcam.explain.cams import get_method
    from streamcam.explain.maps import pooled_linear_maps

    rng = np.random.default_rng(1)
    fn = partial(pooled_linear_maps, get_method("gradcam++"))
    compiled = active().compile_for_shapes(
        fn, [((None, None, None, 8), "float32"), ((None, 2, 8), "float32"), ((None, 2), "int32"), ((None,), "float32")]
    )
    for n, h, w in ((3, 5, 7), (1, 2, 9)):
        args = (
            rng.random((n, h, w, 8), dtype=np.float32),
            rng.normal(size=(n, 2, 8)).astype(np.float32),
            rng.integers(0, 10, (n, 2)).astype(np.int32),
            np.ones(n, np.float32),
        )
        got, want = ops.convert_to_numpy(compiled(*args)), ops.convert_to_numpy(fn(*args))
        assert got.shape == (n, 2, h, w), got.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def suite(frames_path: str, video: str, out_dir: str) -> None:
    out = Path(out_dir)
    outcome: dict[str, object] = {}
    steps = {
        "explain": lambda: explain_all(frames_path, str(out / "explain.npz")),
        # no --backend: KERAS_BACKEND (jax) must be honoured
        "analyze": lambda: run_cli(["analyze", video, "--every", "4", "--top-n", "3", "--out-dir", str(out / "analyze"), "--quiet"]),
        "depthwise": check_depthwise,
        "compile_for_shapes": check_compile_for_shapes,
    }
    for name, step in steps.items():
        try:
            result = step()
            outcome[name] = "ok" if result is None else result
        except Exception:
            outcome[name] = traceback.format_exc()
    (out / "suite.json").write_text(json.dumps(outcome))


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--block-tensorflow":
        sys.meta_path.insert(0, _NoTensorflow())
        argv = argv[1:]
    command, args = argv[0], argv[1:]
    code = 0
    if command == "explain":
        explain_all(*args)
    elif command == "suite":
        suite(*args)
    else:
        code = run_cli(args)
    count = sum(1 for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
    print(f"TENSORFLOW_MODULES={count}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
