"""Command line: a thin typer layer over the library. Library errors become one line and an exit code."""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streamcam.core.ctrl_c import ctrl_c_after
from streamcam.core.errors import OutputError, StreamcamError
from streamcam.core.progress import BatchProgress, FrameProgress


class _HelpCommand(typer.core.TyperCommand):
    """A command whose --help names each value in human terms ('--start TIME', 'SOURCE...')
    instead of internal types ('<str>', '<int range>', '<list[str]>')."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if param.metavar is None and not getattr(param, "is_flag", False) and not getattr(param, "is_bool_flag", False):
                param.metavar = _metavar(param)
            if param.param_type_name == "argument":  # its name says what it is; no '<list[str]>' after it
                param.display_type_rich = lambda ctx=None: None
        return params


# What an option's value is, by option name; anything else by its type.
_METAVARS = {
    "--start": "TIME",
    "--end": "TIME",
    "--around": "TIME",
    "--span": "SECONDS",
    "--smooth": "SECONDS",
    "--timeout": "SECONDS",
    "--save-frames": "TIMES",
    "--cam-classes": "CLASSES",
    "--classes": "CLASSES",
    "--out-dir": "DIR",
    "--record": "DIR",
    "--model": "NAME|FILE",
    "--weights": "FILE",
    "--input-size": "SIZE",
    "--alpha": "0..1",
    "--fps": "FPS",
    "--serve": "HOST:PORT",
    "--ray-address": "ADDRESS",
    "--max-mb": "MB",
    "--review-max-mb": "MB",
    "--layer": "LAYER",
}


def _metavar(param) -> str:
    if param.param_type_name == "argument":  # 'sources' -> SOURCE..., 'source' -> SOURCE
        return param.name.upper().removesuffix("S") if param.nargs != 1 else param.name.upper()
    named = next((_METAVARS[opt] for opt in param.opts if opt in _METAVARS), None)
    if named:
        return named
    described = param.type_descriptor
    kind = described.annotation
    if described.is_path or kind is Path:
        return "PATH"
    return {int: "N", float: "NUMBER"}.get(kind, "NAME")


app = typer.Typer(
    help="See what an image classifier looks at: Grad-CAM for videos, streams and images. How the code fits together: README.md, section 'How it fits together'.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help, not rich panels: rich markup ate square brackets ('streamcam[jax]' showed as
    # 'streamcam'), flags showed a '<bool>' placeholder, and at 80 columns the description column
    # was about 20 characters wide. Click wraps each description under its option instead.
    rich_markup_mode=None,
)
err_console = Console(stderr=True, highlight=False)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="efficientnet-lite0 (embedded, default), vgg16, or a Keras .keras/.h5 file.")]
WeightsOpt = Annotated[
    Path | None, typer.Option("--weights", help="Weights file: Keras .weights.h5/.h5, or tensorflow-vgg vgg16.npy for --model vgg16.")
]
LayerOpt = Annotated[
    str | None,
    typer.Option("--layer", help="Layer to explain (default: the last convolutional feature map; 'outer/inner' for nested models)."),
]
MethodOpt = Annotated[
    str, typer.Option("--method", help="CAM method: gradcam, gradcam++, hirescam, layercam, xgradcam, eigencam, scorecam.")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (GPU when the backend sees one), cpu or gpu.")]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Keras backend that runs the model: tensorflow (default, unless KERAS_BACKEND names another), jax (pip install 'streamcam[jax]'), or auto (the faster one measured here: JAX for one frame per call, as live makes, TensorFlow for batches; whichever is installed).",
        show_default=False,
    ),
]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="What runs the model: auto (OpenVINO on a CPU when it is installed and the model's head is global average pooling then linear layers, as the default model's; Keras otherwise), keras, or openvino (pip install 'streamcam[openvino]'; exact CAMs from one forward pass, 1.5-3x faster on a CPU).",
    ),
]
PreprocessOpt = Annotated[
    str | None,
    typer.Option(
        "--preprocess",
        help="Input scaling for a model file: raw (0..255, default), tf (-1..1), torch (ImageNet mean/std), caffe (BGR minus means), lite.",
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option("--precision", help="auto (mixed float16 on a GPU, float32 on a CPU, where bfloat16 measured slower), float32 or mixed."),
]
AlphaOpt = Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Heatmap weight in overlays, 0..1.")]
InputSizeOpt = Annotated[
    str,
    typer.Option(
        "--input-size",
        help="Model input: 224x224 (default, the frame squashed), WxH, or N for the long side with the aspect ratio kept (e.g. 640: finer maps of small objects, slower). Rounded to the model's stride.",
    ),
]
HeatOpt = Annotated[
    str,
    typer.Option(
        "--heat",
        help="How strongly each class's heatmap is drawn: evidence (scaled by the class's probability, faded out below 0.1, full from 0.5, with a colour bar; absent classes leave the frame as it is), local (the same by its best feature cell's probability, plocal: finds small objects, also flags absent ones) or minmax (every map stretched to full colour on every frame, the old look).",
    ),
]
SmoothOpt = Annotated[
    float,
    typer.Option(
        "--smooth",
        help="Temporal smoothing's time constant in seconds, by the frames' timestamps: probabilities averaged, the explained top class changed only when another leads for a while, heatmaps carried along the optical flow and blended; a cut resets it. 0 turns it off (each frame on its own, as before).",
    ),
]
FaithEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--faithfulness-every",
        help="Score every N-th frame's heatmaps by removal (ROAD): how much the class loses when the map's top pixels are imputed away, against its bottom ones, and against a random map; written as faith columns and in the summary. Costs about 13 model runs per scored frame.",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds a URL may take to connect or to send more data before it counts as lost.")
]
MaxMbOpt = Annotated[
    float,
    typer.Option(
        "--max-mb",
        min=0.01,
        help="Size cap of the review page in MB: past it the frames are stored smaller, then only every k-th frame plus those near peaks is kept (the page says so).",
    ),
]
ColormapOpt = Annotated[str, typer.Option("--colormap", help="Heatmap colours: jet, turbo, inferno, magma, viridis, hot, plasma.")]


@dataclass(frozen=True)
class EngineChoice:
    """What the engine options asked for: the model, how to explain it, and what runs it."""

    model: str = "efficientnet-lite0"
    weights: Path | None = None
    preprocess: str | None = None
    layer: str | None = None
    method: str = "gradcam"
    device: str = "auto"
    precision: str = "auto"
    backend: str | None = None
    runtime: str = "auto"


DEFAULT_ENGINE = EngineChoice()  # frozen: one shared default is safe

# Each EngineChoice field's option, in the order --help lists them.
_ENGINE_OPTIONS = {
    "model": ModelOpt,
    "weights": WeightsOpt,
    "preprocess": PreprocessOpt,
    "layer": LayerOpt,
    "method": MethodOpt,
    "device": DeviceOpt,
    "precision": PrecisionOpt,
    "backend": BackendOpt,
    "runtime": RuntimeOpt,
}


def with_engine_options(command):
    """Give a command the engine options (--model ... --runtime) where its `engine_choice`
    parameter stands, and hand them to it as one EngineChoice.

    typer builds a command's options from its signature, so the one written here is what it reads:
    the command's own parameters around the engine's (inspect stops at a __signature__ and does
    not follow __wrapped__ past it), and one list of the engine's for every command.
    """
    own = inspect.signature(command, eval_str=True).parameters
    if "engine_choice" not in own:
        raise TypeError(f"{command.__name__} has no 'engine_choice' parameter to put the engine options in")
    engine_params = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=option, default=getattr(DEFAULT_ENGINE, name))
        for name, option in _ENGINE_OPTIONS.items()
    ]
    params = []
    for param in own.values():
        params.extend(engine_params if param.name == "engine_choice" else [param.replace(kind=inspect.Parameter.KEYWORD_ONLY)])

    @functools.wraps(command)
    def run(**values):
        choice = EngineChoice(**{name: values.pop(name) for name in _ENGINE_OPTIONS})
        return command(**values, engine_choice=choice)

    run.__signature__ = inspect.Signature(params)
    run.__annotations__ = {param.name: param.annotation for param in params}
    return run


def _version(value: bool) -> None:
    if value:
        from streamcam.core.version import __version__

        print(f"streamcam {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """See what an image classifier looks at: Grad-CAM for videos, streams and images."""


def fail(exc: StreamcamError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def interrupted() -> None:
    """Ctrl-C: exit 130 like a shell does, instead of click's 'Aborted!' and exit 1."""
    err_console.print("interrupted")
    raise typer.Exit(130)


