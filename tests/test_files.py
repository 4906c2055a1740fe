"""outputs.files: the two CSVs' layout, column names and what pandas reads from them."""

from __future__ import annotations

import numpy as np
import pytest

from streamcam.core.labels import Labels
from streamcam.outputs.files import FramesCsv, FrameTrust, PredictionsCsv, class_columns, snake_case

pd = pytest.importorskip("pandas")


def test_column_names_are_snake_case_and_never_collide():
    labels = Labels()
    assert snake_case("bicycle-built-for-two") == "bicycle_built_for_two" and snake_case("Egyptian_cat") == "egyptian_cat"
    assert class_columns(labels, [444, 920, 285]) == ["bicycle_built_for_two", "traffic_light", "egyptian_cat"]
    # ImageNet's two cranes (the bird, the machine): each keeps its id in front, other names as they are
    assert class_columns(labels, [134, 517, 920]) == ["134_crane", "517_crane", "traffic_light"]
    assert class_columns(labels, [134]) == ["crane"]


def test_both_files_load_in_pandas_with_their_kinds_and_nan_where_empty(tmp_path):
    labels = Labels(6)
    ranked = PredictionsCsv(tmp_path / "x.predictions.csv", labels, 3, trust=True)
    frames = FramesCsv(tmp_path / "x.frames.csv", labels, tracked=[4], trust=True, faith=True)
    cam = np.zeros((2, 2), np.float32)
    cam[1, 0] = 1.0  # peaks at the lower left cell: x 0.25, y 0.75
    for i in range(3):
        probabilities = np.array([0.1, 0.5, 0.2, 0.1, 0.05, 0.05], np.float32)
        smoothed = np.array([0.1, 0.3, 0.4, 0.1, 0.05, 0.05], np.float32)
        scored = i == 1
        trust = FrameTrust(
            smoothed,
            [1],  # held: the explained class stays 1 though class 2 leads the smoothed probabilities
            int(i == 2),
            float("nan") if i == 0 else 0.9,
            faith=np.array([0.3, 0.1]) if scored else None,
            faith_control=np.array([0.01, 0.0]) if scored else None,
        )
        ids, cams = np.array([1, 4]), np.stack([cam, np.zeros_like(cam)])  # class 4's map all zero: no peak
        pts = None if i == 2 else 512 * i
        ranked.write_frame(i, pts, i / 25, probabilities, trust)
        frames.write_frame(i, pts, i / 25, probabilities, ids, cams, np.array([0.6, 0.2]), trust)
    ranked.close(), frames.close()
    table = pd.read_csv(tmp_path / "x.predictions.csv")
    assert list(table.columns) == ["frame_index", "pts", "time_s", "rank", "class_id", "class_name", "probability", "probability_smoothed"]
    assert table["class_id"].tolist() == [1, 2, 0] * 3 and table["rank"].dtype == np.int64 and table["probability"].dtype == np.float64
    assert table["pts"].isna().tolist() == [False] * 6 + [True] * 3  # no pts: an empty cell, NaN
    per_frame = pd.read_csv(tmp_path / "x.frames.csv")
    assert list(per_frame.columns) == [
        *("frame_index", "pts", "time_s", "class_id", "class_name", "probability", "probability_smoothed"),
        *("peak_x", "peak_y", "top1_changed", "cam_r_prev", "faith", "faith_control"),
        *("p_class_4", "plocal_class_4", "peak_x_class_4", "peak_y_class_4", "faith_class_4"),
    ]
    assert per_frame["frame_index"].dtype == per_frame["class_id"].dtype == per_frame["top1_changed"].dtype == np.int64
    assert per_frame["class_id"].tolist() == [1, 1, 1] and per_frame["top1_changed"].tolist() == [0, 0, 1]
    assert per_frame[["peak_x", "peak_y"]].iloc[0].tolist() == [0.25, 0.75]
    assert per_frame[["peak_x_class_4", "peak_y_class_4"]].isna().all().all()
    assert per_frame["cam_r_prev"].isna().tolist() == [True, False, False]
    assert per_frame["faith"].isna().tolist() == per_frame["faith_class_4"].isna().tolist() == [True, False, True]
    assert per_frame.loc[1, ["faith", "faith_control", "faith_class_4"]].tolist() == [0.3, 0.01, 0.1]
    for column in ("time_s", "probability", "peak_x", "cam_r_prev", "faith", "p_class_4", "plocal_class_4"):
        assert per_frame[column].dtype == np.float64, column
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.frames.csv", "x.predictions.csv"]  # no temporary files


def test_abort_leaves_nothing(tmp_path):
    table = FramesCsv(tmp_path / "y.frames.csv", Labels(3))
    table.write_frame(0, 0, 0.0, np.array([0.2, 0.5, 0.3]), np.array([1]), np.ones((1, 2, 2)))
    table.abort()
    assert list(tmp_path.iterdir()) == []
