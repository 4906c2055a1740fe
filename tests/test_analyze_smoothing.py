"""analyze with temporal smoothing (on by default) and without (--smooth 0): the CSV, the summary, the CLI."""

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
TRUST_COLUMNS = ["probability_smoothed", "top1_changed", "cam_r_prev"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, default_engine):
    """The bundled sample (120 frames, a few shots) analysed with default smoothing and with --smooth 0."""
    out = tmp_path_factory.mktemp("smoothing")
    summaries = {}
    for name, smooth in (("on", DEFAULT_SMOOTH_S), ("off", 0.0)):
        options = AnalyzeOptions(top_n=3, out_dir=out / name, video=False, smooth=smooth)
        summaries[name] = analyze(str(SAMPLE), default_engine, options)
    return out, summaries


def test_smoothing_off_writes_each_frame_as_the_engine_gives_it(runs, default_engine):
    out, summaries = runs
    table = pd.read_csv(out / "off" / "sample.predictions.csv")
    assert list(table.columns) == RAW_COLUMNS
    assert summaries["off"].smoothing is None
    assert (table.groupby("frame_index")["probability"].apply(lambda p: p.is_monotonic_decreasing)).all()
    assert table.groupby("frame_index")["rank"].apply(list).tolist() == [[0, 1, 2]] * 120


def test_smoothing_on_adds_its_columns_and_keeps_the_models_probabilities(runs):
    out, _summaries = runs
    on = pd.read_csv(out / "on" / "sample.predictions.csv")
    off = pd.read_csv(out / "off" / "sample.predictions.csv")
    assert list(on.columns) == RAW_COLUMNS + TRUST_COLUMNS
    assert on["frame_index"].nunique() == 120 and set(on["top1_changed"]) <= {0, 1}
    # `probability` is still the model's own: the same as without smoothing, class by class
    merged = on.merge(off, on=["frame_index", "class_id"], suffixes=("", "_off"))
    assert len(merged) > 200
    np.testing.assert_allclose(merged["probability"], merged["probability_off"], atol=1e-6)
    # a frame's rows after rank 0 (the held, explained class) follow the smoothed probability
    rest = on[on["rank"] > 0].groupby("frame_index")["probability_smoothed"]
    assert rest.apply(lambda p: p.is_monotonic_decreasing).all()
    first = on[on["frame_index"] == on["frame_index"].min()]
    np.testing.assert_allclose(first["probability_smoothed"], first["probability"], atol=1e-6)  # nothing to average yet
    r = on[on["rank"] == 0]["cam_r_prev"].dropna()
    assert len(r) > 60 and r.between(-1, 1).all()


def test_the_summary_gives_the_smoothing_and_its_gain(runs):
    out, summaries = runs
    on = json.loads((out / "on" / "sample.summary.json").read_text())["smoothing"]
    assert on["seconds"] == DEFAULT_SMOOTH_S and on["flow"] == "dis" and on["cuts"] >= 0
    smoothed, raw = on["stability"]["smoothed"], on["stability"]["raw"]
    assert set(smoothed) == set(raw) == {"top1_flip_rate", "cam_r_prev_median", "cam_r_prev_p10"}
    assert smoothed["top1_flip_rate"] <= raw["top1_flip_rate"]
    table = pd.read_csv(out / "on" / "sample.predictions.csv")
    flips = table[table["rank"] == 0]["top1_changed"].sum()
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