@app.command(cls=_HelpCommand)
@with_engine_options
def analyze(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Video files, folders (searched for video files), globs ('clips/*.mp4'), URLs (rtsp/http/udp/tcp) or camera numbers. More than one: a batch, with a sub-folder of --out-dir per video and <out-dir>/manifest.jsonl.",
            show_default=False,
        ),
    ],
    top_n: Annotated[int, typer.Option("--top-n", "-n", min=1, help="Predictions per frame written to the CSV.")] = 5,
    cam_classes: Annotated[
        str,
        typer.Option(
            "--cam-classes",
            help="Classes to explain per frame: top1, top3, ... (at most top10), ids/names tracked through the whole video (each gets p_, plocal_ and peak columns in <stem>.frames.csv), or both, e.g. 'top1,traffic_light,bicycle-built-for-two'; a+b is one group (its probability the sum).",
        ),
    ] = "top1",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Frames per engine call.")] = 8,
    start: Annotated[str | None, typer.Option("--start", help="Start time, seconds or mm:ss (seeks).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="End time, seconds or mm:ss.")] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Analyse every Nth frame.")] = 1,
    fps: Annotated[float | None, typer.Option("--fps", min=0.001, help="Analyse frames at this rate instead (frames per second).")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", "-o", help="Output folder (default: ./streamcam_out; a sub-folder per video with several).")
    ] = None,
    video: Annotated[bool, typer.Option("--video/--no-video", help="Write <stem>.gradcam.mp4, the overlay video.")] = True,
    heatmap_video: Annotated[bool, typer.Option("--heatmap-video", help="Also write <stem>.heatmap.mp4 (grey heatmaps).")] = False,
    segmented_video: Annotated[bool, typer.Option("--segmented-video", help="Also write <stem>.segmented.mp4 (heatmap x frame).")] = False,
    codec: Annotated[str, typer.Option("--codec", help="Video encoder: libx264, libx265, libvpx-vp9, libsvtav1, mpeg4 ...")] = "libx264",
    crf: Annotated[int, typer.Option("--crf", min=0, max=63, help="Encoder quality (lower is better and bigger).")] = 23,
    preset: Annotated[
        str,
        typer.Option(
            "--preset",
            help="Encoder speed preset (libx264/libx265): ultrafast (default: fastest, about twice the size of veryfast) ... veryslow.",
        ),
    ] = "ultrafast",
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Copy the input's audio into the overlay video.")] = True,
    save_frames: Annotated[
        str | None, typer.Option("--save-frames", help="Write ancestor-style pictures for these instants, e.g. '12.4,00:31'.")
    ] = None,
    timeout: TimeoutOpt = 10.0,
    input_size: InputSizeOpt = "224x224",
    smooth: SmoothOpt = 0.3,
    engine_choice: EngineChoice = DEFAULT_ENGINE,
    alpha: AlphaOpt = 0.5,
    colormap: ColormapOpt = "jet",
    heat: HeatOpt = "evidence",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary; errors only.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    review: Annotated[
        bool,
        typer.Option(
            "--review",
            help="Also write <stem>.review.html: the analysed frames in one offline page to step through (see 'streamcam review').",
        ),
    ] = False,
    review_max_mb: Annotated[
        float, typer.Option("--review-max-mb", min=0.01, help="Size cap of the --review page in MB (see 'streamcam review --max-mb').")
    ] = 50.0,
    faithfulness: Annotated[
        bool, typer.Option("--faithfulness", help="Score every frame's heatmaps by removal (the same as --faithfulness-every 1).")
    ] = False,
    faithfulness_every: FaithEveryOpt = None,
    save_cams: Annotated[
        bool,
        typer.Option(
            "--save-cams",
            help="Also write <stem>.cams.npz: per frame its index, time, explained class ids and CAM grids (float16), smoothed and raw (layout: README).",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace earlier outputs that another command wrote (another input, other options or model). Without it such a run is refused (exit 2); rerunning the same command replaces its own outputs anyway.",
        ),
    ] = False,
    recursive: Annotated[
        bool,
        typer.Option("--recursive", "-r", help="Search folders given as inputs in their sub-folders too (and let ** in globs match them)."),
    ] = False,
    ray: Annotated[
        bool, typer.Option("--ray", help="Run the batch on Ray: a local cluster, or the one at --ray-address (needs streamcam[ray]).")
    ] = False,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Join this Ray cluster (e.g. 'auto' or 'ray://head:10001'); implies --ray.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Ray actors, each with the model loaded once.")] = 2,
    gpus_per_worker: Annotated[
        float,
        typer.Option("--gpus-per-worker", min=0.0, help="GPUs Ray assigns to each actor (0: CPU only; 0.5: two actors share one GPU)."),
    ] = 0.0,
) -> None:
    """Analyse videos: overlay video, per-frame CSV predictions and a summary JSON each; with several inputs, a batch with a manifest (exit 0 when every video completed or was skipped, 1 when any failed)."""
    from streamcam.apps.analyze import AnalyzeOptions

    options = AnalyzeOptions(
        top_n=top_n,
        cam_classes=cam_classes,
        batch_size=batch_size,
        start=start,
        end=end,
        every=every,
        fps=fps,
        out_dir=out_dir,
        video=video,
        heatmap_video=heatmap_video,
        segmented_video=segmented_video,
        codec=codec,
        crf=crf,
        preset=preset,
        audio=audio,
        alpha=alpha,
        colormap=colormap,
        heat=heat,
        timeout=timeout,
        input_size=input_size,
        save_frames=[t for t in (save_frames or "").split(",") if t.strip()],
        review=review,
        review_max_mb=review_max_mb,
        save_cams=save_cams,
        faithfulness_every=faithfulness_every if faithfulness_every is not None else (1 if faithfulness else None),
        smooth=smooth,
        overwrite=overwrite,
    )
    if len(sources) == 1 and not (ray or ray_address) and not _is_many(sources[0]):
        _run_analyze(sources[0], options, engine_choice, quiet, json_out)
        return
    _run_batch(
        sources,
        recursive,
        options,
        engine_choice,
        quiet,
        json_out,
        ray_address if ray_address else ("local" if ray else None),
        workers,
        gpus_per_worker,
    )


