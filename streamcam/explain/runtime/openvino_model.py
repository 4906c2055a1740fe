"""The classifier's forward pass as an OpenVINO model: converted once, cached, compiled for the CPU.

Conversion: the Keras forward (the tapped call the Keras engine runs: target feature map, logits,
and the local evidence of every class) is traced by tf.function on a (None, None, None, 3) float32
input and the concrete function is handed to OpenVINO's TensorFlow frontend in memory. That is the
path with the fewest moving parts: tf.function already traces streamcam's tapped forward (a Python
function over a nested Keras graph, not a Model that could be exported as it is), nothing is
written but the result, and the batch and spatial sizes stay dynamic, so --input-size and a short
last batch need no recompile (a small shape that repeats gets a fixed-shape compile as well, for
speed: compiled_shapes.py). It needs Keras on TensorFlow (the default backend).

The graph takes the preprocessed image, not uint8 pixels: Score-CAM's masked inputs are masked
after preprocessing, and they go through the same converted model. Frames get a copy that takes
uint8 pixels and runs the classifier's preprocessing first, where it is affine (pixel_input.py);
that copy is made at load, not cached: it costs milliseconds.

Cache: <cache dir>/openvino/<model>-<key>/ holding model.xml, model.bin and manifest.json; the key
hashes the weights, the target layer, the graph's outputs and the OpenVINO version. The manifest
holds the SHA-256 of both files: a cache that fails it, or that OpenVINO cannot read, is deleted
and converted again (with a warning), as the weights cache is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from streamcam.core.errors import ModelError, UsageError
from streamcam.models.cache import cache_dir
from streamcam.models.head import cell_head
from streamcam.models.layers import tapped_forward

from ..maps import cell_probabilities

GRAPH_VERSION = 1  # bump when the converted graph's inputs or outputs change
OUTPUTS = ("features", "logits", "local")  # local: each class's best per-cell probability (N, classes)


def openvino():
    try:
        import openvino as ov
    except ImportError:
        raise UsageError("--runtime openvino needs OpenVINO: pip install 'streamcam[openvino]'") from None
    return ov


def cache_key(classifier, local: bool) -> str:
    """Hex digest of everything the converted graph depends on."""
    ov = openvino()
    digest = hashlib.sha256()
    for array in classifier.model.get_weights():
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    meta = {
        "layer": "/".join(classifier.target_layer),
        "local": local,
        "openvino": ov.get_version(),
        "graph": GRAPH_VERSION,
        "architecture": _architecture(classifier.model),
    }
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()


def _architecture(model) -> str:
    """A digest of the model's layer list (types, names): two models with equal weights but other layers differ."""
    from streamcam.models.layers import all_layers

    text = ";".join(f"{type(layer).__name__}:{layer.name}" for layer in all_layers(model))
    return hashlib.sha256(text.encode()).hexdigest()


def cache_folder(classifier, local: bool) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in classifier.name)
    return cache_dir() / "openvino" / f"{safe}-{cache_key(classifier, local)[:24]}"


def load_or_convert(classifier, local: bool):
    """The OpenVINO model (ov.Model) of the classifier's forward, from the cache or converted now.

    Returns (model, how): how is 'cached', 'converted' or 'rebuilt' (the cache was damaged)."""
    ov = openvino()
    folder = cache_folder(classifier, local)
    how = "converted"
    if folder.exists():
        try:
            return _read_checked(ov, folder), "cached"
        except Exception as exc:  # a damaged cache fails in many ways: a hash, a parse, a missing file
            warnings.warn(f"rebuilding damaged OpenVINO cache {folder} ({type(exc).__name__}: {exc})", stacklevel=2)
            shutil.rmtree(folder, ignore_errors=True)
            how = "rebuilt"
    model = convert(classifier, local)
    _write(ov, model, folder)
    return model, how


def convert(classifier, local: bool):
    """Freeze the Keras forward and convert it with OpenVINO's TensorFlow frontend."""
    ov = openvino()
    from streamcam.backends import active

    backend = active()
    if backend.NAME != "tensorflow":
        raise UsageError(
            f"--runtime openvino converts the model through TensorFlow; Keras runs on {backend.NAME} here (use --backend tensorflow)"
        )
    tf = backend.load()
    head = classifier.head
    forward = tapped_forward(head.model, classifier.target_layer, head.pool)
    run_cells = cell_head(head.model, head.pool)

    def graph(x):
        features, logits, pooled = forward(x)
        out = {"features": tf.cast(features, tf.float32), "logits": tf.cast(logits, tf.float32)}
        if local:
            out["local"] = tf.reduce_max(cell_probabilities(run_cells, pooled), axis=1)
        return out

    spec = tf.TensorSpec((None, None, None, head.model.inputs[0].shape[-1]), tf.float32, name="x")
    try:
        concrete = tf.function(graph).get_concrete_function(spec)
        return ov.convert_model(concrete)
    except Exception as exc:  # the frontend raises its own types for graphs it cannot take
        raise ModelError(f"OpenVINO could not convert model {classifier.name!r}: {exc}") from exc


def _write(ov, model, folder: Path) -> None:
    """Write to a fresh sibling folder and rename it into place, so a reader never sees half a cache."""
    partial = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        # compress_to_fp16=False: OpenVINO's default stores weights in float16, which loses exactness.
        ov.save_model(model, str(partial / "model.xml"), compress_to_fp16=False)
        manifest = {name: _sha256(partial / name) for name in ("model.xml", "model.bin")}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
        try:
            os.replace(partial, folder)
            partial = None
        except OSError:  # another process cached it first: keep theirs
            pass
    # A cache that cannot be written (read-only, a full disk, a file-size limit) is not fatal:
    # the converted model in memory runs, and the next run converts again. OpenVINO reports a
    # failed write as RuntimeError ('basic_ios::clear: iostream error'), not OSError.
    except (OSError, RuntimeError) as exc:
        warnings.warn(f"cannot write OpenVINO cache {folder}: {exc}", stacklevel=2)
    finally:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)


def _read_checked(ov, folder: Path):
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in ("model.xml", "model.bin"):
        if _sha256(folder / name) != manifest.get(name):
            raise ValueError(f"{name} does not match its checksum")
    model = ov.Core().read_model(str(folder / "model.xml"))
    names = {name for output in model.outputs for name in output.get_names()}
    if not {"features", "logits"} <= names:
        raise ValueError(f"outputs {sorted(names)} lack features and logits")
    return model


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
