"""Tiled Grad-CAM for fixed-size heads: tile layout, stitching, evidence scaling, tracing."""

import itertools

import numpy as np
import pytest

from streamcam.core.errors import UsageError
from streamcam.explain.engine import CamEngine
from streamcam.explain.tiling import explain_tiled, tile_origins

from tiny_models import bright_square_classifier

BRIGHT, RED = 1, 2  # classes of bright_square_classifier; cells are 4x4 pixels


@pytest.fixture(scope="module")
def engine():
    return CamEngine(bright_square_classifier())


def square(image, y, x, value=(255, 255, 255), size=8):
    image[..., y : y + size, x : x + size, :] = value
    return image


def tiles_of(image, th=32, tw=32):
    return np.stack([image[y : y + th, x : x + tw] for y, x in tile_origins(*image.shape[:2], th, tw)])


@pytest.mark.parametrize(
    ("height", "width", "th", "tw", "overlap"),
    [
        (32, 32, 32, 32, 0.25),
        (33, 32, 32, 32, 0.25),
        (56, 80, 32, 32, 0.25),
        (540, 960, 224, 224, 0.25),
        (100, 37, 10, 7, 0.5),
        (41, 64, 16, 24, 0.0),
    ],
)
def test_tile_origins_cover_overlap_and_stay_inside(height, width, th, tw, overlap):
    origins = tile_origins(height, width, th, tw, min_overlap=overlap)
    covered = np.zeros((height, width), bool)
    for y, x in origins:
        assert 0 <= y <= height - th and 0 <= x <= width - tw
        covered[y : y + th, x : x + tw] = True
    assert covered.all()
    ys, xs = sorted({y for y, _ in origins}), sorted({x for _, x in origins})
    assert len(origins) == len(ys) * len(xs)  # a full grid
    assert ys[-1] + th == height and xs[-1] + tw == width  # flush with the far borders
    for axis, tile in ((ys, th), (xs, tw)):
        assert all(tile - (b - a) >= overlap * tile for a, b in itertools.pairwise(axis))


def test_native_size_is_one_tile_and_smaller_is_refused(engine):
    assert tile_origins(32, 32, 32, 32) == [(0, 0)]
    with pytest.raises(UsageError, match="smaller"):
        tile_origins(31, 64, 32, 32)
    with pytest.raises(UsageError, match="shape"):
        explain_tiled(engine, np.zeros((1, 31, 64, 3), np.uint8))
    with pytest.raises(UsageError, match="class ids"):
        explain_tiled(engine, np.zeros((1, 32, 64, 3), np.uint8), class_ids=[3])


def test_object_in_one_tile_gives_that_tiles_cam_and_probability(engine):
    image = np.zeros((32, 80, 3), np.uint8)  # tiles at x = 0, 24, 48
    square(image, 12, 4)  # the object: only in the first tile (cells y 3-4, x 1-2)
    square(image, 12, 68, (153,) * 3)  # a faint bright patch, only in the last tile
    result = explain_tiled(engine, image[None], top_k=1)
    assert result.class_ids.tolist() == [[BRIGHT]]
    cam = result.cams[0, 0]
    assert cam.shape == (8, 20)
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    assert 3 <= peak[0] <= 4 and 1 <= peak[1] <= 2, cam.round(2)

    tiles = engine.explain(tiles_of(image), top_k=0, class_ids=[BRIGHT])
    first, last = tiles.probabilities[0, BRIGHT], tiles.probabilities[2, BRIGHT]
    assert result.probabilities[0, BRIGHT] == pytest.approx(first, abs=1e-6)
    assert first > 0.9 > 0.5 > last
    # Cells that only the first tile holds are its CAM as it is (it has the strongest evidence).
    np.testing.assert_allclose(cam[:, :6], tiles.cams[0, 0, :, :6], atol=1e-5)
    # The faint patch's tile map peaks at 1 too; scaled by its evidence it stays faint.
    assert tiles.cams[2, 0].max() == 1
    assert cam[3, 17] == pytest.approx(last / first, abs=1e-3)


