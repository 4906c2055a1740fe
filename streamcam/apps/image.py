"""`streamcam image`: explain still images, writing the ancestor tool's per-class picture files
(named and drawn by streamcam.outputs.pictures)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamcam.core.errors import InputError, UsageError
from streamcam.core.paths import check_input_file
from streamcam.core.preprocess import resize_batch
from streamcam.core.ranking import best_first
from streamcam.explain.input_size import DEFAULT_INPUT_SIZE, InputSize
from streamcam.outputs import render
from streamcam.outputs.pictures import RankedClass, explained_classes, ranked_classes, render_pictures, write_pictures

OUTPUT_KINDS = ("gradcam", "heatmap", "segmented", "guided_bprop", "guided_gradcam")
_WRITABLE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


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


class ImageExplainer:
    """Runs one engine over still images and renders the requested picture kinds."""

    def __init__(
        self,
        engine,
        outputs: Sequence[str] = ("gradcam", "heatmap", "segmented"),
        alpha: float = 0.5,
        colormap: str = "jet",
        input_size: str = DEFAULT_INPUT_SIZE,
        heat: str = "evidence",
    ):
        self.engine = engine
        self.input_size = InputSize.parse(input_size)
        self.outputs = parse_outputs(outputs)
        self.alpha = render.check_alpha(alpha)
        self.colormap = render.check_colormap(colormap)
        self.heat = render.check_heat(heat)

    def explain(
        self, path: str | Path, top_n: int = 3, class_ids: Sequence[int | str] | str = (), out_dir: str | Path | None = None
    ) -> ImageExplanation:
        """class_ids: ids and/or exact names, as the engine takes them ('mountain_bike,920')."""
        path = Path(path)
        rgb = read_image(path)
        labels = self.engine.classifier.labels
        size = self.input_size.for_frame(rgb.shape[1], rgb.shape[0], self.engine.classifier.stride)
        batch = resize_batch([rgb], size)
        result = self.engine.explain(batch, top_k=top_n, class_ids=labels.ids(class_ids))
        probs, targets = result.probabilities[0], result.class_ids[0]
        top = ranked_classes(probs, best_first(labels.model_part(probs), top_n), labels)
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
        return render_pictures(rgb, cams, classes, self.outputs, self.alpha, self.colormap, guided, self.heat)
