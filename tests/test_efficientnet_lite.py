"""The embedded default model against the PyTorch reference (fixture made by scripts/make_efficientnet_reference.py)."""

import json

import numpy as np
import pytest

from streamcam.core.preprocess import resize_rgb

from conftest import FIXTURES

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image supplies the reference images")


def _probabilities(classifier, rgb):
    from streamcam.backends import keras_module

    ops = keras_module().ops
    x = classifier.preprocess(ops.convert_to_tensor(resize_rgb(rgb, 224)[None].astype(np.float32)))
    logits = classifier.model(x, training=False)
    return ops.convert_to_numpy(ops.softmax(logits))[0]


def test_top5_matches_pytorch_reference(default_classifier):
    reference = json.loads((FIXTURES / "efficientnet_lite0_reference.json").read_text())
    assert len(reference["images"]) >= 3
    for name, expected in reference["images"].items():
        probs = _probabilities(default_classifier, getattr(skimage_data, name)())
        top5 = np.argsort(-probs)[:5]
        assert top5.tolist() == expected["top5_ids"], name
        np.testing.assert_allclose(probs[top5], expected["top5_probs"], atol=1e-3, err_msg=name)


def test_reference_top1_classes(default_classifier):
    assert int(np.argmax(_probabilities(default_classifier, skimage_data.chelsea()))) == 285
    assert int(np.argmax(_probabilities(default_classifier, skimage_data.coffee()))) == 967


def test_weights_cache_is_written_and_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    from streamcam.models import load_classifier

    monkeypatch.setenv("STREAMCAM_CACHE_DIR", str(tmp_path))
    first = load_classifier()
    cached = list(tmp_path.glob("*.weights.h5"))
    assert len(cached) == 1
    cached[0].write_bytes(b"this is not an HDF5 file")
    with pytest.warns(UserWarning, match="rebuilding damaged weights cache"):
        second = load_classifier()
    assert cached[0].stat().st_size > 1_000_000
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(first.model(x).numpy(), second.model(x).numpy(), atol=1e-5)


def test_architecture_is_lite():
    from streamcam.models import efficientnet_lite

    model = efficientnet_lite.build()
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Multiply" not in kinds  # no squeeze-excite
    activations = {layer.activation.__name__ for layer in model.layers if type(layer).__name__ == "Activation"}
    assert activations == {"relu6"}
    assert model.get_layer("top_activation").output.shape[1:] == (7, 7, 1280)
    # Every tensor of the PyTorch file has a place in the Keras model, and nothing more.
    from streamcam.models.torch_pickle import load_legacy_state_dict

    with open(efficientnet_lite.packaged_weights_file(), "rb") as f:
        state = load_legacy_state_dict(f)
    torch_count = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert model.count_params() == torch_count


def test_mixed_precision_gives_the_same_answer_and_restores_the_policy():
    import keras

    from streamcam.core.errors import UsageError
    from streamcam.core.preprocess import resize_batch
    from streamcam.explain.engine import CamEngine
    from streamcam.models import load_classifier

    batch = resize_batch([skimage_data.chelsea(), skimage_data.coffee()], 224)
    full = CamEngine(load_classifier(precision="float32")).explain(batch, top_k=2)
    mixed_classifier = load_classifier(precision="mixed")  # bfloat16 compute on a CPU
    assert mixed_classifier.model.get_layer("top_conv").compute_dtype in ("bfloat16", "float16")
    assert keras.config.dtype_policy().name == "float32"
    mixed = CamEngine(mixed_classifier).explain(batch, top_k=2)
    assert mixed.class_ids.tolist() == full.class_ids.tolist()
    np.testing.assert_allclose(mixed.probabilities.max(axis=1), full.probabilities.max(axis=1), atol=0.03)
    assert mixed.cams.dtype == np.float32
    corr = np.corrcoef(mixed.cams[:, 0].ravel(), full.cams[:, 0].ravel())[0, 1]
    assert corr > 0.95
    with pytest.raises(UsageError, match="precision"):
        load_classifier(precision="float8")
