"""Command line: a thin typer layer over the library. Library errors become one line and an exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .errors import StreamcamError

app = typer.Typer(
    help="See what an image classifier looks at: Grad-CAM for videos, streams and images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, highlight=False)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="efficientnet-lite0 (embedded, default), vgg16, or a Keras .keras/.h5 file.")]
WeightsOpt = Annotated[Optional[Path], typer.Option("--weights", help="Weights file: Keras .weights.h5/.h5, or tensorflow-vgg vgg16.npy for --model vgg16.")]
LayerOpt = Annotated[Optional[str], typer.Option("--layer", help="Layer to explain (default: the last convolutional feature map; 'outer/inner' for nested models).")]
MethodOpt = Annotated[str, typer.Option("--method", help="CAM method: gradcam, gradcam++, hirescam, layercam, xgradcam, eigencam, scorecam.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (GPU when TensorFlow sees one), cpu or gpu.")]
AlphaOpt = Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Heatmap weight in overlays, 0..1.")]
ColormapOpt = Annotated[str, typer.Option("--colormap", help="Heatmap colours: jet, turbo, inferno, magma, viridis, hot, plasma.")]


def fail(exc: StreamcamError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
    raise typer.Exit(exc.exit_code)


@app.command()
def image(
    paths: Annotated[list[Path], typer.Argument(help="Image files (jpg, png, bmp, webp, tiff ...).", show_default=False)],
    top_n: Annotated[int, typer.Option("--top-n", "-n", min=1, help="How many of the most probable classes to list and explain.")] = 3,
    classes: Annotated[Optional[str], typer.Option("--classes", help="Also explain these classes, by id or ImageNet name, e.g. 'bicycle,moped' or '920'.")] = None,
    outputs: Annotated[str, typer.Option("--outputs", help="Pictures to write per class: gradcam, heatmap, segmented, guided_bprop, guided_gradcam (comma-separated).")] = "gradcam,heatmap,segmented,guided_bprop,guided_gradcam",
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", "-o", help="Where to write the pictures (default: next to each input).")] = None,
    model: ModelOpt = "efficientnet-lite0",
    weights: WeightsOpt = None,
    layer: LayerOpt = None,
    method: MethodOpt = "gradcam",
    alpha: AlphaOpt = 0.5,
    colormap: ColormapOpt = "jet",
    device: DeviceOpt = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Explain still images: ranked classes, and per class a Grad-CAM overlay, heatmap, segmented and guided pictures."""
    from .engine import CamEngine
    from .images import ImageExplainer, parse_outputs
    from .models import load_classifier
    from .render import check_colormap

    try:
        parse_outputs(outputs)
        check_colormap(colormap)
        classifier = load_classifier(model, weights, layer)
        class_ids = classifier.labels.resolve(classes) if classes else []
        explainer = ImageExplainer(CamEngine(classifier, method, device), outputs.split(","), alpha, colormap)
    except StreamcamError as exc:
        fail(exc)
    failures = 0
    out = Console(highlight=False)
    for path in paths:
        try:
            result = explainer.explain(path, top_n, class_ids, out_dir)
        except StreamcamError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            failures += 1
            continue
        if not quiet:
            _print_ranked(out, result)
    if failures:
        raise typer.Exit(2)


def _print_ranked(out: Console, result) -> None:
    if out.is_terminal:
        from rich.table import Table

        table = Table(title=f"{result.path} ({result.size[0]}x{result.size[1]})")
        for col, justify in (("rank", "right"), ("class id", "right"), ("name", "left"), ("probability", "right"), ("synset", "left")):
            table.add_column(col, justify=justify)
        for c in result.ranked:
            table.add_row(str(c.rank), str(c.class_id), c.name, f"{c.probability:.3f}", c.synset)
        out.print(table)
        out.print(f"wrote {len(result.written)} pictures to {result.written[0].parent if result.written else '-'}")
    else:
        print(f"{result.path}:")
        for c in result.ranked:
            print(c.ancestor_line())
        for p in result.written:
            print(f"wrote {p}")


@app.command()
def doctor() -> None:
    """Print versions, devices, video codecs and cache paths: what to paste into a bug report."""
    from .doctor import report

    for line in report():
        print(line)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
