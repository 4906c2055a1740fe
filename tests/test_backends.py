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

from streamcam.core.errors import UsageError

from conftest import REPO

CHILD = REPO / "tests" / "backend_child.py"
SAMPLE = REPO / "sample_videos" / "sample.mp4"
# (height, width): a non-square --input-size (7 x 10 cells of 32 pixels) for every method, and
# the default input for Grad-CAM (each size is one more compilation per method: minutes on 2 cores)
SIZES = {"wide": (224, 320), "square": (224, 224)}
METHOD_SIZES = {"gradcam": ("wide", "square")}  # every other method: ("wide",)


def start_child(*args: str, backend: str = "jax") -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": backend}
    return subprocess.Popen(
        [sys.executable, str(CHILD), "--block-tensorflow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


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
def jax_suite(tmp_path_factory, default_classifier):
    """One JAX child for the whole module (Keras and JAX start once; see backend_child.suite): its
    explain results, analyze outputs and depthwise check, beside this process's TensorFlow results
    for the same frames. The child's exit status is asserted once, here."""
    tmp = tmp_path_factory.mktemp("backends")
    frames = sample_frames()
    arrays = {name: np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]) for name, (h, w) in SIZES.items()}
    np.savez(tmp / "frames.npz", **arrays)
    # Mostly compilation, one thread each: the JAX child and this process's TensorFlow run overlap.
    child = start_child("suite", str(tmp / "frames.npz"), str(SAMPLE), str(tmp))
    sys.path.insert(0, str(CHILD.parent))
    from backend_child import explain_all

    explain_all(str(tmp / "frames.npz"), str(tmp / "tensorflow.npz"))
    done = finish_child(child)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads((tmp / "suite.json").read_text())
    return {
        "outcome": outcome,
        "jax": dict(np.load(tmp / "explain.npz", allow_pickle=True)) if outcome["explain"] == "ok" else None,
        "tensorflow": dict(np.load(tmp / "tensorflow.npz", allow_pickle=True)),
        "analyze_dir": tmp / "analyze",
    }


@pytest.fixture
def jax_and_tensorflow_results(jax_suite):
    assert jax_suite["outcome"]["explain"] == "ok", jax_suite["outcome"]["explain"]
    return jax_suite["jax"], jax_suite["tensorflow"]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if not a.any() and not b.any():
        return 1.0  # both maps zeroed (a flat frame): the same answer
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.slow
def test_every_cam_method_gives_the_same_answers_on_both_backends(jax_and_tensorflow_results):
    from streamcam.explain.cams import METHODS

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
            worst[key] = min(
                _correlation(a, b) for a, b in zip(cams_jax.reshape(-1, *cams_jax.shape[2:]), cams_tf.reshape(-1, *cams_tf.shape[2:]))
            )
    assert min(worst.values()) > 0.999, worst


@pytest.mark.slow
def test_guided_backprop_and_feature_gradients_agree(jax_and_tensorflow_results):
    jax, tensorflow = jax_and_tensorflow_results
    for key in ("guided", "features", "feature_gradients"):
        assert jax[key].shape == tensorflow[key].shape, key
        assert np.abs(tensorflow[key]).max() > 0, key
        assert _correlation(jax[key], tensorflow[key]) > 0.999, key


@pytest.mark.slow
def test_analyze_on_jax_runs_without_tensorflow_and_honours_keras_backend(jax_suite):
    """KERAS_BACKEND=jax and no --backend: the CLI runs on JAX, with `import tensorflow` blocked."""
    assert jax_suite["outcome"]["analyze"] == 0, jax_suite["outcome"]["analyze"]
    out = jax_suite["analyze_dir"]
    summary = json.loads((out / "sample.summary.json").read_text())
    assert summary["backend"] == "jax" and summary["status"] == "complete"
    rows = (out / "sample.predictions.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == 3 * 30 and len({row.split(",")[0] for row in rows}) == summary["frames_analysed"] == 30
    with av.open(str(out / "sample.gradcam.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 30


def test_compile_for_shapes_serves_any_shape_on_both_backends(jax_suite):
    """One compiled maps call for any batch and map size, equal to the eager code: TensorFlow here,
    JAX in the child (backend_child.check_compile_for_shapes)."""
    from backend_child import check_compile_for_shapes

    check_compile_for_shapes()
    assert jax_suite["outcome"]["compile_for_shapes"] == "ok", jax_suite["outcome"]["compile_for_shapes"]


def test_backend_option_beats_keras_backend_and_doctor_names_it():
    done = run_child("cli", "doctor", "--backend", "jax", backend="tensorflow")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "backend jax" in done.stdout


@pytest.mark.slow
def test_jax_depthwise_as_shifted_sums_matches_xla_convolution(jax_suite):
    """backends/jax.py computes depthwise layers on the CPU as shifted sums; against lax's convolution
    (backend_child.check_depthwise, in the JAX child)."""
    assert jax_suite["outcome"]["depthwise"] == "ok", jax_suite["outcome"]["depthwise"]


def test_backend_choice_errors_are_one_line():
    from streamcam.backends import keras_module, resolve, use_backend

    keras_module()  # this process runs Keras on TensorFlow
    with pytest.raises(UsageError, match="already runs on tensorflow"):
        use_backend("jax")
    with pytest.raises(UsageError, match="unknown backend 'torch'"):
        resolve("torch")
    assert use_backend("tensorflow") == "tensorflow" and resolve("auto") == "tensorflow" and use_backend(None) == "tensorflow"


def test_cli_rejects_an_unknown_backend_before_loading_a_model(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "streamcam", "analyze", str(SAMPLE), "--backend", "theano", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: unknown backend 'theano'; choose one of auto, tensorflow, jax"]
    assert not any(tmp_path.iterdir())


def test_auto_takes_jax_for_one_frame_calls_and_tensorflow_for_batches():
    code = "from streamcam.backends import resolve; print(resolve('auto', 1), resolve('auto', 8), resolve('auto'))"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert done.stdout.split() == ["jax", "tensorflow", "tensorflow"], done.stderr
