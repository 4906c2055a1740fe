"""The TensorFlow and JAX backends: one engine, the same answers, and a JAX path without TensorFlow.

This process runs Keras on TensorFlow (conftest.py); the JAX side runs in child processes
(tests/backend_child.py), since Keras fixes its backend per process. Those children block
`import tensorflow`, as on a machine that has only JAX.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from conftest import REPO
from streamcam.errors import UsageError

CHILD = REPO / "tests" / "backend_child.py"
SAMPLE = REPO / "sample_videos" / "sample.mp4"
# (height, width): a non-square --input-size (7 x 10 cells of 32 pixels) for every method, and
# the default input for Grad-CAM (each size is one more compilation per method: minutes on 2 cores)
SIZES = {"wide": (224, 320), "square": (224, 224)}
METHOD_SIZES = {"gradcam": ("wide", "square")}  # every other method: ("wide",)


def start_child(*args: str, backend: str = "jax") -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": backend}
    return subprocess.Popen([sys.executable, str(CHILD), "--block-tensorflow", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def finish_child(child: subprocess.Popen, timeout: float = 600) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    finally:
        child.kill()
    assert "TENSORFLOW_MODULES=0" in stdout, stdout[-2000:] + stderr[-4000:]
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def run_child(*args: str, backend: str = "jax", timeout: float = 600) -> subprocess.CompletedProcess:
    return finish_child(start_child(*args, backend=backend), timeout)


def sample_frames(count: int = 3) -> list[np.ndarray]:
    with av.open(str(SAMPLE)) as container:
        frames = [f.to_ndarray(format="rgb24") for i, f in zip(range(40), container.decode(video=0)) if i % 13 == 0]
    return frames[:count]


@pytest.fixture(scope="module")
def jax_and_tensorflow_results(tmp_path_factory, default_classifier):
    """The explain child's results on JAX, and this process's on TensorFlow, for the same frames."""
    tmp = tmp_path_factory.mktemp("backends")
    frames = sample_frames()
    arrays = {name: np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
              for name, (h, w) in SIZES.items()}
    np.savez(tmp / "frames.npz", **arrays)
    # Mostly compilation, one thread each: the JAX child and this process's TensorFlow run overlap.
    child = start_child("explain", str(tmp / "frames.npz"), str(tmp / "jax.npz"))
    sys.path.insert(0, str(CHILD.parent))
    from backend_child import explain_all

    explain_all(str(tmp / "frames.npz"), str(tmp / "tensorflow.npz"))
    finish_child(child)
    jax = dict(np.load(tmp / "jax.npz", allow_pickle=True))
    tensorflow = dict(np.load(tmp / "tensorflow.npz", allow_pickle=True))
    return jax, tensorflow


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if not a.any() and not b.any():
        return 1.0  # both maps zeroed (a flat frame): the same answer
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_every_cam_method_gives_the_same_answers_on_both_backends(jax_and_tensorflow_results):
    from streamcam.cams import METHODS

    jax, tensorflow = jax_and_tensorflow_results
    assert str(jax["backend"]) == "jax" and str(tensorflow["backend"]) == "tensorflow"
    worst = {}
    for method in METHODS:
        for name in METHOD_SIZES.get(method, ("wide",)):
            h, w = SIZES[name]
            key = f"{method}/{name}"
            np.testing.assert_allclose(jax[f"{key}/probabilities"], tensorflow[f"{key}/probabilities"], atol=1e-4, err_msg=key)
            np.testing.assert_array_equal(jax[f"{key}/class_ids"], tensorflow[f"{key}/class_ids"], err_msg=key)
            np.testing.assert_allclose(jax[f"{key}/local"], tensorflow[f"{key}/local"], atol=1e-4, err_msg=key)
            cams_jax, cams_tf = jax[f"{key}/cams"], tensorflow[f"{key}/cams"]
            frames = 1 if method == "scorecam" else 3
            assert cams_jax.shape == cams_tf.shape == (frames, 3, -(-h // 32), -(-w // 32)), key
            assert cams_tf.max() > 0.99, key  # real maps, not zeroed ones
            worst[key] = min(_correlation(a, b) for a, b in zip(cams_jax.reshape(-1, *cams_jax.shape[2:]),
                                                                 cams_tf.reshape(-1, *cams_tf.shape[2:])))
    assert min(worst.values()) > 0.999, worst


def test_guided_backprop_and_feature_gradients_agree(jax_and_tensorflow_results):
    jax, tensorflow = jax_and_tensorflow_results
    for key in ("guided", "features", "feature_gradients"):
        assert jax[key].shape == tensorflow[key].shape, key
        assert np.abs(tensorflow[key]).max() > 0, key
        assert _correlation(jax[key], tensorflow[key]) > 0.999, key


def test_analyze_on_jax_runs_without_tensorflow_and_honours_keras_backend(tmp_path):
    """KERAS_BACKEND=jax and no --backend: the CLI runs on JAX, with `import tensorflow` blocked."""
    done = run_child("cli", "analyze", str(SAMPLE), "--every", "4", "--top-n", "3", "--out-dir", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "sample.summary.json").read_text())
    assert summary["backend"] == "jax" and summary["status"] == "complete"
    rows = (tmp_path / "sample.predictions.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == 3 * 30 and len({row.split(",")[0] for row in rows}) == summary["frames_analysed"] == 30
    with av.open(str(tmp_path / "sample.gradcam.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 30


def test_backend_option_beats_keras_backend_and_doctor_names_it():
    done = run_child("cli", "doctor", "--backend", "jax", backend="tensorflow")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "backend jax" in done.stdout


def test_jax_depthwise_as_shifted_sums_matches_xla_convolution():
    """backends/jax.py computes depthwise layers on the CPU as shifted sums; against lax's convolution."""
    code = """
import numpy as np, jax
from jax import lax
from streamcam.backends.jax import _shifted_depthwise
rng = np.random.default_rng(0)
for size, k, stride, dilation, padding, multiplier in [((13, 17), 3, 1, 1, "same", 1), ((13, 17), 5, 2, 1, "same", 1),
        ((12, 16), 3, 2, 1, "valid", 2), ((15, 15), 3, 1, 2, "same", 1), ((9, 11), 3, (2, 1), 1, "same", 3)]:
    strides = stride if isinstance(stride, tuple) else (stride, stride)
    x = rng.normal(size=(2, *size, 4)).astype(np.float32)
    w = rng.normal(size=(k, k, 4, multiplier)).astype(np.float32)
    got = np.asarray(_shifted_depthwise(x, w, strides, padding, (dilation, dilation)))
    want = np.asarray(lax.conv_general_dilated(x, w.reshape(k, k, 1, 4 * multiplier), strides, padding.upper(),
        rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=4))
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, atol=1e-4)
print("ok")
"""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


def test_backend_choice_errors_are_one_line():
    from streamcam.backends import keras_module, resolve, use_backend

    keras_module()  # this process runs Keras on TensorFlow
    with pytest.raises(UsageError, match="already runs on tensorflow"):
        use_backend("jax")
    with pytest.raises(UsageError, match="unknown backend 'torch'"):
        resolve("torch")
    assert use_backend("tensorflow") == "tensorflow" and resolve("auto") == "tensorflow" and use_backend(None) == "tensorflow"


def test_cli_rejects_an_unknown_backend_before_loading_a_model(tmp_path):
    done = subprocess.run([sys.executable, "-m", "streamcam", "analyze", str(SAMPLE), "--backend", "theano", "-o", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: unknown backend 'theano'; choose one of auto, tensorflow, jax"]
    assert not any(tmp_path.iterdir())


def test_auto_takes_jax_for_one_frame_calls_and_tensorflow_for_batches():
    code = "from streamcam.backends import resolve; print(resolve('auto', 1), resolve('auto', 8), resolve('auto'))"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert done.stdout.split() == ["jax", "tensorflow", "tensorflow"], done.stderr
