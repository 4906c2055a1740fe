"""explain/runtime/precision.py: bf16 with its near ties run again in f32 (what --precision auto runs
on a CPU with native bf16), as a policy on real arrays and inside the OpenVINO engine."""

from __future__ import annotations

import numpy as np
import pytest

from streamcam.explain.runtime.precision import EXACT_BATCH_SHARE, NearTieRecheck, near_ties


def test_near_ties_are_frames_whose_top_two_logits_are_closer_than_the_margin():
    logits = np.array([[3.0, 2.9, 0.0], [3.0, 1.0, 2.0], [0.0, 0.0, 0.0], [-1.0, -5.0, -1.4]])
    assert near_ties(logits, 0.5).tolist() == [True, False, True, True]
    assert near_ties(logits, 0.3).tolist() == [True, False, True, False]
    assert near_ties(logits[:, :1], 0.5).tolist() == [False] * 4  # one class: never a tie


class Model:
    """A real function of its input: logits (and one more output) from x, plus an offset; counts its frames."""

    def __init__(self, offset: float = 0.0):
        self.offset, self.frames = offset, 0

    def __call__(self, x):
        self.frames += len(x)
        logits = x[:, :3] + self.offset * np.array([1.0, -1.0, 0.0])  # the 'fast' model leans towards class 0
        return {"logits": logits.copy(), "features": x * 10}


def test_near_ties_take_the_exact_models_outputs_and_clear_frames_keep_the_fast_ones():
    exact, fast = Model(), Model(offset=0.3)
    run = NearTieRecheck(fast, exact, margin=1.0)
    x = np.array([[5.0, 0.0, 0.0, 1.0], [1.0, 1.2, 0.0, 2.0], [0.0, 0.0, 9.0, 3.0], [2.0, 2.5, 0.0, 4.0]])
    out = run(x)
    # frames 1 and 3: fast's margins 0.4 and 0.1 are near ties (and fast's top-1, class 0, is wrong for frame 1)
    np.testing.assert_array_equal(out["logits"][[1, 3]], exact(x[[1, 3]])["logits"])
    np.testing.assert_array_equal(out["logits"][[0, 2]], x[[0, 2], :3] + [0.3, -0.3, 0.0])
    np.testing.assert_array_equal(out["features"], x * 10)  # every output is taken from the same model per frame
    assert out["logits"].argmax(1).tolist() == [0, 1, 2, 1]  # exact's top-1 on every frame
    assert fast.frames == 4 and exact.frames == 2 + 2  # the 2 re-run, and the 2 of the check above
    assert run.frames == 4 and run.exact_frames == 2 and run.exact_share == 0.5
    assert not run.exact_next  # half the batch: not more than EXACT_BATCH_SHARE


def test_a_batch_of_mostly_near_ties_sends_the_next_to_the_exact_model_whole_until_it_clears():
    exact, fast = Model(), Model(offset=0.1)
    run = NearTieRecheck(fast, exact, margin=1.0)
    hesitant = np.array([[1.0, 1.2, 0.0], [2.0, 2.1, 0.0], [0.0, 0.3, 0.2], [3.0, 0.0, 0.0]])  # 3 of 4 near ties
    clear = np.array([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0], [9.0, 1.0, 0.0]])
    assert EXACT_BATCH_SHARE < 3 / 4
    run(hesitant)
    assert run.exact_next and (fast.frames, exact.frames) == (4, 3)
    out = run(hesitant)  # all four on the exact model, the fast one not run
    assert (fast.frames, exact.frames) == (4, 7)
    np.testing.assert_array_equal(out["logits"], hesitant)
    assert run.exact_next  # still mostly near ties by the exact model's own margins
    run(clear)
    assert (fast.frames, exact.frames) == (4, 11) and not run.exact_next
    run(clear)
    assert (fast.frames, exact.frames) == (8, 11)
    assert run.exact_frames == 3 + 4 + 4 and run.frames == 16


def test_auto_precision_in_the_engine_keeps_f32s_top1_where_bf16_is_native():
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'streamcam[openvino]')")
    import openvino as ov

    from streamcam.explain.runtime.openvino_engine import OpenVinoEngine
    from streamcam.explain.runtime.precision import native_bf16

    from tiny_models import gap_dense_classifier, random_images

    classifier = gap_dense_classifier()
    images = random_images(12, 64)
    auto, f32 = OpenVinoEngine(classifier, "gradcam", "auto"), OpenVinoEngine(classifier, "gradcam", "float32")
    a, b = auto.explain(images, top_k=1), f32.explain(images, top_k=1)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    assert f32.precision == "f32" and f32.exact_share == 1.0
    if not native_bf16(ov.Core()):  # no native bf16: auto is f32
        assert auto.precision == "f32" and set(auto._compiled) == {("pixels", "f32")}
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
        return
    # This CPU has bf16: both models compiled, every frame from one of them.
    assert auto.precision == "bf16+f32" and set(auto._compiled) == {("pixels", "bf16"), ("pixels", "f32")}
    assert auto._policies["pixels"].frames == 12 and 0.0 <= auto.exact_share <= 1.0
    assert auto._compiled["pixels", "f32"].follows is auto._compiled["pixels", "bf16"]  # fixes only batch shapes, not near-tie subsets
    mixed = OpenVinoEngine(classifier, "gradcam", "mixed")
    everything_near, nothing_near = OpenVinoEngine(classifier, "gradcam", "auto"), OpenVinoEngine(classifier, "gradcam", "auto")
    everything_near._policies["pixels"].margin, nothing_near._policies["pixels"].margin = np.inf, 0.0
    np.testing.assert_array_equal(everything_near.explain(images).probabilities, b.probabilities)  # all re-run: f32's outputs
    assert everything_near.exact_share == 1.0 and everything_near._policies["pixels"].exact_next
    np.testing.assert_array_equal(nothing_near.explain(images).probabilities, mixed.explain(images).probabilities)  # bf16's
    assert nothing_near.exact_share == 0.0


def test_score_cams_masked_inputs_run_in_f32_and_leave_the_near_tie_policy_alone():
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'streamcam[openvino]')")
    from streamcam.explain.cams.scorecam import ScoreCAM
    from streamcam.explain.runtime.openvino_engine import OpenVinoEngine

    from tiny_models import gap_dense_classifier, random_images

    classifier = gap_dense_classifier()
    images = random_images(3, 64)
    auto = OpenVinoEngine(classifier, ScoreCAM(max_channels=4), "auto")
    f32 = OpenVinoEngine(classifier, ScoreCAM(max_channels=4), "float32")
    a, b = auto.explain(images, top_k=1), f32.explain(images, top_k=1)
    frames = getattr(auto._policies["pixels"], "frames", None)
    assert frames in (None, 3)  # the policy (where bf16 is native) saw the 3 frames, none of the masked inputs
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.cams, b.cams, atol=1e-5)  # masked scores from f32: the same maps
