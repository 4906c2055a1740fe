"""Temporal smoothing (streamcam.explain.trust) on synthetic sequences whose truth is known."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from streamcam.core.errors import UsageError
from streamcam.explain.results import CamBatch
from streamcam.explain.trust import MotionCompensator, SmoothingOptions, TemporalSmoother
from streamcam.explain.trust.smoothing import CamSmoother, ProbabilityEma
from streamcam.explain.trust.stability import map_correlation

CLASSES = 10
GRID = (7, 7)


def texture(seed: int, size=(90, 160)) -> np.ndarray:
    """A smooth random grey picture that optical flow can follow."""
    noise = np.random.default_rng(seed).random(size).astype(np.float32)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 3), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


@dataclass
class FakeFrame:
    """What the smoother reads of a Frame: its time and its small grey picture."""

    time_s: float
    grey: np.ndarray

    def small_grey(self, width: int) -> np.ndarray:
        return (
            self.grey
            if self.grey.shape[1] == width
            else cv2.resize(self.grey, (width, round(self.grey.shape[0] * width / self.grey.shape[1])))
        )


def batch_for(probabilities: list[np.ndarray], explained: list[list[int]], cams: list[np.ndarray] | None = None) -> CamBatch:
    """A CamBatch as the engine gives it: explained ids per frame (raw top first), their maps."""
    k = len(explained[0])
    if cams is None:
        cams = [np.stack([_blob(GRID, (1 + c % 5, 1 + c // 5)) for c in ids]) for ids in explained]
    return CamBatch(np.stack(probabilities), np.array(explained), np.stack(cams).reshape(len(probabilities), k, *cams[0].shape[1:]))


def _blob(grid, centre, sigma=1.0) -> np.ndarray:
    ys, xs = np.mgrid[: grid[0], : grid[1]]
    return np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def probs_with(top: dict[int, float]) -> np.ndarray:
    p = np.full(CLASSES, (1 - sum(top.values())) / (CLASSES - len(top)))
    for c, v in top.items():
        p[c] = v
    return p


def run(smoother: TemporalSmoother, times, probabilities, greys) -> list[CamBatch]:
    """Feed the smoother in batches of 8, each frame's raw top-(k+1) and the asked-for classes explained."""
    out = []
    for start in range(0, len(times), 8):
        frames = [FakeFrame(t, g) for t, g in zip(times[start : start + 8], greys[start : start + 8])]
        chunk = probabilities[start : start + 8]
        asked = smoother.class_ids_to_explain()
        explained = [[int(c) for c in np.argsort(-p, kind="stable")[: smoother.engine_top_k]] + asked for p in chunk]
        out.append(smoother.update(frames, batch_for(chunk, explained)))
    return out


def top_classes(batches: list[CamBatch]) -> list[int]:
    return [int(ids[0]) for b in batches for ids in b.class_ids]


def test_alternating_near_equal_classes_stop_flipping():
    times = [i / 25 for i in range(100)]
    probabilities = [probs_with({1: 0.31, 2: 0.29} if i % 2 else {1: 0.29, 2: 0.31}) for i in range(100)]
    raw_flips = sum(int(np.argmax(a) != np.argmax(b)) for a, b in itertools.pairwise(probabilities))
    smoother = TemporalSmoother(SmoothingOptions(), top_k=1)
    batches = run(smoother, times, probabilities, [texture(0)] * 100)
    tops = top_classes(batches)
    assert raw_flips == 99
    assert sum(a != b for a, b in itertools.pairwise(tops)) == 0
    figures = smoother.figures.summary()
    assert figures["raw"]["top1_flip_rate"] == 1.0 and figures["smoothed"]["top1_flip_rate"] == 0.0
    assert all(b.top1_changed.tolist() == [0] * len(b.top1_changed) for b in batches)
    # probability stays the model's own; the smoothed one sits between the two
    assert np.allclose(batches[0].probabilities, np.stack(probabilities[:8]))
    assert 0.29 < batches[-1].probabilities_smoothed[-1, 1] < 0.31


def switch_delay(times, change_at: float, options: SmoothingOptions | None = None, greys=None) -> float:
    probabilities = [probs_with({3: 0.6, 4: 0.1}) if t < change_at else probs_with({3: 0.1, 4: 0.6}) for t in times]
    smoother = TemporalSmoother(options or SmoothingOptions(), top_k=1)
    tops = top_classes(run(smoother, times, probabilities, greys or [texture(1)] * len(times)))
    assert tops[0] == 3 and tops[-1] == 4
    first = next(t for t, c in zip(times, tops) if c == 4)
    assert all(c == 4 for t, c in zip(times, tops) if t >= first)
    return first - change_at


def test_a_real_change_is_followed_within_half_a_second():
    times = [i / 25 for i in range(100)]
    delay = switch_delay(times, 2.0)
    assert 0 < delay <= 0.5, delay


def test_variable_frame_rates_follow_the_timestamps():
    """Irregular spacing (10 to 50 fps, seeded) switches after the same time as a steady 25 fps."""
    rng = np.random.default_rng(3)
    times = list(np.cumsum(rng.uniform(0.02, 0.1, 80)))
    change_at = times[40]
    steady = switch_delay([change_at + (i - 50) / 25 for i in range(100)], change_at)
    irregular = switch_delay(times, change_at)
    assert abs(irregular - steady) <= 0.1 + 1e-9, (irregular, steady)  # within one frame gap of the slow parts


