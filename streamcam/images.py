"""Explain still images, writing the ancestor tool's per-class picture files.

For each explained class: `<stem>_<rank>_<classid>_<name>_<prob:.3f>_<kind>.<ext>`, drawn at
the input's own resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from . import render
from .errors import InputError, UsageError
from .input_size import DEFAULT_INPUT_SIZE, InputSize
from .outputs import peak_position, write_bytes_atomic
from .paths import check_input_file
from .preprocess import resize_batch

OUTPUT_KINDS = ("gradcam", "heatmap", "segmented", "guided_bprop", "guided_gradcam")
_WRITABLE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class RankedClass:
    rank: int  # 0 = most probable
    class_id: int
    name: str
    probability: float
    synset: str
    local_probability: float | None = None  # its largest probability in one region of the image
    peak: tuple[float, float] | None = None  # where its CAM peaks, (x, y) in 0..1

    def ancestor_line(self) -> str:
        return (
            f"{self.rank}: class id: {self.class_id}, class name: {self.name}, "
            f"probability: {self.probability:.3f}, synset: {self.synset}"
        )

    def local_line(self) -> str:
        """'  rank 88 bicycle-built-for-two: local probability 0.039, CAM peak at x 0.47, y 0.72'.

        Indented, and not 'N: ...', so that readers of the ancestor's lines are not confused.
        """
        local = "n/a" if self.local_probability is None else f"{self.local_probability:.3f}"
        peak = "none (all-zero map)" if self.peak is None else f"x {self.peak[0]:.2f}, y {self.peak[1]:.2f}"
        return f"  rank {self.rank} {self.name}: local probability {local}, CAM peak at {peak}"


@dataclass
class ImageExplanation:
    path: Path
    size: tuple[int, int]  # (width, height)
    ranked: list[RankedClass]  # the top-n
    explained: list[RankedClass]  # top-n plus named classes, each with its real rank
    written: list[Path] = field(default_factory=list)


def parse_outputs(spec: str | Sequence[str]) -> tuple[str, ...]:
    kinds = [k.strip() for k in (spec.split(",") if isinstance(spec, str) else spec) if k.strip()]
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise UsageError(f"unknown output kind {', '.join(unknown) or '(none)'}; choose from {', '.join(OUTPUT_KINDS)}")
    return tuple(dict.fromkeys(kinds))


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 pixels of an image file (EXIF orientation applied), or InputError in one line."""
    path = check_input_file(path, "an image")
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"not an image OpenCV can read: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image_atomic(path: Path, rgb: np.ndarray) -> None:
    """Encode fully in memory, then write to a temporary name and rename: no half-written files."""
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot encode {path.name}")
    write_bytes_atomic(path, encoded.tobytes())


class ImageExplainer:
    """Runs one engine over still images and renders the requested picture kinds."""

    def __init__(self, engine, outputs: Sequence[str] = ("gradcam", "heatmap", "segmented"), alpha: float = 0.5,
                 colormap: str = "jet", input_size: str = DEFAULT_INPUT_SIZE):
        self.engine = engine
        self.input_size = InputSize.parse(input_size)
        self.outputs = parse_outputs(outputs)
        self.alpha = render.check_alpha(alpha)
        self.colormap = render.check_colormap(colormap)

    def explain(self, path: str | Path, top_n: int = 3, class_ids: Sequence[int] = (),
                out_dir: str | Path | None = None) -> ImageExplanation:
        path = Path(path)
        rgb = read_image(path)
        labels = self.engine.classifier.labels
        size = self.input_size.for_frame(rgb.shape[1], rgb.shape[0], self.engine.classifier.stride)
        batch = resize_batch([rgb], size)
        result = self.engine.explain(batch, top_k=top_n, class_ids=list(class_ids))
        probs, targets = result.probabilities[0], result.class_ids[0]
        top = ranked_classes(probs, np.argsort(-probs, kind="stable")[:top_n], labels)
        local = None if result.local_probabilities is None else result.local_probabilities[0]
        explained, cams = explained_classes(probs, targets, result.cams[0], labels, local)
        explanation = ImageExplanation(path, (rgb.shape[1], rgb.shape[0]), top, explained)
        pictures = self._render(rgb, batch, cams, explained)
        directory = Path(out_dir) if out_dir is not None else path.parent
        ext = path.suffix.lower() if path.suffix.lower() in _WRITABLE_EXTS else ".png"
        explanation.written = write_pictures(directory, path.stem, ext, pictures)
        return explanation

    def _render(self, rgb, batch, cams, classes):
        guided = None
        if {"guided_bprop", "guided_gradcam"} & set(self.outputs):
            classifier = self.engine.classifier
            if not classifier.pooling_head:  # a fixed-size head: guided gradients at its own size
                batch = resize_batch([rgb], classifier.input_size)
            guided = self.engine.guided_backprop(batch, np.array([[c.class_id for c in classes]]))[0]
        return render_pictures(rgb, cams, classes, self.outputs, self.alpha, self.colormap, guided)


def render_pictures(rgb, cams, classes, kinds, alpha=0.5, colormap="jet", guided=None):
    """[(class, kind, picture)] for each class (with its CAM, and guided gradients if given) and kind."""
    h, w = rgb.shape[:2]
    pictures = []
    for k, cls in enumerate(classes):
        cam = cams[k]
        makers = {
            "gradcam": lambda: render.overlay(rgb, cam, alpha, colormap),
            "heatmap": lambda: render.heatmap_grey(rgb, cam),
            "segmented": lambda: render.segmented(rgb, cam),
            "guided_bprop": lambda: render.guided_image(guided[k], h, w),
            "guided_gradcam": lambda: render.guided_gradcam(guided[k], cam, h, w),
        }
        pictures.extend((cls, kind, makers[kind]()) for kind in kinds)
    return pictures


def write_pictures(directory: Path, stem: str, ext: str, pictures) -> list[Path]:
    """Write pictures under the ancestor's names; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for cls, kind, picture in pictures:
        target = directory / f"{stem}_{cls.rank}_{cls.class_id}_{cls.name}_{cls.probability:.3f}_{kind}{ext}"
        write_image_atomic(target, picture)
        written.append(target)
    return written


def explained_classes(probabilities: np.ndarray, class_ids, cams: np.ndarray, labels,
                      local: np.ndarray | None = None) -> tuple[list[RankedClass], np.ndarray]:
    """The explained classes without repeats (a named class may also be in the top-k), with their CAMs.

    local: each explained column's local probability (CamBatch.local_probabilities), copied onto
    the classes with where their CAM peaks.
    """
    classes = ranked_classes(probabilities, class_ids, labels)
    columns = [list(class_ids).index(c.class_id) for c in classes]
    classes = [
        replace(c, local_probability=None if local is None else float(local[col]), peak=peak_position(cams[col]))
        for c, col in zip(classes, columns)
    ]
    return classes, cams[columns]


def ranked_classes(probabilities: np.ndarray, class_ids, labels) -> list[RankedClass]:
    """RankedClass for each id (duplicates dropped), with its real rank among all classes."""
    order = np.argsort(-probabilities, kind="stable")
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(order.size)
    out: list[RankedClass] = []
    for cid in (int(c) for c in class_ids):
        if cid not in [c.class_id for c in out]:
            out.append(RankedClass(int(rank_of[cid]), cid, labels.name(cid), float(probabilities[cid]), labels.synset(cid)))
    return out
