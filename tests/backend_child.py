"""Run streamcam on one Keras backend in a child process (Keras fixes its backend per process).

    python tests/backend_child.py [--block-tensorflow] explain FRAMES.npz OUT.npz
    python tests/backend_child.py [--block-tensorflow] cli ARGS...

--block-tensorflow makes `import tensorflow` fail, as on a machine without it, and the child
prints TENSORFLOW_MODULES=<count> at exit: how many tensorflow modules were imported all the same.
The backend comes from KERAS_BACKEND (or --backend in the cli arguments).
explain: for each CAM method, the engine's results on each frame array of FRAMES.npz
(probabilities, class ids, CAMs, local probabilities), plus guided backprop and the target
layer's activations and gradients, into OUT.npz; tests/test_backends.py compares them with
TensorFlow's. cli: streamcam's command line with ARGS.
"""

from __future__ import annotations

import importlib.abc
import sys
import time

import numpy as np


class _NoTensorflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name} is blocked in this process (a machine without TensorFlow)")
        return None


def explain_all(frames_path: str, out_path: str, sizes: dict | None = None) -> None:
    """sizes: {method: names of the frame arrays to explain}; every other method gets 'wide'."""
    from streamcam.cams import METHODS
    from streamcam.engine import CamEngine
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


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--block-tensorflow":
        sys.meta_path.insert(0, _NoTensorflow())
        argv = argv[1:]
    command, args = argv[0], argv[1:]
    code = 0
    if command == "explain":
        explain_all(*args)
    else:
        from streamcam.cli import app

        try:
            app(args, prog_name="streamcam")
        except SystemExit as exc:
            code = exc.code or 0
    count = sum(1 for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
    print(f"TENSORFLOW_MODULES={count}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
