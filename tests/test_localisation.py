"""With the default model, Grad-CAM points at the right animal in the ancestor's cat_dog example."""

import numpy as np

from streamcam.apps.image import read_image
from streamcam.core.preprocess import resize_batch

from conftest import shared_file

DOG_IDS = range(151, 269)
CAT_IDS = range(281, 286)


def test_cat_dog_gradcam_peaks_on_each_animal(default_engine):
    rgb = read_image(shared_file("seed_examples", "cat_dog.png"))  # dog in the upper half, cat in the lower
    batch = resize_batch([rgb], 224)
    probs = default_engine.explain(batch, top_k=1).probabilities[0]
    dog = max(DOG_IDS, key=lambda c: probs[c])
    cat = max(CAT_IDS, key=lambda c: probs[c])
    cams = default_engine.explain(batch, top_k=0, class_ids=[dog, cat]).cams[0]
    h = cams.shape[1]
    for cam, upper in ((cams[0], True), (cams[1], False)):
        row = np.unravel_index(np.argmax(cam), cam.shape)[0]
        assert (row < h / 2) == upper, (cam.round(2), row)
        top_mass, bottom_mass = cam[: h // 2].sum(), cam[(h + 1) // 2 :].sum()
        assert (top_mass > bottom_mass) == upper
