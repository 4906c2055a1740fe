"""Per-class pictures of one image or frame, under the ancestor tool's file names.

For each explained class: `<stem>_<rank>_<classid>_<name>_<prob:.3f>_<kind>.<ext>`, drawn at the
picture's own resolution. `streamcam image` and the pictures `analyze --save-frames` writes share them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from streamcam.core.errors import InputError
from streamcam.core.ranking import best_first

from . import render
from .files import peak_position, write_bytes_atomic


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
            f"{self.rank}: class id: {self.class_id}, class name: {self.name}, probability: {self.probability:.3f}, synset: {self.synset}"
        )

    def local_line(self) -> str:
        """'  rank 88 bicycle-built-for-two: local probability 0.039, CAM peak at x 0.47, y 0.72'.

        Indented, and not 'N: ...', so that readers of the ancestor's lines are not confused.
        """
        local = "n/a" if self.local_probability is None else f"{self.local_probability:.3f}"
        peak = "none (all-zero map)" if self.peak is None else f"x {self.peak[0]:.2f}, y {self.peak[1]:.2f}"
        return f"  rank {self.rank} {self.name}: local probability {local}, CAM peak at {peak}"


def explained_classes(
    probabilities: np.ndarray, class_ids, cams: np.ndarray, labels, local: np.ndarray | None = None
) -> tuple[list[RankedClass], np.ndarray]:
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
    """RankedClass for each id (duplicates dropped), with its real rank among all classes (a named
    group, which is not one of the model's classes: the rank its summed probability would take)."""
    model = labels.model_part(probabilities)
    order = best_first(model)
    rank_of = np.empty(len(probabilities), np.int64)
    rank_of[order] = np.arange(order.size)
    for group in range(model.size, len(probabilities)):
        rank_of[group] = int(np.sum(model > probabilities[group]))
    out: list[RankedClass] = []
    for cid in (int(c) for c in class_ids):
        if cid not in [c.class_id for c in out]:
            out.append(RankedClass(int(rank_of[cid]), cid, labels.name(cid), float(probabilities[cid]), labels.synset(cid)))
    return out


def render_pictures(rgb, cams, classes, kinds, alpha=0.5, colormap="jet", guided=None, heat="evidence"):
    """[(class, kind, picture)] for each class (with its CAM, and guided gradients if given) and kind."""
    return [
        (cls, kind, _picture(kind, rgb, *_with_evidence(cams[k], cls, alpha, heat), None if guided is None else guided[k], colormap, heat))
        for k, cls in enumerate(classes)
        for kind in kinds
    ]


def _with_evidence(cam, cls: RankedClass, alpha: float, heat: str) -> tuple[np.ndarray, float, float]:
    """(the map as drawn, its weight, its strength): scaled by the class's evidence, its probability
    (its local probability in 'local' heat, where known; render.heat_to_draw), unless heat is 'minmax'."""
    local = heat == "local" and cls.local_probability is not None
    evidence = cls.local_probability if local else cls.probability
    drawn, weight = render.heat_to_draw(np.asarray(cam)[None], [evidence], alpha, heat)
    return drawn, weight, float(render.evidence_strength(evidence))


def _picture(kind: str, rgb, cam, weight: float, strength: float, guided, colormap: str, heat: str = "minmax") -> np.ndarray:
    h, w = rgb.shape[:2]
    if kind == "gradcam":
        picture = render.overlay(rgb, cam, weight, colormap)
        if render.scales_by_evidence(heat):  # how far this class's evidence reaches on the colour map
            bar = render.colour_bar(max(16, h // 4), colormap, strength)
            render.paste(picture, bar, max(0, w - bar.shape[1] - 4), 4)
        return picture
    if kind == "heatmap":
        return render.heatmap_grey(rgb, cam)
    if kind == "segmented":
        return render.segmented(rgb, cam)
    if kind == "guided_bprop":
        return render.guided_image(guided, h, w)
    if kind == "guided_gradcam":
        return render.guided_gradcam(guided, cam, h, w)
    raise ValueError(f"unknown picture kind {kind!r}")


def write_pictures(directory: Path, stem: str, ext: str, pictures) -> list[Path]:
    """Write pictures under the ancestor's names; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for cls, kind, picture in pictures:
        target = directory / f"{stem}_{cls.rank}_{cls.class_id}_{cls.name}_{cls.probability:.3f}_{kind}{ext}"
        write_image_atomic(target, picture)
        written.append(target)
    return written


def write_image_atomic(path: Path, rgb: np.ndarray) -> None:
    """Encode fully in memory, then write to a temporary name and rename: no half-written files."""
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot encode {path.name}")
    write_bytes_atomic(path, encoded.tobytes())