def _is_many(source: str) -> bool:
    """A folder or a glob: a batch even when it holds one video."""
    import glob

    return Path(source).is_dir() or (glob.has_magic(source) and not Path(source).exists())


def _run_batch(sources, recursive, options, engine_choice: EngineChoice, quiet, json_out, ray_address, workers, gpus_per_worker) -> None:
    """Several videos: one sub-folder of --out-dir each, <out-dir>/manifest.jsonl, exit 0/1/130."""
    from streamcam.apps import batch
    from streamcam.core.locks import folder_lock
    from streamcam.core.paths import check_output_folder

    progress = FrameProgress(err_console, enabled=not quiet)
    held = contextlib.ExitStack()  # the out-dir's lock, released once the batch is over
    try:
        if options.out_dir is None:
            from streamcam.outputs.run_sinks import DEFAULT_OUT_DIR

            options = replace(options, out_dir=DEFAULT_OUT_DIR)  # each video gets a sub-folder of it
        options.check()
        _check_class_names(options.cam_classes, engine_choice.model)
        videos = batch.expand_inputs(sources, recursive, options.out_dir)
        # The same settings whether run here or on Ray: the engine as asked for on the command line.
        engine_key = {name: getattr(engine_choice, name) for name in ("model", "weights", "layer", "method", "preprocess")}
        held.enter_context(folder_lock(check_output_folder(options.out_dir)))  # one batch per --out-dir at a time
        manifest = batch.Manifest(options.out_dir)
        if ray_address is not None:
            from streamcam.apps.batch_ray import run_ray
            from streamcam.backends import resolve
            from streamcam.explain.cams import get_method

            get_method(engine_choice.method)  # a typo in --method fails before any worker loads the model
            actor_args = asdict(engine_choice)
            actor_args["backend"] = resolve(actor_args["backend"], options.batch_size)  # actors need not share this process's KERAS_BACKEND
            with progress.status(f"running {len(videos)} videos on Ray"):
                entries = run_ray(
                    videos,
                    actor_args,
                    options,
                    options.out_dir,
                    manifest,
                    address=None if ray_address == "local" else ray_address,
                    workers=workers,
                    gpus_per_worker=gpus_per_worker,
                    engine_key=engine_key,
                )
        else:
            with progress.status("loading model"):
                engine = _engine(engine_choice, batch_size=options.batch_size)
            with BatchProgress(err_console, len(videos), enabled=not quiet) as bars:
                entries = batch.run_local(
                    videos,
                    engine,
                    options,
                    options.out_dir,
                    manifest,
                    on_video=bars.video_done,
                    on_start=bars.start,
                    on_frame=bars.advance,
                    engine_key=engine_key,
                )
    except StreamcamError as exc:
        fail(exc)
    except KeyboardInterrupt:
        interrupted()
    finally:
        held.close()
    _report_batch(entries, manifest.path, quiet, json_out)
    raise typer.Exit(batch.exit_code(entries))


