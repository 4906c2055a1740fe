"""analyze with temporal smoothing (on by default) and without (--smooth 0), and with faithfulness scores:
the CSVs, the .cams.npz file, the summary, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from streamcam.apps.analyze import AnalyzeOptions, analyze
from streamcam.cli import app
from streamcam.explain.trust.smoothing import DEFAULT_SMOOTH_S

from conftest import REPO

pd = pytest.importorskip("pandas")
SAMPLE = REPO / "sample_videos" / "sample.mp4"
RAW_COLUMNS = ["frame_index", "pts", "time_s", "rank", "class_id", "class_name", "probability"]
FRAME_COLUMNS = ["frame_index", "pts", "time_s", "class_id", "class_name", "probability"]
TRUST_COLUMNS = ["probability_smoothed", "peak_x", "peak_y", "top1_changed", "cam_r_prev"]  # of the frames CSV


@pytest.fixture(scope="module")
def runs(tmp_path_factory, default_engine):
    """The bundled sample (120 frames, a few shots) analysed with default smoothing and with --smooth 0."""
    out = tmp_path_factory.mktemp("smoothing")
    summaries = {}
    for name, smooth in (("on", DEFAULT_SMOOTH_S), ("off", 0.0)):
        options = AnalyzeOptions(top_n=3, out_dir=out / name, video=False, smooth=smooth, save_cams=True)
        summaries[name] = analyze(str(SAMPLE), default_engine, options)
    return out, summaries


def test_smoothing_off_writes_each_frame_as_the_engine_gives_it(runs, default_engine):
    out, summaries = runs
    table = pd.read_csv(out / "off" / "sample.predictions.csv")
    assert list(table.columns) == RAW_COLUMNS
    assert list(pd.read_csv(out / "off" / "sample.frames.csv").columns) == [*FRAME_COLUMNS, "peak_x", "peak_y"]
    assert summaries["off"].smoothing is None and summaries["off"].seen["top1"]["of"] == "raw"
    assert (table.groupby("frame_index")["probability"].apply(lambda p: p.is_monotonic_decreasing)).all()
    assert table.groupby("frame_index")["rank"].apply(list).tolist() == [[0, 1, 2]] * 120


def test_smoothing_on_adds_its_columns_and_keeps_the_models_probabilities(runs):
    out, _summaries = runs
    on = pd.read_csv(out / "on" / "sample.predictions.csv")
    off = pd.read_csv(out / "off" / "sample.predictions.csv")
    assert list(on.columns) == [*RAW_COLUMNS, "probability_smoothed"]
    frames = pd.read_csv(out / "on" / "sample.frames.csv")
    assert list(frames.columns) == FRAME_COLUMNS + TRUST_COLUMNS
    assert on["frame_index"].nunique() == len(frames) == 120 and set(frames["top1_changed"]) <= {0, 1}
    # `probability` is still the model's own: the same as without smoothing, class by class
    merged = on.merge(off, on=["frame_index", "class_id"], suffixes=("", "_off"))
    assert len(merged) > 200
    np.testing.assert_allclose(merged["probability"], merged["probability_off"], atol=1e-6)
    # a frame's rows after rank 0 (the held, explained class) follow the smoothed probability
    rest = on[on["rank"] > 0].groupby("frame_index")["probability_smoothed"]
    assert rest.apply(lambda p: p.is_monotonic_decreasing).all()
    first = on[on["frame_index"] == on["frame_index"].min()]
    np.testing.assert_allclose(first["probability_smoothed"], first["probability"], atol=1e-6)  # nothing to average yet
    r = frames["cam_r_prev"].dropna()
    assert len(r) > 60 and r.between(-1, 1).all()
    rank0 = on[on["rank"] == 0].reset_index(drop=True)
    columns = ["frame_index", "class_id", "probability", "probability_smoothed"]
    assert (frames[columns] == rank0[columns]).all().all()  # the frame's row names rank 0, the explained class


def test_the_summary_gives_the_smoothing_and_its_gain(runs):
    out, summaries = runs
    on = json.loads((out / "on" / "sample.summary.json").read_text())["smoothing"]
    assert on["seconds"] == DEFAULT_SMOOTH_S and on["flow"] == "dis" and on["cuts"] >= 0
    smoothed, raw = on["stability"]["smoothed"], on["stability"]["raw"]
    assert set(smoothed) == set(raw) == {"top1_flip_rate", "cam_r_prev_median", "cam_r_prev_p10"}
    assert smoothed["top1_flip_rate"] <= raw["top1_flip_rate"]
    flips = pd.read_csv(out / "on" / "sample.frames.csv")["top1_changed"].sum()
    assert smoothed["top1_flip_rate"] == pytest.approx(flips / 119, abs=1e-4)
    assert summaries["on"].options["smooth"] == DEFAULT_SMOOTH_S


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_bad_smooth_value_is_one_error_line(tmp_path, value):
    result = CliRunner().invoke(app, ["analyze", str(SAMPLE), "--smooth", value, "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: --smooth must be 0 (off) or a time in seconds, not {float(value):g}"]
    assert not any(tmp_path.iterdir())


def test_the_cli_default_is_the_librarys():
    import inspect

    from streamcam import cli

    for command in (cli.analyze, cli.review, cli.live):
        assert inspect.signature(command).parameters["smooth"].default == DEFAULT_SMOOTH_S
    from streamcam.apps.review import REVIEW_FAITH_EVERY

    assert inspect.signature(cli.review).parameters["faithfulness_every"].default == REVIEW_FAITH_EVERY


def test_save_cams_writes_the_documented_layout(runs):
    out, summaries = runs
    for name in ("on", "off"):
        cams = np.load(out / name / "sample.cams.npz")
        assert sorted(cams.files) == ["cams", "cams_raw", "class_ids", "frame_index", "time_s"]
        assert cams["frame_index"].shape == cams["time_s"].shape == (120,) and cams["class_ids"].shape == (120, 1)
        assert cams["cams"].shape == cams["cams_raw"].shape == (120, 1, 7, 7) and cams["cams"].dtype == np.float16
        assert cams["cams"].min() >= 0 and cams["cams"].max() <= 1
        table = pd.read_csv(out / name / "sample.predictions.csv")
        top = table[table["rank"] == 0]
        assert cams["frame_index"].tolist() == top["frame_index"].tolist()
        assert cams["class_ids"][:, 0].tolist() == top["class_id"].tolist()  # the class drawn is rank 0
        np.testing.assert_allclose(cams["time_s"], top["time_s"], atol=1e-6)
        assert summaries[name].outputs["cams"] == str(out / name / "sample.cams.npz")
    off, on = np.load(out / "off" / "sample.cams.npz"), np.load(out / "on" / "sample.cams.npz")
    assert np.array_equal(off["cams"], off["cams_raw"])  # nothing smoothed
    assert not np.array_equal(on["cams"], on["cams_raw"])
    same = off["class_ids"][:, 0] == on["class_ids"][:, 0]  # where the held class is the raw top-1
    assert same.sum() > 60
    np.testing.assert_array_equal(off["cams"][same], on["cams_raw"][same])  # the engine's own maps, either way


def test_cams_file_refuses_a_changing_grid_and_leaves_nothing_on_abort(tmp_path):
    from streamcam.outputs.cams_file import CamsNpz

    npz = CamsNpz(tmp_path / "x.cams.npz")
    npz.add(0, 0.0, [1], np.zeros((1, 7, 7)))
    with pytest.raises(ValueError, match="changed shape"):
        npz.add(1, 0.04, [1], np.zeros((1, 8, 8)))
    npz.abort()
    assert list(tmp_path.iterdir()) == []


def test_faithfulness_scores_every_nth_frame_and_beats_its_control(default_engine, tmp_path):
    """Grad-CAM on the sample's cat: removing the map's top pixels costs the class far more than
    removing its bottom ones, and far more than a random map's top pixels do."""
    options = AnalyzeOptions(top_n=2, out_dir=tmp_path, video=False, cam_classes="top1,tiger_cat", faithfulness_every=4, end=2.0)
    summary = analyze(str(SAMPLE), default_engine, options)
    frames = pd.read_csv(tmp_path / "sample.frames.csv")
    assert list(frames.columns)[6:13] == [*TRUST_COLUMNS, "faith", "faith_control"]
    assert list(frames.columns)[-5:] == [f"{kind}_tiger_cat" for kind in ("p", "plocal", "peak_x", "peak_y", "faith")]
    scored = frames["faith"].notna()
    assert scored.tolist() == [i % 4 == 0 for i in range(len(frames))]  # every 4th analysed frame
    assert (frames["faith_tiger_cat"].notna() == scored).all() and (frames["faith_control"].notna() == scored).all()
    figures = summary.faithfulness
    assert figures["class"] == "top1" and figures["every"] == 4 and figures["frames_scored"] == scored.sum() == 13
    assert figures["mean"] == pytest.approx(frames["faith"].mean(), abs=1e-3)
    # one random map per frame: a single control varies (0.58 on a frame where the cat fills the picture),
    # its mean over a clip tends to 0 (0.007 over the whole sample at every 10th frame)
    assert figures["mean"] > 0.1 and abs(figures["control_mean"]) < figures["mean"] / 2, figures
    assert 0 <= figures["low_share"] <= 1 and figures["low_threshold"] > 0


