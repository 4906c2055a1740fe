"""--input-size and local class evidence through the commands: parsing, sizes per frame, CSV columns,
`image`'s local figures, and the incident frame the feature exists for."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from streamcam.apps.analyze import MAX_CAM_TOP_K, AnalyzeOptions, analyze, parse_cam_classes
from streamcam.apps.image import ImageExplainer
from streamcam.cli import app
from streamcam.core.errors import UsageError
from streamcam.core.labels import Labels
from streamcam.explain.input_size import InputSize

from conftest import REPO, shared_file
from videos import make_video

pd = pytest.importorskip("pandas")
runner = CliRunner()
BICYCLE = 444  # bicycle-built-for-two


@pytest.mark.parametrize(
    ("spec", "frame", "stride", "expected"),
    [
        ("224x224", (960, 540), 32, (224, 224)),  # today's square squash
        ("640", (960, 540), 32, (352, 640)),  # 16:9 kept: 360 rounds to 352
        ("640", (540, 960), 32, (640, 352)),  # portrait
        ("448", (970, 430), 32, (192, 448)),  # the Uber frame: 198.6 -> 192
        ("640x352", (100, 100), 32, (352, 640)),  # exact, whatever the frame
        ("300x200", (10, 10), 32, (192, 288)),  # rounded to the stride
        ("100", (4000, 100), 32, (32, 96)),  # never below one cell
        ("224", (960, 540), 16, (128, 224)),  # VGG16's stride
    ],
)
def test_sizes_per_frame(spec, frame, stride, expected):
    assert InputSize.parse(spec).for_frame(*frame, stride=stride) == expected


@pytest.mark.parametrize("spec", ["", "0", "640x", "x480", "big", "-640", "100000", "64x0", "1.5"])
def test_bad_sizes_are_usage_errors(spec):
    with pytest.raises(UsageError, match="--input-size"):
        InputSize.parse(spec)


def test_cam_classes_take_top_k_and_names_together():
    labels = Labels()
    assert parse_cam_classes("top1,bicycle-built-for-two", labels) == (1, [BICYCLE])
    assert parse_cam_classes("traffic_light, top3", labels) == (3, [920])
    assert parse_cam_classes("top2", labels) == (2, [])
    assert parse_cam_classes("920,444", labels) == (0, [920, BICYCLE])
    for bad in ("top1,top2", "", "top0", "top1,no_such_class"):
        with pytest.raises(UsageError):
            parse_cam_classes(bad, labels)


def test_cam_classes_top_k_has_a_documented_maximum():
    labels = Labels()
    assert parse_cam_classes(f"top{MAX_CAM_TOP_K}", labels) == (MAX_CAM_TOP_K, [])
    for bad in (f"top{MAX_CAM_TOP_K + 1}", "top2000", "bicycle-built-for-two,top2000"):
        with pytest.raises(UsageError, match=f"at most top{MAX_CAM_TOP_K}"):
            parse_cam_classes(bad, labels)
    with pytest.raises(UsageError, match="at most"):
        AnalyzeOptions(cam_classes="top2000").check()  # before the model loads


def test_analyze_csv_has_local_evidence_and_peaks_for_tracked_classes(default_engine, tmp_path):
    src = tmp_path / "wide.mp4"
    make_video(src, 6, size=(320, 180))
    out = tmp_path / "out"
    summary = analyze(
        str(src), default_engine, AnalyzeOptions(out_dir=out, top_n=2, cam_classes="top1,tabby,bicycle-built-for-two", input_size="320")
    )
    assert summary.frames_analysed == 6
    table = pd.read_csv(out / "wide.frames.csv")
    for kind in ("p", "plocal", "peak_x", "peak_y"):
        for name in ("tabby", "bicycle_built_for_two"):
            assert f"{kind}_{name}" in table.columns
    assert table["plocal_tabby"].between(0, 1).all() and table["plocal_tabby"].notna().all()
    peaks = table[["peak_x_tabby", "peak_y_tabby"]].dropna().to_numpy()
    assert len(peaks) and ((peaks > 0) & (peaks < 1)).all()
    # 320x180 at long side 320 -> a 320x192 input -> a 10x6 grid: peaks sit on cell centres
    for values, cells in ((peaks[:, 0], 10), (peaks[:, 1], 6)):
        index = values * cells - 0.5
        assert np.allclose(index, np.round(index), atol=0.01) and set(np.round(index)) <= set(range(cells))
    assert summary.options["input_size"] == "320"


def test_image_prints_local_evidence_beside_each_explained_class(tmp_path):
    result = runner.invoke(
        app,
        [
            "image",
            str(REPO / "sample_videos" / "sample.jpg"),
            "-n",
            "2",
            "--classes",
            "bicycle-built-for-two",
            "--outputs",
            "gradcam",
            "-o",
            str(tmp_path),
            "--input-size",
            "448",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum(": class id: " in line for line in lines) == 2  # the ancestor's lines, unchanged
    local = [line for line in lines if "local probability" in line]
    assert len(local) == 3 and any("bicycle-built-for-two" in line for line in local)
    assert all("CAM peak at x " in line for line in local)


def _uber_bicycle_peak(default_engine, size: str, tmp_path):
    frame = shared_file("seed_examples", "uberfatalcrashvid970_0.jpg")
    explained = ImageExplainer(default_engine, ["gradcam"], input_size=size).explain(
        frame, top_n=1, class_ids=[BICYCLE], out_dir=tmp_path / size
    )
    bicycle = next(c for c in explained.explained if c.class_id == BICYCLE)
    return bicycle


def test_uber_frame_bicycle_cam_sits_on_the_cyclist_at_640_not_at_224(default_engine, tmp_path):
    """The ancestor's incident frame (970x430): the cyclist is at about x 0.40-0.56, y 0.55-0.78."""
    fine = _uber_bicycle_peak(default_engine, "640", tmp_path)
    coarse = _uber_bicycle_peak(default_engine, "224x224", tmp_path)

    def on_cyclist(peak):
        return 0.40 <= peak[0] <= 0.56 and 0.55 <= peak[1] <= 0.78

    assert on_cyclist(fine.peak), fine.peak
    assert not on_cyclist(coarse.peak), coarse.peak
    assert fine.local_probability is not None and fine.local_probability > fine.probability