def _report_batch(entries: list[dict], manifest_path: Path, quiet: bool, json_out: bool) -> None:
    if json_out:
        import json

        print(json.dumps(entries, indent=2, default=str))
        return
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    for entry in entries:
        if entry["status"] == "failed":
            err_console.print(f"[bold red]failed:[/] {entry['path']}: {entry.get('error', '')}", soft_wrap=True)
    if not quiet:
        Console(highlight=False, soft_wrap=True).print(
            ", ".join(f"{n} {status}" for status, n in counts.items()) + f"; manifest: {manifest_path}"
        )


def _run_analyze(source: str, options, engine_choice: EngineChoice, quiet: bool, json_out: bool) -> None:
    """What analyze and review share: checks, model, the run with a progress bar, the report, exit codes."""
    from streamcam.apps.analyze import analyze as run_analyze
    from streamcam.apps.analyze import check_overwrite
    from streamcam.core.locks import folder_lock
    from streamcam.core.paths import check_output_folder
    from streamcam.outputs.run_sinks import output_folder
    from streamcam.video.source import is_local_file, probe

    progress = FrameProgress(err_console, enabled=not quiet)
    try:
        options.check()
        _check_class_names(options.cam_classes, engine_choice.model)
        if is_local_file(source):
            probe(source)  # a bad file fails in a second, before the model loads
        # Likewise an output folder that cannot be written, is busy, or holds another run's files.
        with folder_lock(check_output_folder(output_folder(options.out_dir))):
            check_overwrite(source, options)
            load_began = time.perf_counter()
            with progress.status("loading model"):
                engine = _engine(engine_choice, batch_size=options.batch_size)
            load_s = time.perf_counter() - load_began
            with progress:
                summary = run_analyze(source, engine, options, on_start=progress.start, on_frame=progress.advance)
                progress.finish(summary.frames_analysed, summary.frames_per_second)
    except OutputError as exc:
        if exc.summary is not None:
            _report(exc.summary, quiet, json_out)  # what was finished, then the one error line
        fail(exc)
    except StreamcamError as exc:
        fail(exc)
    except KeyboardInterrupt:  # before the first frame, or a stage that would not stop: nothing kept
        interrupted()
    _report(summary, quiet, json_out, load_s)
    if summary.status == "interrupted":
        raise typer.Exit(130)