def test_object_in_an_overlap_keeps_the_stronger_tiles_evidence_and_peaks_at_1(engine):
    image = np.zeros((2, 32, 80, 3), np.uint8)  # frame 1 stays black
    square(image[0], 12, 24)  # in the overlap of the tiles at x = 0 and 24
    square(image[0], 12, 40, (255, 0, 0))  # makes "bright" less likely in the second tile only
    result = explain_tiled(engine, image, top_k=0, class_ids=[BRIGHT])
    tiles = engine.explain(tiles_of(image[0]), top_k=0, class_ids=[BRIGHT]).probabilities[:, BRIGHT]
    assert tiles[0] > tiles[1] + 0.2
    assert result.probabilities[0, BRIGHT] == pytest.approx(tiles[0], abs=1e-6)
    cam = result.cams[0, 0]
    assert cam.max() == pytest.approx(1) and cam.min() == 0  # the blend of 1 and a weaker tile, rescaled
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    assert 3 <= peak[0] <= 4 and 6 <= peak[1] <= 7, cam.round(2)
    assert (result.cams[1] == 0).all()  # nothing to point at stays all zeros (no 0/0)


def test_no_seams_where_tiles_meet(engine):
    # A fine texture above mid-grey: every tile's map is the same plateau, lower on its border
    # cells (the box conv's zero padding), so only the blend keeps those dips out of the middle.
    image = np.full((56, 80, 3), 255, np.uint8)
    image[::2] = 200
    cam = explain_tiled(engine, image[None], top_k=0, class_ids=[BRIGHT]).cams[0, 0]
    tile_map = engine.explain(image[None, :32, :32], top_k=0, class_ids=[BRIGHT]).cams[0, 0]
    dip = tile_map[4, 4] - tile_map[4, 0]
    assert dip > 0.5  # the tiles really do disagree at their borders
    inner = cam[1:-1, 1:-1]  # the image's own border cells keep their (real) dip
    jumps = max(np.abs(np.diff(inner, axis=0)).max(), np.abs(np.diff(inner, axis=1)).max())
    assert jumps < 0.25 * dip, cam.round(2)
    assert cam[0, 10] < 0.5 < cam[5, 10]  # ...which is there, so the map is not just flat


def test_local_probabilities_are_the_max_over_tiles(engine):
    image = np.random.default_rng(0).integers(0, 120, (56, 80, 3), dtype=np.uint8)
    square(image, 4, 8)
    square(image, 40, 60, (250, 20, 20))
    result = explain_tiled(engine, image[None], top_k=2, class_ids=[0])
    per_tile = engine.explain(tiles_of(image), top_k=1).probabilities  # (6 tiles, 3)
    assert len(per_tile) == 6
    np.testing.assert_allclose(result.probabilities[0], per_tile.max(axis=0), atol=1e-6)
    assert sorted(result.class_ids[0, :2].tolist()) == [BRIGHT, RED]
    np.testing.assert_allclose(result.local_probabilities[0], per_tile.max(axis=0)[result.class_ids[0]], atol=1e-6)
    assert result.cams.shape == (1, 3, 14, 20)
    assert result.cams.min() >= 0 and result.cams.max() <= 1


def test_native_size_matches_plain_explain(engine):
    image = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    square(image[0], 8, 16)
    square(image[1], 20, 4, (255, 0, 0))
    tiled = explain_tiled(engine, image, top_k=2, class_ids=[0])
    plain = engine.explain(image, top_k=2, class_ids=[0])
    np.testing.assert_allclose(tiled.probabilities, plain.probabilities, atol=1e-6)
    np.testing.assert_array_equal(tiled.class_ids, plain.class_ids)
    np.testing.assert_allclose(tiled.cams, plain.cams, atol=1e-5)
    np.testing.assert_allclose(tiled.local_probabilities, np.take_along_axis(plain.probabilities, plain.class_ids, 1), atol=1e-6)


def test_video_run_traces_each_pass_once():
    engine = CamEngine(bright_square_classifier())
    rng = np.random.default_rng(2)
    seen = set()
    for count in (2, 2, 2, 1):  # a video's batches, the last one short
        frames = rng.integers(0, 100, (count, 32, 56, 3), dtype=np.uint8)
        for frame in frames:
            square(frame, rng.integers(0, 24), rng.integers(0, 48), (255, 0, 0) if rng.random() < 0.5 else (255, 255, 255))
        result = explain_tiled(engine, frames, top_k=1, class_ids=[0], pad_to=3)
        seen.update(map(tuple, result.class_ids.tolist()))
    assert len(seen) > 1  # several class sets, so several second-pass groups per batch
    assert engine._explain.experimental_get_tracing_count() == 2  # rank tiles, explain classes


