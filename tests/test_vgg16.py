import io
import pickle
import struct

import numpy as np
import pytest
from hostile_pickles import CreatesFile

from streamcam.core.errors import ModelError
from streamcam.models import load_classifier, vgg16


def _tensorflow_vgg_npy(path, keras_model):
    """Write the ancestor's vgg16.npy format: a pickled dict {'conv1_1': [W, b], ..., 'fc8': [W, b]}."""
    weights = {npy: [w.copy() for w in keras_model.get_layer(k).get_weights()] for npy, k in vgg16._NPY_TO_KERAS.items()}
    np.save(path, weights, allow_pickle=True)


@pytest.fixture(scope="module")
def random_vgg(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(1)
    model = vgg16.build()
    rng = np.random.default_rng(0)  # small weights keep the 16 layers' activations finite and varied
    model.set_weights([rng.normal(0, 0.02, w.shape).astype(np.float32) for w in model.get_weights()])
    path = tmp_path_factory.mktemp("vgg") / "vgg16.npy"
    _tensorflow_vgg_npy(path, model)
    return model, path


@pytest.mark.slow
def test_npy_weights_match_keras_vgg16_with_the_same_weights(random_vgg):
    reference, path = random_vgg
    classifier = load_classifier("vgg16", weights=path)
    assert classifier.target_layer == ("block5_conv3",)
    x = np.random.default_rng(1).uniform(-100, 100, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(classifier.model(x).numpy(), reference(x).numpy(), rtol=1e-4, atol=1e-5)


def test_keras_weights_file(random_vgg, tmp_path):
    reference, _ = random_vgg
    path = tmp_path / "vgg.weights.h5"
    reference.save_weights(str(path))
    classifier = load_classifier("vgg16", weights=path)
    np.testing.assert_array_equal(classifier.model.get_layer("fc2").get_weights()[0], reference.get_layer("fc2").get_weights()[0])


@pytest.mark.parametrize("how", ["shell", "open"])
def test_npy_reader_refuses_code(tmp_path, how):
    path, marker = tmp_path / "evil.npy", tmp_path / "pwned"
    np.save(path, np.array({"conv1_1": [CreatesFile(how, marker)]}, dtype=object), allow_pickle=True)
    with pytest.raises(ModelError, match="refusing"):
        vgg16.read_npy_dict(path)
    assert not marker.exists()


def test_offline_without_weights_names_the_three_options(monkeypatch, tmp_path):
    import keras

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(ModelError) as info:
        vgg16.load_weights(object(), None)
    message = str(info.value)
    assert "--weights FILE" in message and "vgg16.npy" in message and "download" in message
    assert "\n" not in message


def test_missing_and_wrong_weights_files(tmp_path):
    model = vgg16.build()
    with pytest.raises(ModelError, match="not found"):
        vgg16.load_weights(model, tmp_path / "missing.npy")
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros(3))
    with pytest.raises(ModelError, match="plain array"):
        vgg16.load_weights(model, plain)
    partial = tmp_path / "partial.npy"
    np.save(partial, {"conv1_1": [np.zeros((3, 3, 3, 64), np.float32), np.zeros(64, np.float32)]}, allow_pickle=True)
    with pytest.raises(ModelError, match="conv1_2"):
        vgg16.load_weights(model, partial)


def test_npy_shape_table_matches_the_keras_model():
    # The reader checks sizes against this table before it builds anything; it must be VGG16's.
    model = vgg16.build()
    for npy_name, keras_name in vgg16._NPY_TO_KERAS.items():
        assert vgg16._NPY_SHAPES[npy_name] == tuple(tuple(w.shape) for w in model.get_layer(keras_name).get_weights())


def _py2_array_pickle(array: np.ndarray) -> bytes:
    """numpy's array pickle as Python 2 wrote it (tensorflow-vgg's vgg16.npy): protocol 2, data as a str."""

    def string(data: bytes) -> bytes:  # BINSTRING: a Python 2 str, read back as text with encoding="latin1"
        return b"T" + struct.pack("<i", len(data)) + data

    def ints(values) -> bytes:
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"

    dtype = (
        b"cnumpy\ndtype\n"
        + string(array.dtype.str[1:].encode())
        + b"K\x00K\x01\x87R"
        + b"(K\x03"
        + string(array.dtype.str[:1].encode())
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    fortran = b"\x88" if array.flags.f_contiguous and array.ndim > 1 else b"\x89"
    return (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + ints([0])
        + string(b"b")
        + b"\x87R"
        + b"(K\x01"
        + ints(array.shape)
        + dtype
        + fortran
        + string(array.tobytes(order="A"))
        + b"tb."
    )


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5,
        np.arange(6, dtype=">f8").reshape(2, 3) * 1e300,  # big-endian, bytes >= 0x80 in the str
        np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
    ],
    ids=["float32", "big-endian", "fortran"],
)
def test_reads_arrays_pickled_by_python2(array):
    data = _py2_array_pickle(array)
    np.testing.assert_array_equal(pickle.loads(data, encoding="latin1"), array)  # numpy itself agrees on the stand-in
    rebuilt = vgg16._ArrayOnlyUnpickler(io.BytesIO(data), encoding="latin1").load().array
    assert rebuilt.dtype == array.dtype
    np.testing.assert_array_equal(rebuilt, array)
