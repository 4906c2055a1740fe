"""Named groups of classes ('a+b'): one class whose probability is the sum of its members' and
whose CAM target is the logsumexp of their logits, on the Keras engine and the OpenVINO runtime
(skipped there only where OpenVINO is missing), and how names resolve."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from streamcam.backends import ops
from streamcam.core.errors import UsageError
from streamcam.core.labels import Labels
from streamcam.explain.cams import METHODS, normalize_maps
from streamcam.explain.cams.scorecam import ScoreCAM
from streamcam.explain.engine import CamEngine
from streamcam.models.linear_head import linear_head

from tiny_models import gap_dense_classifier, random_images
from videos import make_video

REPO = Path(__file__).resolve().parents[1]

GRADIENT_METHODS = ["gradcam", "hirescam", "xgradcam", "layercam", "gradcam++"]


@pytest.fixture(params=["keras", "openvino"])
def runtime(request, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # the OpenVINO conversion cache
    if request.param == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'streamcam[openvino]')")
    return request.param


def _engine(runtime: str, method: str = "gradcam"):
    classifier = gap_dense_classifier(num_classes=5, size=16, channels=6, seed=0)
    if runtime == "keras":
        return CamEngine(classifier, method, "cpu")
    from streamcam.explain.runtime.openvino_engine import OpenVinoEngine

    return OpenVinoEngine(classifier, method, "float32")


def test_a_groups_probability_is_the_sum_of_its_members_and_rankings_leave_it_out(runtime):
    engine = _engine(runtime)
    images = random_images(3, 16, seed=4)
    result = engine.explain(images, top_k=2, class_ids=["class_0+class_2", 1])
    group = engine.classifier.labels.num_classes
    assert result.class_ids[:, 2].tolist() == [group] * 3 and result.class_ids[:, 3].tolist() == [1] * 3
    probs = result.probabilities
    assert probs.shape == (3, 6)
    np.testing.assert_allclose(probs[:, group], probs[:, 0] + probs[:, 2], rtol=1e-5)
    np.testing.assert_allclose(probs[:, :5].sum(axis=1), 1.0, rtol=1e-5)
    # the top-k come from the model's classes only, even though the group outweighs its members
    assert (result.class_ids[:, :2] < group).all()
    np.testing.assert_allclose(engine.probabilities(images), probs, rtol=1e-4, atol=1e-6)
    # local evidence: the best cell of the members' summed per-cell probabilities, softmax(A_ij W + b)
    head = linear_head(engine.classifier)
    features = engine.feature_gradients(images, [0])[0]
    cells = features.reshape(3, -1, features.shape[-1]) @ head.weights + head.bias
    cell_probs = np.exp(cells - cells.max(axis=-1, keepdims=True))
    cell_probs /= cell_probs.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(result.local_probabilities[:, 2], (cell_probs[..., 0] + cell_probs[..., 2]).max(axis=1), rtol=1e-4)
    np.testing.assert_allclose(result.local_probabilities[:, 3], cell_probs[..., 1].max(axis=1), rtol=1e-4)


def test_a_groups_gradient_is_the_softmax_weighted_mix_of_its_members(runtime):
    """d logsumexp(logits_members) / dA = sum_c softmax_group_c * d logit_c / dA, checked against the
    members' own gradients and the logits from the tiny model itself."""
    engine = _engine(runtime)
    images = random_images(2, 16, seed=5)
    labels = engine.classifier.labels
    group = labels.ids("class_3+class_1")[0]
    _, grads = engine.feature_gradients(images, [3, 1, group])
    logits = engine.classifier.model.predict(images / 127.5 - 1.0, verbose=0)[:, [3, 1]]
    mix = np.exp(logits - logits.max(axis=1, keepdims=True))
    mix /= mix.sum(axis=1, keepdims=True)  # (N, 2)
    expected = mix[:, 0, None, None, None] * grads[:, 0] + mix[:, 1, None, None, None] * grads[:, 1]
    np.testing.assert_allclose(grads[:, 2], expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_a_groups_cam_is_the_method_on_the_mixed_gradient(runtime, method):
    """Each gradient method's map for the group equals the method applied to the members'
    softmax-mixed gradient, normalised: on both runtimes, against the Keras engine's own gradients."""
    engine = _engine(runtime, method)
    images = random_images(2, 16, seed=6)
    group = engine.classifier.labels.ids("class_0+class_4")[0]
    result = engine.explain(images, top_k=0, class_ids=[group])
    reference = CamEngine(gap_dense_classifier(num_classes=5, size=16, channels=6, seed=0), method, "cpu")
    features, grads = reference.feature_gradients(images, [0, 4])
    logits = reference.classifier.model.predict(images / 127.5 - 1.0, verbose=0)[:, [0, 4]]
    mix = np.exp(logits - logits.max(axis=1, keepdims=True))
    mix /= mix.sum(axis=1, keepdims=True)
    mixed = mix[:, 0, None, None, None] * grads[:, 0] + mix[:, 1, None, None, None] * grads[:, 1]
    expected = np.asarray(normalize_maps(METHODS[method]().cam(features, mixed)))
    np.testing.assert_allclose(result.cams[:, 0], expected, atol=1e-4)


def test_score_cam_weighs_channels_by_the_groups_summed_probability_and_eigen_cam_ignores_classes(runtime):
    images = random_images(2, 16, seed=7)
    eigen = _engine(runtime, "eigencam").explain(images, top_k=1, class_ids="class_1+class_2")
    np.testing.assert_allclose(eigen.cams[:, 0], eigen.cams[:, 1])
    method = ScoreCAM(max_channels=6, mask_batch=8)
    engine = _engine(runtime, method)
    result = engine.explain(images, top_k=0, class_ids=["class_1+class_2"])
    model = engine.classifier.model

    def summed(masked):  # the tiny model's softmax with the group's sum appended, outside any engine
        p = ops.softmax(model(masked), axis=-1)
        return ops.concatenate([p, p[:, 1:2] + p[:, 2:3]], axis=1)

    features = engine.feature_gradients(images, [1])[0]
    raw = method.cam_from_model(
        ops.convert_to_tensor(features),
        ops.convert_to_tensor(images / np.float32(127.5) - np.float32(1.0), "float32"),
        summed,
        np.full((2, 1), 5),
    )
    np.testing.assert_allclose(result.cams, np.asarray(normalize_maps(raw)), atol=1e-4)


def test_names_resolve_to_one_group_and_bad_groups_are_refused_with_one_line():
    labels = Labels()
    ids = labels.resolve("bicycle-built-for-two+mountain_bike,444,mountain_bike+bicycle-built-for-two")
    assert ids == [1000, 444]  # the same members in another order are the same group
    assert labels.name(1000) == "bicycle-built-for-two+mountain_bike"
    assert labels.members(1000) == (444, 671)
    assert labels.ids([1000, "444+671"]) == [1000, 1000]
    assert labels.group_matrix().shape == (1, 1000) and labels.group_matrix().sum() == 2
    for spec, words in [
        ("mountain_bike+no_such_class", "unknown class name 'no_such_class'"),
        ("444+bicycle-built-for-two", "at least two different classes"),
        ("mountain_bike+", "joined by '+'"),
        ("bicycle+mountain_bike", "only part of one"),
    ]:
        with pytest.raises(UsageError, match=re.escape(words)) as error:
            labels.resolve(spec)
        assert "\n" not in str(error.value)
    with pytest.raises(UsageError, match="out of range"):
        labels.ids([1001])


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "streamcam", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_a_cli_run_shows_the_group_in_the_frames_csv_and_the_summary(tmp_path):
    pd = pytest.importorskip("pandas")
    make_video(tmp_path / "clip.mp4", 4, size=(96, 64))
    group = "bicycle-built-for-two+mountain_bike"
    result = _cli("analyze", "clip.mp4", "--no-video", "--out-dir", "out", "--cam-classes", f"top1,{group},traffic_light", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = pd.read_csv(tmp_path / "out" / "clip.frames.csv")
    part = "bicycle_built_for_two_mountain_bike"
    for kind in ("p", "plocal", "peak_x", "peak_y"):
        assert f"{kind}_{part}" in frames.columns and f"{kind}_traffic_light" in frames.columns
    assert frames[f"p_{part}"].between(0, 1).all()
    assert group not in set(frames["class_name"])  # the top-1 is one of the model's classes
    ranked = pd.read_csv(tmp_path / "out" / "clip.predictions.csv")
    assert (ranked["class_id"] < 1000).all()
    summary = json.loads((tmp_path / "out" / "clip.summary.json").read_text())
    assert [named["class_name"] for named in summary["seen"]["named"]] == [group, "traffic_light"]


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("mountain_bike+no_such_class", "unknown class name 'no_such_class'"),
        ("mountain_bike+mountain_bike", "a group needs at least two different classes"),
    ],
)
def test_a_bad_group_is_refused_in_one_line_before_the_model_loads(tmp_path, spec, text):
    make_video(tmp_path / "clip.mp4", 2, size=(64, 48))
    result = _cli("analyze", "clip.mp4", "--no-video", "--out-dir", "out", "--cam-classes", spec, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_review_page_offers_the_group_by_name_and_ranks_the_models_classes_only():
    from streamcam.outputs.review import ReviewCollector
    from streamcam.outputs.review.page import build_data

    labels = Labels(4)
    group = labels.ids("class_1+class_2")[0]
    collector = ReviewCollector(tracked=[group], top_n=2)
    rng = np.random.default_rng(0)
    for i in range(6):
        probs = np.array([0.4, 0.3, 0.2, 0.1, 0.5], np.float32)  # the group's 0.5 outweighs every class
        frame = SimpleNamespace(index=i, pts=i, time_s=i / 25, rgb=rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        collector.add(frame, probs, np.array([0, group]), rng.random((2, 3, 3)).astype(np.float32), np.array([0.6, 0.7]))
    data, _ = build_data(collector, labels, "synthetic")
    names = {c["id"]: c["name"] for c in data["classes"]}
    assert names[group] == "class_1+class_2" and data["classes"][0]["id"] == group  # named first in the selector
    assert all(top[0][0] == 0 for top in (f["top"] for f in data["frames"]))  # the frame's top-1: class 0, not the group
    assert group not in {int(c) for f in data["frames"] for c, _ in f["top"]}