@app.command(cls=_HelpCommand)
@with_engine_options
def review(
    source: Annotated[str, typer.Argument(help="Video file to review.", show_default=False)],
    start: Annotated[str | None, typer.Option("--start", help="Window start, seconds or mm:ss.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Window end, seconds or mm:ss.")] = None,
    around: Annotated[
        str | None, typer.Option("--around", help="Centre of the window, seconds or mm:ss (instead of --start/--end).")
    ] = None,
    span: Annotated[float, typer.Option("--span", min=0.01, help="Window length in seconds with --around.")] = 10.0,
    top_n: Annotated[
        int,
        typer.Option("--top-n", "-n", min=1, help="Classes listed per frame, and the window's top classes offered in the class selector."),
    ] = 5,
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes",
            help="Also explain these classes on every frame (ids or ImageNet names, e.g. 'traffic_light,bicycle-built-for-two'; a+b is one group); their probability and plocal are charted.",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", "-o", help="Output folder for the page, CSV and summary (default: ./streamcam_out).")
    ] = None,
    max_mb: MaxMbOpt = 50.0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Frames per engine call.")] = 8,
    input_size: InputSizeOpt = "224x224",
    smooth: SmoothOpt = 0.3,
    faithfulness_every: Annotated[
        int,
        typer.Option(
            "--faithfulness-every",
            help="Score every N-th frame's heatmap by removal (the page's trust strip and each frame's faith score); about 24 model runs per scored frame.",
        ),
    ] = 8,
    no_faithfulness: Annotated[
        bool, typer.Option("--no-faithfulness", help="No faithfulness scores (a faster review; no trust strip).")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace earlier outputs of another command (an analyze of the same video, say); without it such a run is refused (exit 2).",
        ),
    ] = False,
    engine_choice: EngineChoice = DEFAULT_ENGINE,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary; errors only.")] = False,
) -> None:
    """Incident review: analyse a window at the full frame rate into one offline HTML page (<stem>.review.html) to step through frame by frame; the CSV and summary are written beside it."""
    from streamcam.apps.review import review_options

    try:
        every = None if no_faithfulness else faithfulness_every
        options = review_options(start, end, around, span, top_n, classes, out_dir, max_mb, batch_size, input_size, smooth, every)
        options.overwrite = overwrite
    except StreamcamError as exc:
        fail(exc)
    _run_analyze(source, options, engine_choice, quiet, False)


def _check_class_names(spec: str | None, model: str, top_k: bool = True) -> None:
    """Class names (--cam-classes, or image --classes without topK) checked before the model loads,
    where its classes are known (a built-in model: ImageNet's); a model file's once it loads."""
    from streamcam.apps.analyze import parse_cam_classes
    from streamcam.models import builtin_labels

    labels = builtin_labels(model)
    if spec and labels is not None:
        parse_cam_classes(spec, labels) if top_k else labels.resolve(spec)


def _engine(choice: EngineChoice, batch_size: int | None = None):
    from streamcam.backends import use_backend
    from streamcam.explain.cams import get_method
    from streamcam.explain.runtime import build_engine, check_runtime

    get_method(choice.method)  # a typo in --method fails before the model loads
    check_runtime(choice.runtime)  # likewise --runtime
    backend = use_backend(choice.backend, batch_size)  # an unknown or missing backend too
    with ctrl_c_after():  # loading and converting run Keras code that can swallow a KeyboardInterrupt
        return build_engine(**{**asdict(choice), "backend": backend})


