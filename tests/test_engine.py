"""CamEngine behaviour that is not one CAM method's formula: which frames count as flat."""

import numpy as np
import pytest

from streamcam.explain.engine import FLAT_FRAME_RANGE, CamEngine

from tiny_models import nonlinear_head_classifier, patch_features, patch_pool_classifier, random_images

# Solid colours: each channel is constant, but the channels differ (an all-pixels-and-channels
# range would call these structured).
SOLID_COLOURS = [(255, 0, 0), (0, 255, 0), (12, 200, 90)]


def _solid(colour, size):
    return np.broadcast_to(np.array(colour, np.uint8), (size, size, 3)).copy()


def _nearly_solid(colour, size, seed=0):
    """A solid colour with per-channel noise of exactly FLAT_FRAME_RANGE grey levels (still flat)."""
    noise = np.random.default_rng(seed).integers(0, FLAT_FRAME_RANGE + 1, (size, size, 3))
    noise[0, 0], noise[-1, -1] = 0, FLAT_FRAME_RANGE  # every channel spans exactly the allowed range
    base = np.minimum(colour, 255 - FLAT_FRAME_RANGE)  # no uint8 wrap-around
    return (base + noise).astype(np.uint8)


def _one_channel_ramp(size):
    """Structure in the green channel only (range 3 * size grey levels), red and blue constant."""
    image = _solid((40, 0, 200), size)
    image[..., 1] = (np.arange(size) * 3)[None, :]
    return image


@pytest.mark.parametrize("method", ["gradcam", "eigencam", "scorecam"])
def test_solid_colour_frames_give_all_zero_maps_on_a_tiny_model(method):
    size = 12
    flat = [_solid(c, size) for c in SOLID_COLOURS] + [_nearly_solid(c, size, i) for i, c in enumerate(SOLID_COLOURS)]
    just_structured = _solid(SOLID_COLOURS[2], size)
    just_structured[5, 7, 2] += FLAT_FRAME_RANGE + 1  # one channel, one pixel, just over the limit
    structured = [random_images(1, size, seed=3)[0], _one_channel_ramp(size), just_structured]
    result = CamEngine(nonlinear_head_classifier(size=size), method).explain(np.stack(flat + structured), top_k=2)
    for n in range(len(flat)):
        assert not result.cams[n].any(), f"flat frame {n} got a map"
    for n in range(len(flat), len(flat) + len(structured)):
        assert result.cams[n].max() == pytest.approx(1.0), f"structured frame {n} was zeroed"
    assert np.isfinite(result.probabilities).all()


def test_solid_colour_frames_give_all_zero_maps_on_the_default_model(default_engine):
    h, w = default_engine.classifier.input_size
    assert h == w
    frames = [_solid(c, h) for c in SOLID_COLOURS] + [random_images(1, h, seed=1)[0]]
    result = default_engine.explain(np.stack(frames), top_k=1)
    for n, colour in enumerate(SOLID_COLOURS):
        assert not result.cams[n].any(), f"solid {colour} got a map"
    assert result.cams[-1].max() == pytest.approx(1.0)


# -- local class evidence: the head applied to each cell of the pooled feature map -------------
def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _cell_logits(clf, features):
    """What the head says about each cell's feature vector (N, h, w, C) -> (N, h, w, classes), in numpy."""
    x = features
    if "hidden" in [layer.name for layer in clf.model.layers]:
        kernel, bias = clf.model.get_layer("hidden").get_weights()
        x = np.maximum(x @ kernel + bias, 0.0)  # dropout is off at inference
    kernel, bias = clf.model.get_layer("logits").get_weights()
    return x @ kernel + bias


@pytest.mark.parametrize(("pooling", "deep_head"), [("avg", False), ("max", False), ("avg", True)])
def test_local_probabilities_are_the_best_cell_of_a_per_cell_softmax(pooling, deep_head):
    clf = patch_pool_classifier(num_classes=5, size=16, pooling=pooling, deep_head=deep_head)
    images = random_images(3, 48, seed=4)[:, :, :40]  # a 6x5 grid of 8x8 patches
    result = CamEngine(clf).explain(images, top_k=2, class_ids=[4])
    probs = _softmax(_cell_logits(clf, patch_features(clf, images))).reshape(3, 30, 5)
    expected = np.take_along_axis(probs.max(axis=1), result.class_ids, axis=1)
    np.testing.assert_allclose(result.local_probabilities, expected, atol=1e-5)
    # Local evidence is not the whole-frame probability: some class is stronger in one cell.
    whole = np.take_along_axis(result.probabilities, result.class_ids, axis=1)
    assert np.abs(result.local_probabilities - whole).max() > 0.01


def test_on_a_one_cell_grid_local_evidence_is_the_whole_frame_probability():
    clf = patch_pool_classifier(num_classes=5, size=16, deep_head=True)
    images = random_images(4, 8, seed=5)  # one 8x8 patch: a 1x1 feature grid
    result = CamEngine(clf).explain(images, top_k=3, class_ids=[0])
    assert result.cams.shape == (4, 4, 1, 1)
    whole = np.take_along_axis(result.probabilities, result.class_ids, axis=1)
    np.testing.assert_allclose(result.local_probabilities, whole, atol=1e-6)


def test_local_evidence_can_be_switched_off():
    clf = patch_pool_classifier()
    assert CamEngine(clf, local_evidence=False).explain(random_images(1, 16), top_k=1).local_probabilities is None
    assert CamEngine(clf).explain(random_images(1, 16), top_k=1).local_probabilities is not None


# -- classes by name, as the command line takes them --------------------------------------------
def test_explain_takes_class_names_as_the_command_line_does(default_engine):
    h = default_engine.classifier.input_size[0]
    images = random_images(2, h, seed=4)
    by_id = default_engine.explain(images, top_k=1, class_ids=[920, 671])
    for named in (["traffic_light", 671], "traffic_light,mountain_bike", ["n06874185", "mountain bike"]):
        result = default_engine.explain(images, top_k=1, class_ids=named)
        np.testing.assert_array_equal(result.class_ids, by_id.class_ids)
        np.testing.assert_allclose(result.cams, by_id.cams, atol=1e-6)


def test_explain_refuses_a_name_that_is_not_exactly_one_class(default_engine):
    from streamcam.core.errors import UsageError

    h = default_engine.classifier.input_size[0]
    with pytest.raises(UsageError, match="only part of one: 444 bicycle-built-for-two"):
        default_engine.explain(random_images(1, h), class_ids=["bicycle"])


def test_the_null_engine_takes_names_too(default_classifier):
    from streamcam.explain.null_engine import NullEngine

    result = NullEngine(default_classifier).explain(np.zeros((1, 32, 32, 3), np.uint8), top_k=0, class_ids="traffic_light")
    assert result.class_ids.tolist() == [[920]]
