"""Seeded fuzz harness for `streamcam analyze`: damaged videos in, never a traceback or a hang out.

    python scripts/fuzz.py                         # 300 cases, seed 0
    python scripts/fuzz.py --cases 20 --seed 3     # a quick run
    python scripts/fuzz.py --seed 0 --only 17 --keep   # re-run one case and keep its files

Inputs: tiny generated clips (mp4/mkv/mov/ts with H.264, webm with VP9, avi with MJPEG, with and
without audio, constant and variable rate) and the shared clips in ../shared/media/videos (left
out when absent). Each case damages one input with one mutation (truncation, cut head, bit flips,
flipped header bytes, a zeroed block, or an entire file of random bytes) and runs the real CLI
(`streamcam.cli.app`) with seeded options (--start/--end/--every/--fps, extra videos, codecs,
--input-size, tracked classes).

Checks per case: no traceback and no hang (per-case timeout); exit code 0, 2 or 130; exit 2
prints one `error:` line and leaves no files; exit 0 gives an overlay video with as many
frames as the CSV has distinct frame_index values (both decoded/read back); no `.partial`
file is ever left behind. Exit status: 1 if any case failed.

Speed: TensorFlow and the model load once, in a worker process that runs case after case
in-process (the engine builder is memoised there); the parent enforces the timeout and
starts a new worker after a hang or a crash (both are failures).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED_VIDEOS = REPO.parent / "shared" / "media" / "videos"
MUTATIONS = ("truncate", "cut_head", "bit_flips", "header_flips", "zero_block", "garbage")
ALLOWED_EXITS = {0, 2, 130}
BATCH = 4  # one batch size for every case: the engine is traced once
WORKER_START_S = 600  # TensorFlow import, model load and the warm-up case

# name: (extension, video codec, audio codec or None, options)
CLIPS = {
    "h264": (".mp4", "libx264", None, {}),
    "h264_aac": (".mp4", "libx264", "aac", {}),
    "h264_aac_faststart": (".mp4", "libx264", "aac", {"faststart": True}),
    "h264_vfr": (".mp4", "libx264", None, {"vfr": True}),
    "h264_mkv": (".mkv", "libx264", None, {}),
    "h264_opus_mkv": (".mkv", "libx264", "libopus", {}),
    "h264_mp2_ts": (".ts", "libx264", "mp2", {}),
    "h264_size_change_ts": (".ts", "libx264", None, {"sizes": True}),  # resolution changes mid-stream
    "h264_aac_faststart_mov": (".mov", "libx264", "aac", {"faststart": True}),
    "mpeg4_aac_mov": (".mov", "mpeg4", "aac", {}),
    "vp9": (".webm", "libvpx-vp9", None, {}),
    "vp9_opus": (".webm", "libvpx-vp9", "libopus", {}),
    "mjpeg": (".avi", "mjpeg", None, {}),
    "mjpeg_pcm": (".avi", "mjpeg", "pcm_s16le", {}),
}


# -- inputs --------------------------------------------------------------------------------------


SIZES = [(64, 48), (96, 64), (128, 96), (160, 120)]


def make_clip(path: Path, name: str, rng: np.random.Generator) -> Path:
    """A tiny clip (64x48..160x120, 10-40 frames) with moving content, per CLIPS[name]."""
    if CLIPS[name][3].get("sizes"):  # MPEG-TS segments of different sizes, bytes concatenated
        first, second = rng.choice(len(SIZES), 2, replace=False)
        parts = [_clip_bytes(path, name, rng, SIZES[k], pts0=i * 1000) for i, k in enumerate((first, second))]
        path.write_bytes(b"".join(parts))
        return path
    path.write_bytes(_clip_bytes(path, name, rng, SIZES[int(rng.integers(len(SIZES)))]))
    return path


def _clip_bytes(path: Path, name: str, rng: np.random.Generator, size: tuple[int, int], pts0: int = 0) -> bytes:
    _ext, vcodec, acodec, opts = CLIPS[name]
    width, height = size
    n, fps = int(rng.integers(10, 41)), int(rng.choice([10, 15, 25, 30]))
    tb = Fraction(1, 90000) if opts.get("vfr") else Fraction(1, fps)
    container_opts = {"movflags": "+faststart"} if opts.get("faststart") else {}
    with av.open(str(path), "w", container_options=container_opts) as out:
        out.metadata.update(title="streamcam fuzz clip", comment=name)  # strings for header flips to hit
        x264 = {"preset": "ultrafast"} if vcodec == "libx264" else {}
        video = out.add_stream(vcodec, rate=fps, options=x264)
        video.width, video.height = width, height
        video.pix_fmt = "yuvj420p" if vcodec == "mjpeg" else "yuv420p"
        video.codec_context.time_base = tb
        video.codec_context.gop_size = int(rng.integers(5, 15))
        audio = out.add_stream(acodec, rate=48000, layout="mono") if acodec else None
        t, yy, xx = 0.0, *np.mgrid[0:height, 0:width]
        for i in range(n):
            rgb = np.stack([(xx * 3 + i * 9) % 256, (yy * 5) % 256, np.full_like(xx, (i * 20) % 256)], -1).astype(np.uint8)
            x = (i * 7) % max(1, width - 16)
            rgb[8:24, x : x + 16] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts0 + round(t / tb), tb
            out.mux(video.encode(frame))
            t += float(rng.choice([0.02, 0.05, 0.13])) if opts.get("vfr") else 1 / fps
        out.mux(video.encode(None))
        if audio is not None:
            _tone(out, audio, t)
    return path.read_bytes()


def _tone(out, stream, seconds: float) -> None:
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, int(seconds * 48000), chunk):
        samples = (0.2 * np.sin(2 * np.pi * 440 * (start + np.arange(chunk)) / 48000)).astype(np.float32)
        fmt = "s16" if stream.codec_context.name == "pcm_s16le" else "fltp"
        data = (samples * 32767).astype(np.int16) if fmt == "s16" else samples
        frame = av.AudioFrame.from_ndarray(data[None, :], format=fmt, layout="mono")
        frame.sample_rate, frame.pts = 48000, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def build_inputs(folder: Path, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2**31])
    return [make_clip(folder / f"{name}{CLIPS[name][0]}", name, rng) for name in CLIPS]


def shared_inputs(folder: Path = SHARED_VIDEOS) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


# -- mutations -----------------------------------------------------------------------------------


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """One seeded mutation of a file's bytes."""
    size = len(data)
    if kind == "garbage":  # an entire file of random bytes
        return rng.integers(0, 256, int(rng.integers(0, 65536)), dtype=np.uint8).tobytes()
    if size == 0:
        return data
    if kind == "truncate":
        return data[: int(rng.integers(0, size))]
    if kind == "cut_head":
        return data[int(rng.integers(1, max(2, size // 2))) :]
    buf = bytearray(data)
    if kind == "bit_flips":
        for _ in range(int(rng.integers(1, 65))):
            buf[int(rng.integers(size))] ^= 1 << int(rng.integers(8))
    elif kind == "header_flips":  # bytes in the first 4 KiB (container headers) get random values
        for _ in range(int(rng.integers(1, 17))):
            buf[int(rng.integers(min(size, 4096)))] = int(rng.integers(256))
    elif kind == "zero_block":
        length = int(rng.integers(16, max(17, size // 8)))
        start = int(rng.integers(0, max(1, size - length)))
        buf[start : start + length] = bytes(len(buf[start : start + length]))
    else:
        raise ValueError(f"unknown mutation {kind!r}")
    return bytes(buf)


# -- cases ---------------------------------------------------------------------------------------


@dataclass
class Case:
    id: int
    base: Path
    mutation: str
    options: list[str]
    result: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def plan_case(seed: int, case_id: int, generated: list[Path], shared: list[Path]) -> Case:
    """Everything about case `case_id` follows from (seed, case_id) alone: reproducible one by one."""
    rng = np.random.default_rng([seed, case_id])
    use_shared = shared and rng.random() < 0.25
    pool = shared if use_shared else generated
    base = pool[int(rng.integers(len(pool)))]
    mutation = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
    opts: list[str] = []
    start = None
    if rng.random() < 0.3:
        start = round(float(rng.uniform(0, 2.0)), 2)
        opts += ["--start", str(start)]
    if rng.random() < 0.3 or use_shared:  # shared clips are long: analyse a second or two of them
        opts += ["--end", str(round((start or 0) + float(rng.uniform(0.3, 2.0)), 2))]
    sampling = rng.random()
    if sampling < 0.2 or use_shared:
        opts += ["--every", str(int(rng.integers(2, 5)))]
    elif sampling < 0.35:
        opts += ["--fps", str(round(float(rng.uniform(1, 12)), 1))]
    if rng.random() < 0.1:
        opts += ["--no-video"]
    if rng.random() < 0.1:
        opts += ["--heatmap-video", "--segmented-video"]
    if rng.random() < 0.1:
        opts += ["--no-audio"]
    if rng.random() < 0.1:
        opts += ["--save-frames", "0.3,1"]
    if rng.random() < 0.1:
        opts += ["--codec", str(rng.choice(["libvpx-vp9", "mpeg4"]))]
    if rng.random() < 0.15:  # other model input sizes (a few, so the engine traces a few shapes)
        opts += ["--input-size", str(rng.choice(["96", "128x64", "160"]))]
    if rng.random() < 0.15:  # tracked classes: local evidence and peak columns in the CSV
        opts += ["--cam-classes", "top1,tabby"]
    return Case(case_id, base, mutation, opts)


def case_rng(seed: int, case_id: int) -> np.random.Generator:
    return np.random.default_rng([seed, case_id, 1])


# -- the worker: TensorFlow loaded once, the real CLI run in-process -----------------------------


def worker_main(conn, log_path: str, warmup: str, warmup_out: str) -> None:
    import faulthandler
    import functools

    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - the worker's stdout/stderr until it exits
    os.dup2(log.fileno(), 1)  # FFmpeg/TensorFlow C-level chatter goes to the log, not the protocol
    os.dup2(log.fileno(), 2)
    faulthandler.enable(log)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import streamcam.cli as cli

    cli._engine = functools.lru_cache(maxsize=4)(cli._engine)  # the real builder, called once
    run_cli(["analyze", warmup, "--out-dir", warmup_out, "-q", "--batch-size", str(BATCH)])
    conn.send("ready")
    while True:
        try:
            args = conn.recv()
        except EOFError:
            return
        conn.send(run_cli(args))


def run_cli(args: list[str]) -> dict:
    """Run `streamcam ARGS` in this process as the console script would; exit code and output."""
    import contextlib
    import io
    import traceback

    from streamcam.cli import app

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rv = app(args=args, prog_name="streamcam", standalone_mode=False)
            code = rv if isinstance(rv, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            code = 130
        except Exception as exc:
            if hasattr(exc, "exit_code") and hasattr(exc, "show"):  # click's usage errors: exit 2 in the CLI
                exc.show()
                code = exc.exit_code
            else:  # what the console script would print as a traceback
                traceback.print_exc()
                code = "traceback"
    return {"exit": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


class Runner:
    """One worker process at a time; a new one after a hang or a crash."""

    def __init__(self, work: Path, timeout: float, warmup: Path):
        self.work, self.timeout, self.warmup = work, timeout, warmup
        self.log = work / "worker.log"
        self.proc = self.conn = None
        self.starts = 0

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        out = self.work / f"warmup{self.starts}"
        self.proc = ctx.Process(target=worker_main, args=(child, str(self.log), str(self.warmup), str(out)), daemon=True)
        self.proc.start()
        child.close()
        self.starts += 1
        if not self.conn.poll(WORKER_START_S) or self.conn.recv() != "ready":
            raise RuntimeError(f"the fuzz worker did not start; see {self.log}")

    def run(self, args: list[str]) -> dict:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        began = time.monotonic()
        self.conn.send(args)
        try:
            ready = self.conn.poll(self.timeout)
            result = self.conn.recv() if ready else {"exit": "timeout"}
        except (EOFError, OSError):
            self.proc.join(5)
            result = {"exit": "crash", "stderr": f"worker died (exit {self.proc.exitcode}); see {self.log}"}
        if result["exit"] in ("timeout", "crash"):
            self.stop()
        result["seconds"] = round(time.monotonic() - began, 2)
        return result

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)
        self.proc = None


# -- checks ----------------------------------------------------------------------------------------


def check(case: Case, out_dir: Path) -> list[str]:
    r, problems = case.result, []
    code = r["exit"]
    text = r.get("stderr", "") + r.get("stdout", "")
    if code == "timeout":
        return ["hang: no result within the timeout"]
    if code == "crash":
        return [r.get("stderr", "worker crashed")]
    if "Traceback" in text or code == "traceback":
        problems.append("traceback: " + text.strip().splitlines()[-1][:300] if text.strip() else "traceback")
    elif code not in ALLOWED_EXITS:
        problems.append(f"exit code {code}: {text.strip()[:300]}")
    files = [p for p in out_dir.rglob("*") if p.is_file()] if out_dir.exists() else []
    if any(".partial" in p.name for p in files):
        problems.append("temporary files left: " + ", ".join(p.name for p in files if ".partial" in p.name))
    if code == 2:
        lines = r["stderr"].strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("error:"):
            problems.append(f"exit 2 without exactly one error line: {r['stderr'][:300]!r}")
        if files:
            problems.append("exit 2 left files: " + ", ".join(p.name for p in files))
    if code == 0:
        problems += _check_outputs(out_dir)
    return problems


def _check_outputs(out_dir: Path) -> list[str]:
    summaries = list(out_dir.glob("*.summary.json"))
    if len(summaries) != 1:
        return [f"exit 0 but {len(summaries)} summary files"]
    summary = json.loads(summaries[0].read_text())
    with open(summary["outputs"]["predictions"], newline="") as f:
        indices = {row["frame_index"] for row in csv.DictReader(f)}
    with open(summary["outputs"]["frames_csv"], newline="") as f:
        rows = [row["frame_index"] for row in csv.DictReader(f)]
    problems = []
    if summary["frames_analysed"] != len(indices):
        problems.append(f"summary says {summary['frames_analysed']} frames, CSV has {len(indices)} frame indices")
    if sorted(rows) != sorted(indices) or len(rows) != len(indices):
        problems.append(f"the frames CSV has {len(rows)} rows for the {len(indices)} frames of the predictions CSV")
    for key in ("video", "heatmap_video", "segmented_video"):
        if key in summary["outputs"]:
            try:
                with av.open(summary["outputs"][key]) as c:
                    frames = sum(1 for _ in c.decode(video=0))
            except (av.FFmpegError, OSError) as exc:
                problems.append(f"{key} unreadable: {exc}")
                continue
            if frames != len(indices):
                problems.append(f"{key} has {frames} frames, CSV has {len(indices)} distinct frame_index values")
    return problems


# -- main ------------------------------------------------------------------------------------------


def run(seed: int, cases: int, timeout: float, work: Path, only: list[int] | None = None, log=print, verbose: bool = False) -> list[Case]:
    generated = build_inputs(work / "inputs", seed)
    shared = shared_inputs()
    runner = Runner(work, timeout, warmup=generated[0])
    done: list[Case] = []
    try:
        for case_id in only if only is not None else range(cases):
            case = plan_case(seed, case_id, generated, shared)
            folder = work / f"case{case_id:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            damaged = folder / f"input{case.base.suffix}"
            damaged.write_bytes(mutate(case.base.read_bytes(), case.mutation, case_rng(seed, case_id)))
            out_dir = folder / "out"
            args = ["analyze", str(damaged), "--out-dir", str(out_dir), "--top-n", "3", "-q", "--batch-size", str(BATCH), *case.options]
            case.result = runner.run(args)
            case.problems = check(case, out_dir)
            if verbose:
                log(
                    f"  case {case_id}: {case.mutation} of {case.base.name} {' '.join(case.options)} -> exit "
                    f"{case.result['exit']} in {case.result['seconds']} s {'FAILED' if case.problems else ''}"
                )
            if not case.problems and only is None:
                shutil.rmtree(folder)  # keep the disk small; failures stay for inspection
            done.append(case)
            if len(done) % 25 == 0 and not verbose:
                log(f"  {len(done)} cases, {sum(bool(c.problems) for c in done)} failures")
    finally:
        runner.stop()
    return done


def report(cases: list[Case], seed: int, seconds: float, restarts: int = 0) -> list[str]:
    exits = Counter(str(c.result.get("exit")) for c in cases)
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for c in cases:
        by_kind[c.mutation][str(c.result.get("exit"))] += 1
    failures = [c for c in cases if c.problems]
    lines = [
        f"fuzz: {len(cases)} cases, seed {seed}, {seconds:.1f} s ({seconds / max(1, len(cases)):.2f} s per case)",
        "exit codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(exits.items())),
        "by mutation: "
        + "; ".join(
            f"{kind} {sum(cnt.values())} (" + ", ".join(f"exit {k}: {v}" for k, v in sorted(cnt.items())) + ")"
            for kind, cnt in sorted(by_kind.items())
        ),
        f"failures: {len(failures)}",
    ]
    for c in failures:
        lines.append(
            f"  case {c.id} (seed {seed}, {c.mutation} of {c.base.name}, options {' '.join(c.options) or '-'}): "
            + "; ".join(c.problems)
            + f"\n    reproduce: python scripts/fuzz.py --seed {seed} --only {c.id} --keep"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300, help="number of cases (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--only", help="comma-separated case ids to run (reproduce failures)")
    parser.add_argument("--work", type=Path, help="work folder (default: a temp folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (inputs, failing cases, worker log)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="streamcam-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    only = [int(x) for x in args.only.split(",")] if args.only else None
    began = time.perf_counter()
    cases = run(args.seed, args.cases, args.timeout, work, only, log=lambda m: print(m, flush=True), verbose=args.verbose)
    lines = report(cases, args.seed, time.perf_counter() - began)
    print("\n".join(lines))
    failed = any(c.problems for c in cases)
    if args.keep or failed:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