def _report(summary, quiet: bool, json_out: bool, load_s: float | None = None) -> None:
    """The run's result: JSON, or a done line (analysis time and its frames/s, the definition the
    progress bar shares; the model's loading apart) and the outputs, one per line, never wrapped."""
    if json_out:
        import json
        from dataclasses import asdict

        print(json.dumps(asdict(summary), indent=2, default=str))
        return
    if quiet:
        return
    out = Console(highlight=False, soft_wrap=True)
    for warning in summary.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if summary.runtime:
        out.print(f"  runtime: {summary.runtime['name']} ({summary.runtime['reason']})")
    if summary.seen and summary.seen["top1"]["classes"]:
        out.print(f"  mostly seen: {_seen_line(summary.seen)}")
    for key, path in summary.outputs.items():
        if key != "frames":
            out.print(f"  {key}: {path}")
    if summary.outputs.get("frames"):
        out.print(f"  pictures: {len(summary.outputs['frames'])} in {Path(summary.outputs['frames'][0]).parent}")
    # The last line: what happened, how fast, and where the files are.
    state = "[yellow]interrupted[/]" if summary.status == "interrupted" else "[green]done[/]"
    loading = f"; model loaded in {load_s:.1f} s" if load_s is not None else ""
    where = summary.outputs.get("summary")
    folder = f"; outputs in {Path(where).parent}/" if where else ""
    out.print(
        f"{state}: {summary.frames_analysed} frames analysed in {summary.wall_time_s:.1f} s ({summary.frames_per_second:.1f} fps){loading}{folder}"
    )


def _seen_line(seen: dict) -> str:
    """'Egyptian_cat 33% (0-1.6 s), espresso 33% (1.6-3.2 s), ...': the summary's three most frequent top-1 classes."""
    return ", ".join(f"{c['class_name']} {c['share']:.0%} ({c['first_s']:g}-{c['last_s']:g} s)" for c in seen["top1"]["classes"][:3])


@app.command(cls=_HelpCommand)
@with_engine_options
def live(
    source: Annotated[
        str, typer.Argument(help="Camera number (0 is the first webcam), URL (rtsp/http/udp/tcp) or video file.", show_default=False)
    ] = "0",
    serve: Annotated[
        str | None,
        typer.Option(
            "--serve",
            help="Serve the live view to browsers at [HOST:]PORT (the page, /stream.mjpg and /stats.json); HOST is 127.0.0.1 unless named, e.g. 0.0.0.0:8080 for every interface. Without a display it serves on 127.0.0.1:8080 anyway.",
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Serve without a token on an address other than loopback (by default one is made and printed once in the URL; anyone who can reach the port can then watch).",
        ),
    ] = False,
    no_window: Annotated[bool, typer.Option("--no-window", help="Open no window, even with a display (serve and/or record only).")] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record", help="Write what 'streamcam analyze' writes (overlay video, CSV, summary) for the shown frames into this folder."
        ),
    ] = None,
    top_n: Annotated[int, typer.Option("--top-n", "-n", min=1, help="Predictions per frame in the --record CSV.")] = 5,
    cam_classes: Annotated[
        str,
        typer.Option(
            "--cam-classes",
            help="Classes to explain: top1, top3, ... (at most top10), ids/names (a+b: one group), or both, e.g. 'top1,traffic_light'.",
        ),
    ] = "top1",
    timeout: TimeoutOpt = 10.0,
    input_size: InputSizeOpt = "224x224",
    smooth: SmoothOpt = 0.3,
    engine_choice: EngineChoice = DEFAULT_ENGINE,
    alpha: AlphaOpt = 0.5,
    colormap: ColormapOpt = "jet",
    heat: HeatOpt = "evidence",
) -> None:
    """Show the Grad-CAM overlay live in a window (q or Esc quits) and/or a browser (--serve); frames the model cannot keep up with are skipped, and a lost stream is reconnected."""
    from streamcam.apps.analyze import AnalyzeOptions, parse_cam_classes, parse_top_k
    from streamcam.apps.live import LiveStats, WindowViewer, has_display
    from streamcam.apps.live import live as run_live
    from streamcam.apps.live.server import DEFAULT_HOST, DEFAULT_PORT, BrowserView, LiveServer, parse_address
    from streamcam.core.paths import check_output_folder
    from streamcam.core.redact import redact_source
    from streamcam.explain.input_size import InputSize
    from streamcam.explain.trust import SmoothingOptions
    from streamcam.outputs.render import check_heat

    progress = FrameProgress(err_console)
    server = None
    try:
        address = parse_address(serve) if serve is not None else None
        InputSize.parse(input_size)  # a typo fails before the model loads
        parse_top_k(cam_classes)
        _check_class_names(cam_classes, engine_choice.model)
        SmoothingOptions(seconds=smooth).check()  # likewise
        check_heat(heat)
        options = None
        if record is not None:
            options = AnalyzeOptions(
                out_dir=record,
                top_n=top_n,
                cam_classes=cam_classes,
                alpha=alpha,
                colormap=colormap,
                heat=heat,
                timeout=timeout,
                input_size=input_size,
                smooth=smooth,
            )
            options.check()
            check_output_folder(record)  # a file in the way or a read-only folder fails before the model loads
        window = not no_window and has_display()
        if address is None and (not no_window or record is None) and not window:
            address = (DEFAULT_HOST, DEFAULT_PORT)  # nothing else would show it
            if not no_window:
                err_console.print("no display: serving the live view to browsers instead (--serve [HOST:]PORT to choose where)")
        stats = LiveStats(stall_after_s=min(2.0, timeout))
        if address is not None:  # bound before the model loads: a taken port fails at once
            server = LiveServer(
                stats,
                *address,
                title=f"streamcam live: {redact_source(source)}",
                token=False if no_auth else None,
                log=lambda line: err_console.print(line, soft_wrap=True, highlight=False, markup=False),
            )
            if not server.loopback:
                why = (
                    "without a token (--no-auth)"
                    if server.token is None
                    else "a token is required (it is in the URL below; --no-auth to serve without one)"
                )
                err_console.print(
                    f"[yellow]warning:[/] serving on {address[0]}, not loopback: anyone who can reach the port can connect; {why}",
                    soft_wrap=True,
                )
        with progress.status("loading model"):
            engine = _engine(engine_choice, batch_size=1)
        top_k, tracked = parse_cam_classes(cam_classes, engine.classifier.labels)
        viewers = []
        if server is not None:
            err_console.print(f"live view: {server.url}  (Ctrl-C to stop)", soft_wrap=True)
            viewers.append(BrowserView(server))
        if window:
            viewers.append(WindowViewer())
        figures = run_live(
            source,
            engine,
            viewers,
            top_k,
            tracked,
            alpha,
            colormap,
            timeout=timeout,
            input_size=input_size,
            stats=stats,
            record=options,
            smooth=smooth,
            heat=heat,
        )
    except OutputError as exc:
        fail(exc)
    except StreamcamError as exc:
        fail(exc)
    except KeyboardInterrupt:
        interrupted()
    finally:
        if server is not None:
            server.close()
    _report_live(figures)
    if figures["status"] == "interrupted":
        raise typer.Exit(130)


