"""ImageNet-1k class names and WordNet synsets, shipped with the package as data."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from .errors import UsageError


def ranking(probabilities, first: Sequence[int] = (), n: int | None = None) -> list[int]:
    """The n (default: all) class ids by probability, best first, with `first` (in its own order)
    ahead of the rest."""
    ahead = [int(c) for c in dict.fromkeys(first)]
    order = np.argsort(-np.asarray(probabilities), kind="stable")
    if n is not None:
        order = order[: n + len(ahead)]
    return (ahead + [int(c) for c in order if int(c) not in ahead])[:n]


@dataclass(frozen=True)
class ImageNetClass:
    class_id: int
    synset: str
    lemmas: tuple[str, ...]

    @property
    def name(self) -> str:
        """First lemma, safe in file names: 'traffic light' -> 'traffic_light'."""
        return safe_name(self.lemmas[0])

    @property
    def description(self) -> str:
        return ", ".join(self.lemmas)


def safe_name(text: str) -> str:
    """Printable, file-name-safe form of a class name (letters, digits, '_', '-', '.')."""
    text = re.sub(r"\s+", "_", text.strip())
    text = re.sub(r"[^\w.\-]", "", text, flags=re.ASCII)
    return text or "class"


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    rows = resources.files("streamcam").joinpath("data/imagenet_classes.tsv").read_text("utf-8").splitlines()
    classes = []
    for row in rows[1:]:
        class_id, synset, lemmas = row.split("\t")
        classes.append(ImageNetClass(int(class_id), synset, tuple(s.strip() for s in lemmas.split(","))))
    return tuple(classes)


class Labels:
    """Class names for a classifier's outputs: ImageNet by default, generic names otherwise."""

    def __init__(self, num_classes: int = 1000):
        self.num_classes = num_classes
        if num_classes == 1000:
            self.classes = imagenet_classes()
        else:
            self.classes = tuple(ImageNetClass(i, "", (f"class_{i}",)) for i in range(num_classes))

    def name(self, class_id: int) -> str:
        return self.classes[class_id].name

    def synset(self, class_id: int) -> str:
        c = self.classes[class_id]
        return f"{c.synset} {c.description}".strip()

    def top_line(self, probabilities, n: int = 3, first: Sequence[int] = ()) -> str:
        """'Egyptian_cat 0.78  tiger_cat 0.10  tabby 0.07': the n most probable classes, for label strips.

        first: classes listed before the rest whatever their probability (the held top classes
        of temporal smoothing, so the strip's first name is the class the heatmap shows)."""
        top = ranking(probabilities, first, n)
        return "  ".join(f"{self.name(int(c))} {probabilities[c]:.2f}" for c in top)

    def resolve(self, spec: str) -> list[int]:
        """Class ids for a comma-separated list of ids or names ('920,bicycle,moped').

        A name matches any WordNet lemma exactly (case, '_' and ' ' ignored); failing that, a
        unique lemma containing it as whole words. Ambiguous or unknown names raise UsageError.
        """
        ids: list[int] = []
        for token in (t.strip() for t in spec.split(",")):
            if not token:
                continue
            class_id = self._resolve_one(token)
            if class_id not in ids:
                ids.append(class_id)
        if not ids:
            raise UsageError(f"no classes given in {spec!r}")
        return ids

    def _resolve_one(self, token: str) -> int:
        if token.isdigit():
            class_id = int(token)
            if class_id >= self.num_classes:
                raise UsageError(f"class id {class_id} is out of range (the model has {self.num_classes} classes)")
            return class_id
        key = _norm(token)
        exact = [c.class_id for c in self.classes if any(_norm(lemma) == key for lemma in c.lemmas)]
        if len(exact) == 1:
            return exact[0]
        if not exact:
            pattern = re.compile(rf"(^|[\s-]){re.escape(key)}($|[\s-])")
            exact = [c.class_id for c in self.classes if any(pattern.search(_norm(lemma)) for lemma in c.lemmas)]
            if len(exact) == 1:
                return exact[0]
        if not exact:
            raise UsageError(f"unknown class name {token!r} (use a class id or an ImageNet name such as 'traffic_light')")
        options = ", ".join(f"{i} {self.name(i)}" for i in exact[:8])
        raise UsageError(f"class name {token!r} is ambiguous: {options}; give the class id instead")


def _norm(text: str) -> str:
    return re.sub(r"[\s_]+", " ", text.strip().lower())
