"""The batch on a real local Ray cluster (batch_ray.py): the same outputs as the local batch, one
manifest line per video, and a re-run that skips what is done.

Without Ray these tests FAIL in CI (env CI set: a skipped test in CI tests nothing) and are
skipped elsewhere (a clone installed without the `test` extra).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamcam.apps.analyze import AnalyzeOptions
from streamcam.apps.batch import COMPLETE, FAILED, SKIPPED, Manifest, exit_code, run_local, settings_of

from conftest import _in_ci
from videos import make_video

ENGINE_ARGS = {"model": "efficientnet-lite0"}  # the default, embedded: loads offline
OPTIONS = AnalyzeOptions(video=False)  # the CSV is what is compared; no video encoding

pytestmark = pytest.mark.slow  # every test here runs on a real local Ray cluster (about 5 s to start)


@pytest.fixture(scope="module", autouse=True)
def need_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        reason = f"Ray batch tests need ray[data] ({exc}); pip install -e '.[test]'"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Three clips (two named clip.mp4) and a zero-byte one, run locally and on Ray (a cluster
    run_ray starts itself and shuts down)."""
    import ray

    from streamcam.apps import batch_ray
    from streamcam.explain.runtime import build_engine

    root = tmp_path_factory.mktemp("ray-clips")
    for sub in ("a", "b"):
        (root / sub).mkdir()
    make_video(root / "a" / "clip.mp4", 12, size=(96, 64))
    make_video(root / "a" / "other.mp4", 10, size=(96, 64))
    make_video(root / "b" / "clip.mp4", 16, size=(96, 64))
    (root / "b" / "empty.mp4").write_bytes(b"")
    videos = [str(root / p) for p in ("a/clip.mp4", "a/other.mp4", "b/clip.mp4", "b/empty.mp4")]

    local_out, ray_out = root / "out-local", root / "out-ray"
    # The local engine from the same arguments: whichever runtime --runtime auto picks, both sides run it.
    local = run_local(videos, build_engine(**ENGINE_ARGS), OPTIONS, local_out, Manifest(local_out))
    seen = []
    remote = batch_ray.run_ray(videos, ENGINE_ARGS, OPTIONS, ray_out, Manifest(ray_out), workers=2, on_video=seen.append)
    assert not ray.is_initialized()  # the cluster it started is shut down
    assert batch_ray.last_startup_s > 0
    print(f"\nRay start-up: {batch_ray.last_startup_s:.1f} s")
    return {"videos": videos, "root": root, "local": local, "ray": remote, "seen": seen, "ray_out": ray_out}


def _by_path(entries):
    return {e["path"]: e for e in entries}


def test_ray_writes_what_the_local_batch_writes(batch):
    videos, root = batch["videos"], batch["root"]
    local, remote = _by_path(batch["local"]), _by_path(batch["ray"])
    assert sorted(remote) == sorted(videos)
    assert batch["seen"] == batch["ray"]  # on_video saw every entry, as it was recorded
    for video in videos[:3]:
        assert remote[video]["status"] == COMPLETE, remote[video]
        assert remote[video]["frames"] == local[video]["frames"] > 0
        ray_csv = Path(remote[video]["outputs"]["predictions"])
        local_csv = Path(local[video]["outputs"]["predictions"])
        assert ray_csv.is_relative_to(root / "out-ray") and local_csv.relative_to(root / "out-local") == ray_csv.relative_to(
            root / "out-ray"
        )
        assert ray_csv.read_text() == local_csv.read_text()  # frame for frame, same numbers
    # a/clip.mp4 and b/clip.mp4 keep their own folders
    assert remote[videos[0]]["out_dir"] != remote[videos[2]]["out_dir"]
    empty = remote[videos[3]]
    assert empty["status"] == FAILED and empty["error"] and "\n" not in empty["error"]
    assert exit_code(batch["ray"]) == 1

    lines = (batch["ray_out"] / "manifest.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["path"] for line in lines) == sorted(videos)


def test_a_rerun_skips_completed_videos_and_redoes_the_failed_one(batch):
    from streamcam.apps import batch_ray

    videos, out = batch["videos"], batch["ray_out"]
    again = _by_path(batch_ray.run_ray(videos, ENGINE_ARGS, OPTIONS, out, Manifest(out), workers=1))
    assert [again[v]["status"] for v in videos] == [SKIPPED, SKIPPED, SKIPPED, FAILED]
    assert again[videos[3]]["error"] == _by_path(batch["ray"])[videos[3]]["error"]
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 4 + 4  # one line per video per run
    manifest = Manifest(out)  # after a run of skips, the completed videos still count as done
    key = {k: ENGINE_ARGS.get(k) for k in ("model", "weights", "layer", "method", "preprocess")}  # run_ray's own
    done = [manifest.done(v, settings_of(v, OPTIONS, key)) for v in videos]
    assert done == [True, True, True, False]
