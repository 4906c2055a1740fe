"""streamcam image: library API and CLI, file naming contract, and bad input."""

import re

import pytest
from typer.testing import CliRunner

from streamcam.apps.image import ImageExplainer, read_image
from streamcam.cli import app
from streamcam.core.preprocess import resize_batch

from conftest import REPO, shared_file

NAME = re.compile(
    r"^(?P<stem>.+)_(?P<rank>\d+)_(?P<cid>\d+)_(?P<name>[\w.\-]+)_(?P<prob>\d\.\d{3})_(?P<kind>gradcam|heatmap|segmented|guided_bprop|guided_gradcam)\.(png|jpg)$"
)
SAMPLE = REPO / "sample_videos" / "sample.jpg"
runner = CliRunner()


@pytest.mark.slow
def test_explainer_writes_ancestor_named_files_at_input_resolution(default_engine, tmp_path):
    explainer = ImageExplainer(default_engine, ("gradcam", "heatmap", "segmented", "guided_bprop", "guided_gradcam"))
    result = explainer.explain(SAMPLE, top_n=2, class_ids=[920], out_dir=tmp_path)
    assert [c.rank for c in result.ranked] == [0, 1]
    assert result.ranked[0].class_id == 285  # chelsea: Egyptian cat
    assert len(result.written) == 3 * 5
    size = read_image(SAMPLE).shape
    for path in result.written:
        m = NAME.match(path.name)
        assert m, path.name
        assert m["stem"] == "sample" and path.suffix == ".jpg"
        assert read_image(path).shape == size
    light = [p for p in result.written if "_920_traffic_light_" in p.name]
    assert len(light) == 5 and int(NAME.match(light[0].name)["rank"]) > 1  # its real rank, not a top-n slot
    assert not list(tmp_path.glob(".*partial*"))


def test_cli_image_prints_ancestor_lines_and_honours_outputs(tmp_path):
    result = runner.invoke(app, ["image", str(SAMPLE), "--top-n", "3", "--outputs", "gradcam,heatmap", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if re.match(r"^\d+: class id:", line)]
    assert len(lines) == 3
    assert lines[0].startswith("0: class id: 285, class name: Egyptian_cat, probability: 0.")
    assert "synset: n02124075 Egyptian cat" in lines[0]
    kinds = sorted(NAME.match(p.name)["kind"] for p in tmp_path.iterdir())
    assert kinds == ["gradcam"] * 3 + ["heatmap"] * 3


def test_cli_named_classes_and_options(tmp_path):
    result = runner.invoke(
        app,
        [
            "image",
            str(SAMPLE),
            "-n",
            "1",
            "--classes",
            "bicycle-built-for-two,moped",
            "--outputs",
            "gradcam",
            "--method",
            "gradcam++",
            "--alpha",
            "0.3",
            "--colormap",
            "turbo",
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3
    assert any("_444_bicycle-built-for-two_" in n for n in names) and any("_665_moped_" in n for n in names)


def test_bad_inputs_fail_cleanly_and_good_ones_still_run(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(SAMPLE.read_bytes()[:200])
    out = tmp_path / "out"
    args = [
        "image",
        str(tmp_path / "missing.jpg"),
        str(tmp_path),
        str(empty),
        str(text),
        str(broken),
        str(SAMPLE),
        "-n",
        "1",
        "--outputs",
        "heatmap",
        "-o",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 5, result.stderr
    assert "no such file" in errors[0] and "directory" in errors[1] and "empty" in errors[2]
    assert "Traceback" not in result.output + result.stderr
    assert [p.name.split("_")[0] for p in out.iterdir()] == ["sample"]


def test_cli_usage_errors_exit_2(tmp_path):
    for extra in (["--classes", "zzzz"], ["--outputs", "x"], ["--method", "nope"], ["--colormap", "nope"], ["--model", "nope"]):
        result = runner.invoke(app, ["image", str(SAMPLE), "-o", str(tmp_path), *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert result.stderr.count("\n") <= 2
    assert not list(tmp_path.iterdir())


ANCESTOR_INPUTS = ("cat_dog.png", "desk.png", "uberfatalcrashvid970_0.jpg")


@pytest.mark.parametrize("input_name", ANCESTOR_INPUTS)
def test_files_written_for_the_ancestor_inputs_are_named_like_the_ancestor_examples(default_engine, input_name, tmp_path):
    """Explain each seed input for the classes the ancestor's example outputs show; every example
    file must have a streamcam twin whose name differs only in the rank and probability fields
    (another model ranks differently), and those fields must be streamcam's own ranking."""
    source = shared_file("seed_examples", input_name)
    names = sorted(p.name for p in source.parent.iterdir() if p.name.startswith(f"{source.stem}_"))
    assert names, "the seed README lists example outputs for every input"
    examples = [NAME.match(name) for name in names]
    assert all(m and m["stem"] == source.stem for m in examples), names
    class_ids = sorted({int(m["cid"]) for m in examples})
    kinds = sorted({m["kind"] for m in examples})
    result = ImageExplainer(default_engine, kinds).explain(source, top_n=1, class_ids=class_ids, out_dir=tmp_path)
    written = {p.name for p in result.written}
    assert written == {p.name for p in tmp_path.iterdir()}
    batch = resize_batch([read_image(source)], default_engine.classifier.input_size)
    probs = default_engine.explain(batch, top_k=1, class_ids=class_ids).probabilities[0]
    for example in examples:
        cid = int(example["cid"])
        rank = int((probs > probs[cid]).sum())
        twin = f"{source.stem}_{rank}_{cid}_{example['name']}_{probs[cid]:.3f}_{example['kind']}{source.suffix}"
        assert twin in written, (example.string, sorted(written))
        assert NAME.match(twin)["stem"] == source.stem
    assert len(written) == len({(c.class_id, k) for c in result.explained for k in kinds})