def _report_live(figures: dict) -> None:
    age = figures["frame_age_ms_p50"]
    ages = "" if age is None else f", frame age p50 {age:.0f} ms, p95 {figures['frame_age_ms_p95']:.0f} ms"
    print(
        f"{figures['frames_shown']} frames shown at {figures['frames_per_second']:.1f} fps, "
        f"{figures['frames_dropped']} skipped, {figures['reconnects']} reconnects{ages}"
    )
    for key, path in figures.get("outputs", {}).items():
        print(f"  {key}: {path}")


@app.command(cls=_HelpCommand)
@with_engine_options
def image(
    paths: Annotated[list[Path], typer.Argument(help="Image files (jpg, png, bmp, webp, tiff ...).", show_default=False)],
    top_n: Annotated[int, typer.Option("--top-n", "-n", min=1, help="How many of the most probable classes to list and explain.")] = 3,
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes",
            help="Also explain these classes, by id or exact ImageNet name (streamcam classes WORD finds them), e.g. 'mountain_bike,moped' or '920'; a+b is one group.",
        ),
    ] = None,
    outputs: Annotated[
        str,
        typer.Option(
            "--outputs", help="Pictures to write per class: gradcam, heatmap, segmented, guided_bprop, guided_gradcam (comma-separated)."
        ),
    ] = "gradcam,heatmap,segmented,guided_bprop,guided_gradcam",
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", "-o", help="Where to write the pictures (default: next to each input).")
    ] = None,
    input_size: InputSizeOpt = "224x224",
    engine_choice: EngineChoice = DEFAULT_ENGINE,
    alpha: AlphaOpt = 0.5,
    colormap: ColormapOpt = "jet",
    heat: HeatOpt = "evidence",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Explain still images: ranked classes, and per class a Grad-CAM overlay, heatmap, segmented and guided pictures."""
    from streamcam.apps.image import ImageExplainer, parse_outputs
    from streamcam.explain.input_size import InputSize
    from streamcam.outputs.render import check_colormap

    progress = FrameProgress(err_console, enabled=not quiet)
    try:
        parse_outputs(outputs)
        check_colormap(colormap)
        InputSize.parse(input_size)
        _check_class_names(classes, engine_choice.model, top_k=False)
        with progress.status("loading model"):
            engine = _engine(engine_choice)
            class_ids = engine.classifier.labels.resolve(classes) if classes else []
            explainer = ImageExplainer(engine, outputs.split(","), alpha, colormap, input_size, heat)
    except StreamcamError as exc:
        fail(exc)
    except KeyboardInterrupt:
        interrupted()
    failures = 0
    out = Console(highlight=False)
    try:
        for path in progress.track(paths, "images"):
            try:
                with ctrl_c_after():  # Ctrl-C finishes the image in hand (a first one traces Keras code)
                    result = explainer.explain(path, top_n, class_ids, out_dir)
            except StreamcamError as exc:
                err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
                failures += 1
                continue
            if not quiet:
                _print_ranked(out, result)
    except KeyboardInterrupt:
        interrupted()
    if failures:
        raise typer.Exit(2)


def _print_ranked(out: Console, result) -> None:
    if out.is_terminal:
        from rich.table import Table

        table = Table(title=f"{result.path} ({result.size[0]}x{result.size[1]})")
        columns = (
            ("rank", "right"),
            ("class id", "right"),
            ("name", "left"),
            ("probability", "right"),
            ("local", "right"),
            ("CAM peak x, y", "right"),
            ("synset", "left"),
        )
        for col, justify in columns:
            table.add_column(col, justify=justify)
        for c in result.explained:  # the top-n, then named classes at their real rank
            local = "-" if c.local_probability is None else f"{c.local_probability:.3f}"
            peak = "-" if c.peak is None else f"{c.peak[0]:.2f}, {c.peak[1]:.2f}"
            table.add_row(str(c.rank), str(c.class_id), c.name, f"{c.probability:.3f}", local, peak, c.synset)
        out.print(table)
        out.print(f"wrote {len(result.written)} pictures to {result.written[0].parent if result.written else '-'}")
    else:
        print(f"{result.path}:")
        for c in result.ranked:
            print(c.ancestor_line())
        for c in result.explained:  # the local evidence beside each explained class
            print(c.local_line())
        for p in result.written:
            print(f"wrote {p}")


@app.command(cls=_HelpCommand)
def classes(
    query: Annotated[
        str | None,
        typer.Argument(
            help="Part of a class name ('bike', 'traffic light'), an id (920) or a synset (n06874185); without it, all 1000.",
            show_default=False,
            metavar="QUERY",
        ),
    ] = None,
) -> None:
    """List the ImageNet classes (both built-in models) whose names contain QUERY: id, synset, the name
    --cam-classes and --classes take, and every synonym. Names given elsewhere must match one exactly."""
    from streamcam.core.labels import Labels

    text = query or ""
    found = Labels().search(text)
    if not found:
        err_console.print(f"no ImageNet class name contains {text!r} (try a shorter word, or no word to list them all)", soft_wrap=True)
        return
    width = max(len(c.name) for c in found)
    for c in found:
        print(f"{c.class_id:>3}  {c.synset}  {c.name:<{width}}  {c.description}")


@app.command(cls=_HelpCommand)
def doctor(backend: BackendOpt = None, runtime: RuntimeOpt = "auto", device: DeviceOpt = "auto") -> None:
    """Print versions, devices, the runtime --runtime would choose for the default model (and why), video codecs and cache paths: what to paste into a bug report."""
    from streamcam.apps.doctor import report
    from streamcam.backends import use_backend
    from streamcam.explain.runtime import check_runtime

    try:
        use_backend(backend)
        check_runtime(runtime)
        lines = report(runtime, device)
    except StreamcamError as exc:
        fail(exc)
    for line in lines:
        print(line)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """streamcam's own warnings (a cache it cannot write, a damaged one rebuilt) as one 'warning:'
    line, not Python's two lines of file, line number and source; other libraries' as Python
    shows them."""
    if "streamcam" in str(filename):
        err_console.print(f"[yellow]warning:[/] {message}", soft_wrap=True, highlight=False)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def main() -> None:
    warnings.showwarning = _one_line_warning
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        _leave_now(130)
    except SystemExit as exc:
        if exc.code == 130:
            _leave_now(130)
        raise


def _leave_now(code: int) -> None:
    """Exit after a Ctrl-C without the interpreter's teardown: by now every output is finished and
    closed, and the teardown is the slow part. It collects the garbage of every module (TensorFlow's
    heap: 3-4 s on a loaded 2-core machine, which made Ctrl-C take 4-13 s where about 2 were
    promised), beside a read that may still be stuck inside FFmpeg. The exit handlers still run
    (Ray's shutdown among them); only the module teardown is skipped."""
    import atexit
    import os

    atexit._run_exitfuncs()  # CPython's own runner for atexit handlers, as a normal exit calls it
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
