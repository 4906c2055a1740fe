"""Heat that means something (outputs/render.py, 'evidence' heat): a map's strength follows its
class's evidence, a class below the threshold leaves the frame as it is, and a colour bar says so."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamcam.apps.analyze import AnalyzeOptions
from streamcam.core.errors import UsageError
from streamcam.core.frames import Frame
from streamcam.core.labels import Labels
from streamcam.outputs import render
from streamcam.outputs.run_sinks import FrameWriter


def _cam() -> np.ndarray:
    cam = np.zeros((7, 7), np.float32)
    cam[2:5, 2:5] = 1.0
    return cam


def test_strength_fades_below_the_threshold_and_saturates_at_full():
    strength = render.evidence_strength([0.0, render.EVIDENCE_FADE, 0.3, render.EVIDENCE_FULL, 0.9])
    np.testing.assert_allclose(strength, [0, 0, (0.3 - 0.1) / 0.4, 1, 1])


def test_heat_to_draw_scales_each_class_by_its_evidence():
    cams = np.stack([_cam(), _cam()[::-1, ::-1] * 0 + 0.5])
    drawn, weight = render.heat_to_draw(cams, [0.05, 0.02], alpha=0.5)
    assert weight == 0 and not drawn.any()  # both absent: nothing drawn
    drawn, weight = render.heat_to_draw(cams, [0.9, 0.02], alpha=0.5)
    np.testing.assert_allclose(drawn, cams[0])
    assert weight == 0.5
    drawn, weight = render.heat_to_draw(cams, [0.3, 0.02], alpha=0.5)
    assert drawn.max() == pytest.approx(0.5) and weight == pytest.approx(0.25)
    drawn, weight = render.heat_to_draw(cams, [0.05, 0.02], alpha=0.5, mode="minmax")
    np.testing.assert_allclose(drawn, cams.max(axis=0))  # the old look: whatever the evidence
    assert weight == 0.5


@pytest.mark.parametrize("yuv", [True, False], ids=["i420", "rgb"])
def test_an_absent_class_leaves_the_frame_as_it_is(yuv):
    """The overlay video's picture of a frame whose only explained class has evidence 0.02: the
    picture below the label strip is the frame (but for the colour bar), on both drawing paths."""
    rgb = np.random.default_rng(0).integers(40, 200, (180, 320, 3), dtype=np.uint8)
    rgb[:] = np.repeat(np.repeat(rgb[::2, ::2], 2, axis=0), 2, axis=1)  # 2x2 blocks: I420 keeps the colours
    if yuv:  # a decoded 4:2:0 picture, as a VideoSource frame has: drawn on its planes
        import av

        frame = Frame(0, 0, 0.0, decoded=av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
        assert frame.yuv_planes is not None
    else:
        frame = Frame(0, 0, 0.0, rgb)
    writer = FrameWriter(None, AnalyzeOptions().sinks(), Labels(1000), None, [], 0)
    if not yuv:
        writer._takes_i420 = lambda f: False
    probs = np.full(1000, 0.001, np.float32)
    probs[7] = 0.02
    absent = writer.render_overlay(frame, probs, np.array([7]), _cam()[None], local=np.array([0.9]))  # plocal counts only in 'local' heat
    probs[7] = 0.8
    present = writer.render_overlay(frame, probs, np.array([7]), _cam()[None])
    if yuv:
        absent, present = (cv2.cvtColor(p, cv2.COLOR_YUV2RGB_I420) for p in (absent, present))
    below = slice(70, 180), slice(0, 250)  # under the strip, left of the colour bar
    reference = cv2.cvtColor(frame.i420, cv2.COLOR_YUV2RGB_I420) if yuv else rgb
    assert np.abs(absent[below].astype(int) - reference[below]).max() <= 2
    assert np.abs(present[below].astype(int) - reference[below]).mean() > 20  # a present class is drawn
    bar = slice(60, 100), slice(320 - 8 - 20, 320 - 8)
    assert present[bar].max(axis=2).mean() > absent[bar].max(axis=2).mean() + 30  # the bar lights up with evidence


def test_a_bad_heat_mode_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown heat mode 'hot'"):
        AnalyzeOptions(heat="hot").check()


def test_image_draws_no_hot_spot_for_an_absent_class(default_engine, tmp_path):
    """`streamcam image photo.jpg --classes bicycle`: on the sample cat the bicycle (p 0.000,
    plocal 0.002) leaves the photo as it is, while the cat's own map is drawn in full."""
    from streamcam.apps.image import ImageExplainer, read_image

    from conftest import REPO

    sample = REPO / "sample_videos" / "sample.jpg"
    photo = read_image(sample).astype(int)
    result = ImageExplainer(default_engine, ["gradcam"]).explain(sample, top_n=1, class_ids=[444], out_dir=tmp_path)
    pictures = {c.class_id: read_image(p).astype(int) for c, p in zip(result.explained, result.written, strict=True)}
    body = slice(None), slice(0, photo.shape[1] * 3 // 4)  # left of the colour bar
    assert np.abs(pictures[444][body] - photo[body]).mean() < 3  # JPEG noise only
    assert np.abs(pictures[285][body] - photo[body]).mean() > 30
    minmax = ImageExplainer(default_engine, ["gradcam"], heat="minmax").explain(sample, top_n=1, class_ids=[444], out_dir=tmp_path / "old")
    assert np.abs(read_image(minmax.written[1]).astype(int)[body] - photo[body]).mean() > 30  # the old look paints it


@pytest.mark.parametrize("yuv", [True, False], ids=["i420", "rgb"])
def test_several_classes_get_an_outline_and_a_legend_entry_each(yuv):
    """Two explained classes looking at opposite corners: each is outlined in its own colour (the
    second in magenta), and a faded one gets no outline."""
    rgb = np.full((180, 320, 3), 90, np.uint8)
    if yuv:
        import av

        frame = Frame(0, 0, 0.0, decoded=av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    else:
        frame = Frame(0, 0, 0.0, rgb)
    writer = FrameWriter(None, AnalyzeOptions().sinks(), Labels(1000), None, [], 0)
    if not yuv:
        writer._takes_i420 = lambda f: False
    left, right = np.zeros((7, 7), np.float32), np.zeros((7, 7), np.float32)
    left[3:6, 0:2], right[3:6, 4:7] = 1, 1
    probs = np.full(1000, 0.001, np.float32)

    def magenta_pixels(evidence) -> int:
        probs[3], probs[5] = evidence
        picture = writer.render_overlay(frame, probs, np.array([3, 5]), np.stack([right, left]))
        assert picture.shape == (180, 320, 3)  # several classes: each in its own colour, drawn in RGB on either path
        body = picture[70:, :160].astype(int)  # below the strip, left of the bar and the legend
        return int(((body[..., 0] > 200) & (body[..., 1] < 80) & (body[..., 2] > 200)).sum())

    assert magenta_pixels([0.9, 0.9]) > 50  # the second class's outline
    assert magenta_pixels([0.9, 0.02]) == 0  # faded: not outlined


def test_local_heat_takes_the_best_cells_probability():
    writer = FrameWriter(None, AnalyzeOptions(heat="local").sinks(), Labels(1000), None, [], 0)
    writer._takes_i420 = lambda f: False
    rgb = np.full((180, 320, 3), 90, np.uint8)
    probs = np.full(1000, 0.001, np.float32)
    drawn = writer.render_overlay(Frame(0, 0, 0.0, rgb), probs, np.array([7]), _cam()[None], local=np.array([0.9]))
    assert np.abs(drawn[70:, :250].astype(int) - 90).mean() > 20  # a small object's cell counts here


def test_several_classes_each_fill_in_their_own_colour_not_one_max_map():
    """Two classes looking at opposite sides: each side takes its class's own hue (no shared colour
    map, so a reader can tell which class looked where), scaled by that class's evidence; a faded
    class leaves its side as it is."""
    rgb = np.full((60, 120, 3), 90, np.uint8)
    left, right = np.zeros((5, 10), np.float32), np.zeros((5, 10), np.float32)
    left[:, :3], right[:, 7:] = 1, 1
    cams = np.stack([left, right])
    drawn = render.class_hues(rgb, cams, render.evidence_strength([0.9, 0.9]), alpha=0.5).astype(int)
    first, second = render.class_colour(0), render.class_colour(1)
    np.testing.assert_allclose(drawn[30, 5], [(90 + c) / 2 for c in first], atol=1)
    np.testing.assert_allclose(drawn[30, 115], [(90 + c) / 2 for c in second], atol=1)
    assert (drawn[30, 55] == 90).all()  # neither class looked at the middle
    weaker = render.class_hues(rgb, cams, render.evidence_strength([0.9, 0.3]), alpha=0.5).astype(int)
    assert 0 < np.abs(weaker[30, 115] - 90).max() < np.abs(drawn[30, 115] - 90).max()  # half the evidence, half the colour
    faded = render.class_hues(rgb, cams, render.evidence_strength([0.9, 0.05]), alpha=0.5)
    assert (faded[:, 80:] == 90).all()
    assert (render.class_hues(rgb, cams, [0, 0]) == rgb).all()


def test_the_overlay_video_gives_each_class_its_colour_and_a_legend():
    """FrameWriter with two explained classes draws class_hues (both drawing paths end in RGB here)
    and a legend instead of the single colour bar."""
    writer = FrameWriter(None, AnalyzeOptions().sinks(), Labels(1000), None, [], 0)
    rgb = np.full((180, 320, 3), 90, np.uint8)
    left, right = np.zeros((7, 7), np.float32), np.zeros((7, 7), np.float32)
    left[3:7, 0:2], right[3:7, 5:7] = 1, 1
    probs = np.full(1000, 0.001, np.float32)
    probs[3], probs[5] = 0.9, 0.9
    picture = writer.render_overlay(Frame(0, 0, 0.0, rgb), probs, np.array([3, 5]), np.stack([left, right]))
    assert picture.ndim == 3 and picture.shape == (180, 320, 3)
    red_side, magenta_side = picture[150:175, 5:40].reshape(-1, 3).mean(0), picture[150:175, 280:315].reshape(-1, 3).mean(0)
    assert red_side[0] > red_side[2] + 40  # the first class: red
    assert magenta_side[2] > magenta_side[1] + 40 and magenta_side[0] > magenta_side[1] + 40  # the second: magenta
