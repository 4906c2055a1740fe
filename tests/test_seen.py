"""outputs.seen: the summary's account of what the model saw, from frames fed one at a time."""

from __future__ import annotations

import numpy as np

from streamcam.core.labels import Labels
from streamcam.outputs.files import FrameTrust
from streamcam.outputs.seen import MAX_PEAKS, TOP_CLASSES, SeenClasses


def one_hot(top: int, classes: int = 10, p: float = 0.6) -> np.ndarray:
    row = np.full(classes, (1 - p) / (classes - 1), np.float32)
    row[top] = p
    return row


def test_top1_classes_are_counted_timed_and_ranked():
    seen = SeenClasses(Labels(10))
    tops = [3, 3, 5, 3, 3, 3, 7, 1, 2, 4, 6, 6]
    for i, top in enumerate(tops):
        seen.add(i, i * 0.5, one_hot(top), None, None)
    top1 = seen.summary()["top1"]
    assert top1["of"] == "raw" and top1["distinct_classes"] == 7
    assert len(top1["classes"]) == TOP_CLASSES
    three = top1["classes"][0]
    assert (three["class_id"], three["frames"], three["first_s"], three["last_s"], three["runs"]) == (3, 5, 0.0, 2.5, 2)
    assert three["longest_run"] == {"start_s": 1.5, "end_s": 2.5, "frames": 3} and three["share"] == round(5 / 12, 4)
    # ties in frames: the earlier class first
    assert [c["class_id"] for c in top1["classes"]] == [3, 6, 5, 7, 1]


def test_with_smoothing_the_held_class_is_the_top1():
    seen = SeenClasses(Labels(10))
    smoothed = one_hot(2)
    seen.add(0, 0.0, one_hot(4), None, FrameTrust(smoothed, [8], 0, float("nan")))
    top1 = seen.summary()["top1"]
    assert top1["of"] == "smoothed" and top1["classes"][0]["class_id"] == 8


def test_named_peaks_on_either_curve_the_highest_kept_in_time_order():
    seen = SeenClasses(Labels(10), tracked=[1, 2])
    n = 200
    p1 = 0.05 + 0.4 * (np.arange(n) % 10 == 5)  # 20 peaks on p
    local = 0.1 + 0.8 * (np.arange(n) == 50)  # one on plocal, where p has none
    for i in range(n):
        row = one_hot(0)
        row[1], row[2] = p1[i], 0.01
        seen.add(100 + i, i / 25, row, np.array([local[i], 0.02], np.float32), None)
    cls1, cls2 = seen.summary()["named"]
    assert cls1["peaks_found"] == 21 and len(cls1["peaks"]) == MAX_PEAKS
    assert {"frame_index": 150, "time_s": 2.0, "p": 0.05, "plocal": 0.9, "on": ["plocal"]} in cls1["peaks"]  # the highest
    assert cls1["peaks"][0] == {"frame_index": 105, "time_s": 0.2, "p": 0.45, "plocal": 0.1, "on": ["p"]}
    assert [p["time_s"] for p in cls1["peaks"]] == sorted(p["time_s"] for p in cls1["peaks"])
    assert cls1["plocal_max"] == 0.9 and cls1["p_max"] == 0.45
    assert cls2["peaks"] == [] and cls2["peaks_found"] == 0  # a flat curve has none


def test_per_frame_memory_is_the_named_classes_floats_alone():
    seen = SeenClasses(Labels(1000), tracked=[1, 2, 3])
    for i in range(3000):
        seen.add(i, i / 30, one_hot(i % 4, 1000), None, None)
    assert len(seen._top1) == 4  # per top-1 class, not per frame
    assert seen._p.array().dtype == np.float32 and seen._p.array().shape == (3000, 3)
    assert seen.summary()["named"][0]["plocal_max"] is None  # no local probabilities: none claimed
