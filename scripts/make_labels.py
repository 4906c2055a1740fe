"""Generate streamcam/data/imagenet_classes.tsv from an installed copy of timm.

timm's wheel (Apache-2.0) ships the 1000 ImageNet-1k synsets in class-index order and a
synset -> lemma table. timm is needed only to run this script; its files are read directly,
without importing timm (which would pull in torch).

    python scripts/make_labels.py            # uses the current interpreter's timm
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "streamcam" / "data" / "imagenet_classes.tsv"


def timm_info_dir() -> Path:
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("timm is not installed in this interpreter (pip install timm)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"


def main() -> None:
    info = timm_info_dir()
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines() if line)
    assert len(synsets) == 1000, len(synsets)
    rows = ["class_id\tsynset\tlemmas"]
    for class_id, synset in enumerate(synsets):
        rows.append(f"{class_id}\t{synset}\t{lemmas[synset].strip()}")
    OUT.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(synsets)} classes)")


if __name__ == "__main__":
    main()
