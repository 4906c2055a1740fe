"""Explain with one OpenVINO forward pass on the CPU: exact CAMs for a pooling-linear head.

For global average pooling then linear layers the gradient of class c's logit with respect to
the target map A is W[:, c] / (h * w) at every cell (models.linear_head), so each method's map
is computed from the forward's A and the head's weights by the same code the Keras engine runs
(explain.maps.class_maps). Score-CAM's masked inputs go through the same compiled model. Guided
backprop needs a backward pass: it is delegated to a Keras engine built on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import partial
from types import SimpleNamespace

import numpy as np

from streamcam.backends import ops
from streamcam.core.errors import UsageError
from streamcam.models.linear_head import linear_head, why_not_linear

from ..cams import get_method
from ..checks import class_id_array, pooling_images
from ..maps import (
    class_maps,
    group_probabilities,
    group_weights,
    pooled_linear_columns,
    pooled_linear_gradients,
    pooled_linear_maps,
    structured_frames,
)
from ..results import CamBatch
from .openvino_model import load_or_convert, openvino
from .precision import NearTieRecheck, inference_precision

# The CPU plugin's stream and thread settings. scripts/openvino_bench.py --threads, one run on each of
# two 2-core CPUs (dashcam clip, f32, batch 8; model-only / full analyze fps), AMD EPYC / Intel Xeon
# with AMX: latency hint 149.8 / 66.1 and 185.1 / 90.2; one inference thread 142.9 / 73.3 and
# 115.1 / 86.2; pinning off 137.3 / 75.8 and 224.7 / 91.3; throughput hint 127.9 / 68.0 and
# 108.9 / 69.1. Pinning off and the latency hint trade places between runs: the latency hint is kept.
THREAD_SETTINGS = {"PERFORMANCE_HINT": "LATENCY"}


class OpenVinoEngine:
    """CamEngine's interface (explain, probabilities, guided_backprop) on an OpenVINO CPU model."""

    runtime = "openvino"

    def __init__(self, classifier, method="gradcam", precision: str = "auto", local_evidence: bool = True, settings: dict | None = None):
        ov = openvino()
        reason = why_not_linear(classifier)
        if reason is not None:
            raise UsageError(f"--runtime openvino cannot explain model {classifier.name!r}: {reason} (use --runtime keras)")
        self.classifier = classifier
        self.method = get_method(method)
        self.device = "cpu"
        self._head = linear_head(classifier)
        self._local = classifier.head.local and local_evidence
        model, self.cache = load_or_convert(classifier, self._local)
        core = ov.Core()
        self.precision = inference_precision(core, precision)  # 'f32', 'bf16' or 'bf16+f32' (precision.py)
        self.settings = {**THREAD_SETTINGS, **(settings or {})}
        names = ("features", "logits", *(("local",) if self._local else ()))
        self._compiled = {}  # {precision hint: compiled model}
        runs = {hint: self._compiled_run(core, model, hint, names) for hint in self.precision.split("+")}
        # bf16+f32: bf16, with f32 for the frames whose top-1 bf16 could have decided (near ties)
        self._run = NearTieRecheck(runs["bf16"], runs["f32"]) if len(runs) == 2 else runs[self.precision]
        # Score-CAM's masked inputs are not frames: no near-tie rule covers their scores, and they
        # must not steer the policy's next batch, so they take f32 where it is compiled
        self._masked_run = runs["f32"] if "f32" in runs else runs[self.precision]
        self._lock = threading.Lock()  # one infer request per precision: calls from several threads take turns
        self._keras = None
        self.openvino_version = ov.get_version()
        # The maps of every method but Score-CAM (which runs the model) in one compiled call of the
        # shared code: run eagerly, its small ops cost a quarter of a 224x224 batch's time.
        self._maps = None if self.method.uses_model else _compile(partial(pooled_linear_maps, self.method))

    @property
    def backend_name(self) -> str:
        from streamcam.backends import active

        return active().NAME  # runs the shared CAM maths on the runtime's outputs

    # -- public API (as CamEngine) -----------------------------------------------------------
    def explain(self, images: np.ndarray, top_k: int = 1, class_ids: Sequence[int | str] | str = (), pad_to: int | None = None) -> CamBatch:
        """As CamEngine.explain. pad_to is accepted and not needed: shapes are dynamic, nothing recompiles."""
        class_ids = self.classifier.labels.ids(class_ids)
        images = self._check_images(images)
        fixed = self._check_classes(class_ids)
        if top_k < 0 or top_k + len(fixed) == 0:
            raise UsageError("nothing to explain: ask for top_k >= 1 or name classes")
        x = self._preprocess(images.astype(np.float32))
        out = self._infer(x)
        logits = out["logits"]
        k = int(min(top_k, self.classifier.num_classes))
        top = np.argsort(-logits, axis=1, kind="stable")[:, :k]  # ties go to the lower id, as top_k's do
        targets = np.concatenate([top, np.tile(fixed[None, :], (len(x), 1))], axis=1).astype(np.int32)
        features = out["features"]
        groups = self.classifier.labels.group_matrix()
        weights = group_weights(self._head.weights, logits, groups) if len(groups) else self._head.weights
        structured = structured_frames(images)
        if self._maps is not None:
            maps = self._maps(features, pooled_linear_columns(weights, targets, features.shape), targets, structured)
        else:  # Score-CAM: runs the model on masked inputs, uses no gradients
            maps = class_maps(self.method, features, [], targets, x, self._masked_probabilities, structured)
        local = np.take_along_axis(self._local_evidence(out, features, groups), targets, axis=1) if self._local else None
        return CamBatch(self._softmax(logits), targets, _numpy(maps), local)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        images = self._check_images(images)
        return self._softmax(self._infer(self._preprocess(images.astype(np.float32)))["logits"])

    def guided_backprop(self, images: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Needs a backward pass through the whole network: a Keras engine (built once) does it."""
        return self.keras_engine().guided_backprop(images, class_ids)

    def feature_gradients(self, images: np.ndarray, class_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """As CamEngine.feature_gradients, from the head's weights."""
        images = self._check_images(images)
        fixed = self._check_classes(self.classifier.labels.ids(class_ids))
        out = self._infer(self._preprocess(images.astype(np.float32)))
        features, groups = out["features"], self.classifier.labels.group_matrix()
        weights = group_weights(self._head.weights, out["logits"], groups) if len(groups) else self._head.weights
        targets = np.tile(fixed[None, :], (len(images), 1))
        return features, np.stack(pooled_linear_gradients(weights, targets, features.shape), axis=1)

    def keras_engine(self):
        if self._keras is None:
            from ..engine import CamEngine

            self._keras = CamEngine(self.classifier, self.method, "cpu")
        return self._keras

    # -- internals ---------------------------------------------------------------------------
    def _preprocess(self, pixels: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(_numpy(self.classifier.preprocess(pixels)), dtype=np.float32)

    def _compiled_run(self, core, model, hint: str, names):
        compiled = self._compiled[hint] = core.compile_model(model, "CPU", {**self.settings, "INFERENCE_PRECISION_HINT": hint})
        outputs = {name: compiled.output(name) for name in names}
        request = compiled.create_infer_request()

        def run(x: np.ndarray) -> dict[str, np.ndarray]:
            request.infer({0: x})
            return {name: request.get_tensor(port).data.copy() for name, port in outputs.items()}

        return run

    @property
    def exact_share(self) -> float:
        """The share of frames so far whose outputs came from f32 (1.0 for f32, 0.0 for plain bf16)."""
        return self._run.exact_share if isinstance(self._run, NearTieRecheck) else float(self.precision == "f32")

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            return self._run(x)

    def _masked_probabilities(self, masked):
        """Score-CAM's probabilities_fn: masked preprocessed inputs through the same converted model
        (f32 where compiled: see __init__)."""
        x = np.ascontiguousarray(_numpy(masked), dtype=np.float32)
        with self._lock:
            logits = self._masked_run(x)["logits"]
        return ops.convert_to_tensor(self._softmax(logits))

    def _softmax(self, logits: np.ndarray) -> np.ndarray:
        """(N, classes + groups): the model's softmax and each named group's sum (Labels.group)."""
        return _numpy(
            group_probabilities(ops.convert_to_tensor(_softmax(logits)), ops.convert_to_tensor(self.classifier.labels.group_matrix()))
        )

    def _local_evidence(self, out: dict, features: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """(N, classes + groups): each class's best per-cell probability. The graph gives the model's
        classes; a group's best cell needs the cells' own probabilities, summed over its members
        before the max: the head is linear, so a cell's logits are A_ij . W + b (models.linear_head)."""
        if not len(groups):
            return out["local"]
        cells = features.reshape(len(features), -1, features.shape[-1]) @ self._head.weights + self._head.bias
        best = np.max(_softmax(cells) @ groups.T, axis=1)  # (N, G)
        return np.concatenate([out["local"], best], axis=1)

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        return pooling_images(images, self.classifier.stride)

    def _check_classes(self, class_ids: Sequence[int]) -> np.ndarray:
        labels = self.classifier.labels
        return class_id_array(class_ids, labels.num_classes, len(labels.groups))


def _compile(fn):
    """fn compiled by the active Keras backend (tf.function or jax.jit); it reads no model weights."""
    from streamcam.backends import active

    return active().compile(fn, _NO_WEIGHTS, xla=False)


_NO_WEIGHTS = SimpleNamespace(variables=[])


def _softmax(logits: np.ndarray) -> np.ndarray:
    return _numpy(ops.softmax(ops.convert_to_tensor(logits, "float32"), axis=-1))


def _numpy(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor))