@pytest.mark.parametrize(("height", "width"), [(32, 80), (80, 32)])
def test_non_square_images(engine, height, width):
    image = np.zeros((height, width, 3), np.uint8)
    square(image, height - 12, width - 12)  # in the last tile only
    cam = explain_tiled(engine, image[None], top_k=1).cams[0, 0]
    assert cam.shape == (height // 4, width // 4)
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    assert peak in {(height // 4 - 3 + dy, width // 4 - 3 + dx) for dy in (0, 1) for dx in (0, 1)}
    if height > width:  # the model is symmetric under transposition, so the maps are too
        other = np.zeros((width, height, 3), np.uint8)
        square(other, width - 12, height - 12)
        np.testing.assert_allclose(cam, explain_tiled(engine, other[None], top_k=1).cams[0, 0].T, atol=1e-5)


def test_non_square_tiles():
    engine = CamEngine(bright_square_classifier(32, 48))
    image = np.zeros((56, 100, 3), np.uint8)  # tiles: y 0, 24; x 0, 26, 52
    square(image, 44, 84)
    result = explain_tiled(engine, image[None], top_k=1)
    cam = result.cams[0, 0]
    assert cam.shape == (14, 25)
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    assert 11 <= peak[0] <= 12 and 21 <= peak[1] <= 22, cam.round(2)
    tile = engine.explain(image[None, 24:, 52:], top_k=0, class_ids=[BRIGHT])
    assert result.probabilities[0, BRIGHT] == pytest.approx(tile.probabilities[0, BRIGHT], abs=1e-6)


def test_engine_explain_sends_larger_pictures_of_a_fixed_head_to_the_tiles(engine, tmp_path):
    """CamEngine.explain itself tiles, so analyze/image/live need nothing special; analyze end to end."""
    images = np.zeros((2, 56, 80, 3), np.uint8)
    images[:, 8:20, 50:66] = 255
    direct = engine.explain(images, top_k=1, class_ids=[2])
    tiled = explain_tiled(engine, images, top_k=1, class_ids=[2])
    np.testing.assert_allclose(direct.cams, tiled.cams, atol=1e-6)
    np.testing.assert_allclose(direct.local_probabilities, tiled.local_probabilities, atol=1e-6)
    assert direct.cams.shape == (2, 2, 14, 20)
    with pytest.raises(UsageError):
        engine.explain(np.zeros((1, 16, 80, 3), np.uint8))  # smaller than a tile: refused, not tiled

    import av

    from streamcam.apps.analyze import AnalyzeOptions, analyze

    src = tmp_path / "clip.mp4"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(5):
            frame = np.zeros((96, 160, 3), np.uint8)
            frame[20:44, 10 + 20 * i : 34 + 20 * i] = 255  # a bright square moving right
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    summary = analyze(str(src), engine, AnalyzeOptions(out_dir=tmp_path, top_n=2, cam_classes="top1,1", input_size="160"))
    assert summary.frames_analysed == 5
    import csv

    with open(tmp_path / "clip.frames.csv") as file:
        rows = list(csv.DictReader(file))
    xs = [float(r["peak_x_class_1"]) for r in rows]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 0.3  # the bright class's peak follows the square


def test_forward_only_probabilities_of_a_large_picture_match_the_tiled_explanation(engine):
    """engine.probabilities on a picture larger than the fixed head goes by tiles too (removal scores
    compare its figures with explain's), and agrees with explain_tiled's max over tiles."""
    image = np.random.default_rng(2).integers(0, 120, (2, 56, 80, 3), dtype=np.uint8)
    square(image[0], 4, 8)
    square(image[1], 40, 60, (250, 20, 20))
    np.testing.assert_allclose(engine.probabilities(image), explain_tiled(engine, image, top_k=1).probabilities, atol=1e-6)


def test_faithfulness_scores_tiled_pictures(engine):
    """--faithfulness with a fixed-size head at a larger --input-size: scored, not a crash mid-run."""
    from streamcam.explain.trust.faithfulness import FaithfulnessRun

    image = np.random.default_rng(3).integers(0, 120, (2, 56, 80, 3), dtype=np.uint8)
    square(image, 20, 30, size=12)
    batch = FaithfulnessRun(engine).score(image, explain_tiled(engine, image, top_k=1))
    assert np.isfinite(batch.faith).all() and np.isfinite(batch.faith_control).all()
    assert batch.faith[:, 0].min() > batch.faith_control[:, 0].max()  # the bright square's map beats a random one
