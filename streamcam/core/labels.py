"""ImageNet-1k class names and WordNet synsets, shipped with the package as data."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from .errors import UsageError
from .ranking import ranking


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
        # Named groups ('a+b'): one class whose probability is the sum of its members'. Group g has
        # id num_classes + g, an extra column after the model's in the engines' outputs.
        self.groups: list[tuple[int, ...]] = []

    def name(self, class_id: int) -> str:
        if class_id >= self.num_classes:
            return "+".join(self.classes[c].name for c in self.members(class_id))
        return self.classes[class_id].name

    def synset(self, class_id: int) -> str:
        if class_id >= self.num_classes:
            return "group of " + "; ".join(self.synset(c) for c in self.members(class_id))
        c = self.classes[class_id]
        return f"{c.synset} {c.description}".strip()

    def members(self, class_id: int) -> tuple[int, ...]:
        """The classes a group id sums ((class_id,) for a model class)."""
        if class_id < self.num_classes:
            return (class_id,)
        return self.groups[class_id - self.num_classes]

    def group(self, members: Sequence[int]) -> int:
        """The id of the group of these classes, registered on first use (the same set of classes
        in any order is the same group, named in the order first given)."""
        members = tuple(dict.fromkeys(int(c) for c in members))
        for c in members:
            self._check_id(c, groups=False)
        if len(members) < 2:
            raise UsageError(f"a group needs at least two different classes, got {self.name(members[0])!r} alone")
        for g, known in enumerate(self.groups):
            if set(known) == set(members):
                return self.num_classes + g
        self.groups.append(members)
        return self.num_classes + len(self.groups) - 1

    def group_matrix(self) -> np.ndarray:
        """(groups, num_classes) float32: row g is 1 at group g's members (the engines' input)."""
        matrix = np.zeros((len(self.groups), self.num_classes), np.float32)
        for g, members in enumerate(self.groups):
            matrix[g, list(members)] = 1.0
        return matrix

    def model_part(self, probabilities):
        """The model's own columns of a probability vector or matrix (group columns dropped): what
        every ranking sorts, so a group shows only where it is named."""
        return np.asarray(probabilities)[..., : self.num_classes]

    def top_line(self, probabilities, n: int = 3, first: Sequence[int] = ()) -> str:
        """'Egyptian_cat 0.78  tiger_cat 0.10  tabby 0.07': the n most probable classes, for label strips.

        first: classes listed before the rest whatever their probability (the held top classes
        of temporal smoothing, so the strip's first name is the class the heatmap shows)."""
        top = ranking(self.model_part(probabilities), first, n)
        return "  ".join(f"{self.name(int(c))} {probabilities[c]:.2f}" for c in top)

    def resolve(self, spec: str) -> list[int]:
        """Class ids for a comma-separated list of ids or names ('920,traffic_light,mountain_bike').

        'a+b' (ids or names joined by '+') names a group: one class whose probability is the sum of
        its members' (see group); its id follows the model's classes.

        Each item is a class id, a WordNet synset ('n06874185') or a name equal to one of a class's
        lemmas (case, spaces, '_', '-' and punctuation ignored: 'Traffic Light', 'traffic_light',
        'stoplight'). Nothing is guessed: a name that is exactly a lemma of several classes
        ('crane': the bird and the machine), or only part of a class's name ('bicycle', in 444
        bicycle-built-for-two), raises UsageError listing the candidates with their ids.
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

    def ids(self, classes: str | int | Sequence[int | str]) -> list[int]:
        """Class ids for what the library takes wherever a class is named: an id, a name, a
        comma-separated string of them, or a sequence mixing ids and names (see resolve). One id
        per item, in order, repeats kept: the engine's columns follow what the caller asked for
        (tiling and smoothing ask for fixed layouts that may name a class twice)."""
        if isinstance(classes, str | int | np.integer):
            classes = [classes]
        ids: list[int] = []
        for item in classes:
            ids += self.resolve(item) if isinstance(item, str) else [self._check_id(int(item))]
        return ids

    def search(self, query: str = "") -> list[ImageNetClass]:
        """The classes whose id, synset or any lemma matches query: the same id or synset, or a
        lemma containing it (as resolve compares them); every class for an empty query."""
        query = query.strip()
        if not query:
            return list(self.classes)
        if query.isdigit():
            return [self.classes[int(query)]] if int(query) < self.num_classes else []
        key = _norm(query)
        return [c for c in self.classes if c.synset.lower() == query.lower() or any(key in _norm(lemma) for lemma in c.lemmas)]

    def _check_id(self, class_id: int, groups: bool = True) -> int:
        if groups and self.num_classes <= class_id < self.num_classes + len(self.groups):
            return class_id
        if not 0 <= class_id < self.num_classes:
            raise UsageError(f"class id {class_id} is out of range (the model has {self.num_classes} classes: 0..{self.num_classes - 1})")
        return class_id

    def _resolve_one(self, token: str) -> int:
        if token.isdigit():
            return self._check_id(int(token))
        if "+" in token:  # no lemma has one: a group
            parts = [part.strip() for part in token.split("+")]
            if not all(parts):
                raise UsageError(f"{token!r}: a group is class names or ids joined by '+', such as 'bicycle-built-for-two+mountain_bike'")
            return self.group([self._resolve_one(part) for part in parts])
        key = _norm(token)
        exact = [c.class_id for c in self.classes if c.synset.lower() == token.lower() or any(_norm(lemma) == key for lemma in c.lemmas)]
        if len(exact) == 1:
            return exact[0]
        listing = f"`streamcam classes {_shell_word(token)}` lists them"
        if exact:
            raise UsageError(f"class name {token!r} names {len(exact)} classes: {self._candidates(exact)}; give the id instead ({listing})")
        pattern = re.compile(rf"(^| ){re.escape(key)}($| )")
        words = [c.class_id for c in self.classes if any(pattern.search(_norm(lemma)) for lemma in c.lemmas)]
        if words:
            raise UsageError(
                f"{token!r} is not a class name, only part of one: {self._candidates(words)}; give the full name or the id ({listing})"
            )
        raise UsageError(
            f"unknown class name {token!r} (use a class id or an ImageNet name such as 'traffic_light'; `streamcam classes WORD` searches them)"
        )

    def _candidates(self, ids: Sequence[int], most: int = 8) -> str:
        names = [self.name(i) for i in ids[:most]]
        repeated = len(set(names)) < len(names)  # 'crane' and 'crane': the synsets tell them apart
        shown = ", ".join(f"{i} {n}" + (f" ({self.classes[i].synset})" if repeated else "") for i, n in zip(ids, names))
        return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _shell_word(text: str) -> str:
    """text as one shell word, quoted only when it needs it."""
    return text if re.fullmatch(r"[\w.\-]+", text) else "'" + text.replace("'", "'\\''") + "'"


def _norm(text: str) -> str:
    """A name as resolve compares it: lower case, punctuation dropped, runs of spaces, '_' and '-' one space."""
    return re.sub(r"[\s_\-]+", " ", re.sub(r"[^\w\s\-]", "", text.lower())).strip()