def test_the_average_depends_on_time_not_on_the_number_of_frames():
    one, many = ProbabilityEma(0.5), ProbabilityEma(0.5)
    start, target = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    one.update(start, 0.0)
    many.update(start, 0.0)
    one.update(target, 0.4)
    for t in np.linspace(0.05, 0.4, 8):
        many.update(target, t)
    np.testing.assert_allclose(one.value, many.value, atol=1e-9)
    np.testing.assert_allclose(one.value[1], 1 - np.exp(-0.4 / 0.5))


def test_a_cut_resets_at_once():
    """A wholly different picture at the change: the new class is explained on that very frame."""
    times = [i / 25 for i in range(60)]
    greys = [texture(5) if t < 1.0 else texture(6) for t in times]
    assert switch_delay(times, 1.0, greys=greys) == 0


def test_motion_compensated_map_follows_a_moving_blob_better_than_a_plain_blend():
    base = texture(7, size=(90, 260))
    shift = 3  # pixels per frame on the 160-pixel grey frame
    frames = [base[:, 20 + shift * i : 180 + shift * i] for i in range(12)]
    grid = (45, 80)  # the CAM grid: half the grey frame's resolution

    def blob_at(i):  # content moves left by `shift` px per frame: so does the blob
        return _blob(grid, (60 - shift / 2 * i, 22), sigma=3.0)

    motion = MotionCompensator()
    compensated, plain = CamSmoother(0.3), CamSmoother(0.3)
    still = MotionCompensator().update(frames[0]) or None  # the first frame: no motion yet
    assert still is None
    r_comp, r_plain = [], []
    for i, grey in enumerate(frames):
        moved = motion.update(grey)
        assert i == 0 or moved is not None  # a pan, not a cut
        truth = blob_at(i)
        out_c = compensated.update({0: truth}, moved, i / 25)[0]
        out_p = plain.update({0: truth}, None if moved is None else _no_motion(moved), i / 25)[0]
        if i >= 3:
            r_comp.append(map_correlation(out_c, truth))
            r_plain.append(map_correlation(out_p, truth))
    assert np.mean(r_comp) > 0.98, (np.mean(r_comp), np.mean(r_plain))
    assert np.mean(r_comp) > np.mean(r_plain) + 0.02, (np.mean(r_comp), np.mean(r_plain))
    print(f"blob follow r: compensated {np.mean(r_comp):.3f}, plain blend {np.mean(r_plain):.3f}")


def _no_motion(motion):
    from streamcam.explain.trust.motion import Motion

    return Motion(np.zeros_like(motion.flow))


def test_smoothed_batches_keep_the_pipeline_layout():
    """held top-k first, then the tracked classes; maps in [0, 1]; the stability fields per frame."""
    times = [i / 25 for i in range(16)]
    probabilities = [probs_with({5: 0.5, 6: 0.2}) for _ in times]
    smoother = TemporalSmoother(SmoothingOptions(), top_k=2, tracked=[9])
    batches = run(smoother, times, probabilities, [texture(8)] * 16)
    for b in batches:
        assert b.class_ids.tolist() == [[5, 6, 9]] * 8
        assert b.cams.shape == (8, 3, *GRID) and b.cams.min() >= 0 and b.cams.max() <= 1
        assert b.probabilities_smoothed.shape == (8, CLASSES) and b.top1_changed.shape == b.cam_r_prev.shape == (8,)
    assert np.isnan(batches[0].cam_r_prev[0]) and batches[1].cam_r_prev[0] > 0.99


@pytest.mark.parametrize(
    ("options", "match"), [(SmoothingOptions(seconds=-1), "--smooth must be 0"), (SmoothingOptions(flow="lk"), "flow")]
)
def test_bad_options_are_one_line(options, match):
    with pytest.raises(UsageError, match=match):
        options.check()


def test_each_frame_keeps_its_own_smoothed_probabilities():
    times = [i / 25 for i in range(8)]
    probabilities = [probs_with({1: 0.9 - 0.1 * i, 2: 0.05}) for i in range(8)]
    (batch,) = run(TemporalSmoother(SmoothingOptions(), top_k=1), times, probabilities, [texture(9)] * 8)
    smoothed = batch.probabilities_smoothed[:, 1]
    assert smoothed[0] == pytest.approx(0.9) and all(np.diff(smoothed) < 0)  # the first frame as it is, then falling


def test_a_held_class_without_a_new_map_is_carried_not_dropped():
    """Near-equal, near-zero classes (an empty road): the held class drops out of a frame's raw
    top-2 while the engine was not asked for it (the first batch). It stays explained, its last
    map carried along the flow, instead of flipping to whatever the frame's raw top-1 is."""
    times = [i / 25 for i in range(8)]
    tops = [1, 2, 3, 1, 2, 3, 1, 2]
    probabilities = []
    for c in tops:  # a model that sees nothing: every class near 0.01
        p = np.full(CLASSES, 0.01)
        p[c], p[7] = 0.03, 0.02
        probabilities.append(p)
    smoother = TemporalSmoother(SmoothingOptions(), top_k=1)
    explained = [[c, 7, 0] for c in tops]  # the raw top-2 and the placeholder: never the held class 1 on frames 1, 2, 4, 5, 7
    batch = smoother.update([FakeFrame(t, texture(10)) for t in times], batch_for(probabilities, explained))
    assert batch.class_ids[:, 0].tolist() == [1] * 8 and batch.top1_changed.tolist() == [0] * 8
    np.testing.assert_allclose(batch.cams[1, 0], batch.cams[0, 0], atol=1e-3)  # carried: a still picture, the same map
    assert np.isnan(batch.local_probabilities[1, 0]) if batch.local_probabilities is not None else True