def test_with_named_classes_only_the_summary_scores_the_first_of_them(default_engine, tmp_path):
    options = AnalyzeOptions(out_dir=tmp_path, video=False, cam_classes="tiger_cat,bicycle-built-for-two", faithfulness_every=8, end=1.0)
    figures = analyze(str(SAMPLE), default_engine, options).faithfulness
    table = pd.read_csv(tmp_path / "sample.frames.csv")
    assert table["faith"].isna().all()  # no top class explained, so none scored
    assert figures["class"] == "tiger_cat"
    assert figures["mean"] == pytest.approx(table["faith_tiger_cat"].mean(), abs=1e-3)


@pytest.mark.parametrize("args", [["--faithfulness-every", "0"], ["--faithfulness-every", "-3"]])
def test_a_bad_faithfulness_stride_is_one_error_line(tmp_path, args):
    result = CliRunner().invoke(app, ["analyze", str(SAMPLE), *args, "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: --faithfulness-every must be 1 or more frames, not {args[1]}"]
    assert not any(tmp_path.iterdir())


def test_the_summary_says_what_the_model_saw(default_engine, tmp_path):
    """`seen`: the explained top-1 classes as the frames CSV lists them, counted and timed, and the
    named class's peaks, each a peak of its p or plocal curve in that CSV."""
    options = AnalyzeOptions(top_n=2, out_dir=tmp_path, video=False, cam_classes="top1,tiger_cat")
    seen = analyze(str(SAMPLE), default_engine, options).seen
    frames = pd.read_csv(tmp_path / "sample.frames.csv")
    assert seen["top1"]["of"] == "smoothed" and seen["top1"]["distinct_classes"] == frames["class_id"].nunique()
    counts = frames["class_id"].value_counts()
    listed = seen["top1"]["classes"]
    assert [c["frames"] for c in listed] == counts.tolist()[:5] and listed[0]["class_id"] == counts.index[0]
    for entry in listed:
        rows = frames[frames["class_id"] == entry["class_id"]]
        assert entry["first_s"] == pytest.approx(rows["time_s"].min(), abs=1e-3)
        assert entry["last_s"] == pytest.approx(rows["time_s"].max(), abs=1e-3)
        assert entry["runs"] == int((rows.index.to_series().diff() != 1).sum())  # stretches of consecutive frames
        assert entry["share"] == pytest.approx(len(rows) / 120, abs=1e-4)
    (cat,) = seen["named"]
    assert cat["class_name"] == "tiger_cat" and cat["p_max"] == pytest.approx(frames["p_tiger_cat"].max(), abs=1e-4)
    assert 1 <= len(cat["peaks"]) == min(cat["peaks_found"], 10)
    assert cat["peaks"] == sorted(cat["peaks"], key=lambda p: p["time_s"])
    for peak in cat["peaks"]:
        row = frames[frames["frame_index"] == peak["frame_index"]].iloc[0]
        assert peak["time_s"] == pytest.approx(row["time_s"], abs=1e-3)
        assert peak["p"] == pytest.approx(row["p_tiger_cat"], abs=1e-4) and peak["plocal"] == pytest.approx(
            row["plocal_tiger_cat"], abs=1e-4
        )
        for curve in peak["on"]:  # no neighbour higher on the curve it peaks on
            column = frames[f"{curve}_tiger_cat"]
            i = row.name
            assert column[i] >= column[max(i - 1, 0)] - 1e-6 and column[i] >= column[min(i + 1, 119)] - 1e-6
    assert json.loads((tmp_path / "sample.summary.json").read_text())["seen"] == seen
