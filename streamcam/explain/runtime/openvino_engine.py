"""Explain with one OpenVINO forward pass on the CPU: exact CAMs for a pooling-linear head.

For global average pooling then linear layers the gradient of class c's logit with respect to
the target map A is W[:, c] / (h * w) at every cell (models.linear_head), so each method's map
is computed from the forward's A and the head's weights by the same code the Keras engine runs
(explain.maps.class_maps). Frames go in as uint8 pixels, the preprocessing compiled into the
model (pixel_input.py); Score-CAM's masked inputs go through the same converted model. Guided
backprop needs a backward pass: it is delegated to a Keras engine built on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import partial

import numpy as np

from streamcam.backends import ops
from streamcam.core.errors import UsageError
from streamcam.core.ranking import best_first
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
from .compiled_shapes import MAX_FIXED, CompiledShapes
from .openvino_model import load_or_convert, openvino
from .pixel_input import affine_pixels, with_pixel_input
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

    def __init__(
        self,
        classifier,
        method="gradcam",
        precision: str = "auto",
        local_evidence: bool = True,
        settings: dict | None = None,
        max_fixed_shapes: int = MAX_FIXED,
    ):
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
        self._core = core = ov.Core()
        self.precision = inference_precision(core, precision)  # 'f32', 'bf16' or 'bf16+f32' (precision.py)
        self.settings = {**THREAD_SETTINGS, **(settings or {})}
        self._outputs = ("features", "logits", *(("local",) if self._local else ()))
        # Two inputs: uint8 pixels, with the classifier's preprocessing in the graph (pixel_input.py),
        # for frames; the preprocessed image for Score-CAM's masked inputs, float pixels, and a
        # preprocess that is not affine. Each is compiled on first use.
        self._models = {"preprocessed": model}
        affine = affine_pixels(classifier.preprocess)
        if affine is not None:
            self._models["pixels"] = with_pixel_input(ov, model, *affine)
        self.max_fixed_shapes = max_fixed_shapes  # fixed-shape compiles a model may add (compiled_shapes.py); 0: none
        self._compiled = {}  # {(input, precision hint): CompiledShapes}
        self._policies = {}  # {input: run under self.precision}
        self._policy("pixels" if affine is not None else "preprocessed")  # compiled now, not on the first batch
        self._lock = threading.Lock()  # one infer request per model: calls from several threads take turns
        self._keras = None
        self.openvino_version = ov.get_version()
        # The maps of every method but Score-CAM (which runs the model) in one compiled call of the
        # shared code (run eagerly, its small ops cost a quarter of a 224x224 batch's time), traced
        # once per number of target classes: any batch and input size (_maps_call).
        self._maps_calls = {}

    @property
    def backend_name(self) -> str:
        from streamcam.backends import active

        return active().NAME  # runs the shared CAM maths on the runtime's outputs

    # -- public API (as CamEngine) -----------------------------------------------------------
    def explain(self, images: np.ndarray, top_k: int = 1, class_ids: Sequence[int | str] | str = (), pad_to: int | None = None) -> CamBatch:
        """As CamEngine.explain. pad_to is accepted and not needed: any shape runs without a recompile."""
        class_ids = self.classifier.labels.ids(class_ids)
        images = self._check_images(images)
        fixed = self._check_classes(class_ids)
        if top_k < 0 or top_k + len(fixed) == 0:
            raise UsageError("nothing to explain: ask for top_k >= 1 or name classes")
        out = self._infer(images)
        logits = out["logits"]
        k = int(min(top_k, self.classifier.num_classes))
        top = _top_classes(logits, k)
        targets = np.concatenate([top, np.tile(fixed[None, :], (len(images), 1))], axis=1).astype(np.int32)
        features = out["features"]
        groups = self.classifier.labels.group_matrix()
        weights = group_weights(self._head.weights, logits, groups) if len(groups) else self._head.weights
        structured = structured_frames(images)
        if not self.method.uses_model:
            maps = self._maps_call(targets.shape[1])(features, pooled_linear_columns(weights, targets, features.shape), targets, structured)
        else:  # Score-CAM: runs the model on masked inputs, uses no gradients
            x = self._preprocess(images)
            maps = class_maps(self.method, features, [], targets, x, self._masked_probabilities, structured)
        local = np.take_along_axis(self._local_evidence(out, features, groups), targets, axis=1) if self._local else None
        return CamBatch(self._softmax(logits), targets, _numpy(maps), local)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        images = self._check_images(images)
        return self._softmax(self._infer(images)["logits"])

    def guided_backprop(self, images: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Needs a backward pass through the whole network: a Keras engine (built once) does it."""
        return self.keras_engine().guided_backprop(images, class_ids)

    def feature_gradients(self, images: np.ndarray, class_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """As CamEngine.feature_gradients, from the head's weights."""
        images = self._check_images(images)
        fixed = self._check_classes(self.classifier.labels.ids(class_ids))
        out = self._infer(images)
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
    def _preprocess(self, images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(_numpy(self.classifier.preprocess(images.astype(np.float32))), dtype=np.float32)

    def _maps_call(self, k: int):
        """pooled_linear_maps of this method compiled for k classes a frame: (features (N, h, w, C),
        gradient columns (N, k, C), targets (N, k), structured (N,)) -> maps (N, k, h, w)."""
        if k not in self._maps_calls:
            from streamcam.backends import active

            c = self._head.weights.shape[0]
            specs = [((None, None, None, c), "float32"), ((None, k, c), "float32"), ((None, k), "int32"), ((None,), "float32")]
            self._maps_calls[k] = active().compile_for_shapes(partial(pooled_linear_maps, self.method), specs)
        return self._maps_calls[k]

    def _infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs for (N, H, W, 3) pixels: uint8 ones straight in where the
        preprocessing is in the graph, others preprocessed here."""
        if images.dtype == np.uint8 and "pixels" in self._models:
            kind, x = "pixels", np.ascontiguousarray(images)
        else:
            kind, x = "preprocessed", self._preprocess(images)
        with self._lock:
            return self._policy(kind)(x)

    def _policy(self, kind: str):
        """The run for input `kind` under self.precision; bf16+f32: bf16, with f32 for the frames
        whose top-1 bf16 could have decided (near ties: NearTieRecheck)."""
        if kind not in self._policies:
            if self.precision == "bf16+f32":
                fast, exact = self._run(kind, "bf16"), self._run(kind, "f32")
                exact.follows = fast  # its fixed-shape slot is for the whole batch, not a near-tie subset size
                self._policies[kind] = NearTieRecheck(fast, exact)
            else:
                self._policies[kind] = self._run(kind, self.precision)
        return self._policies[kind]

    def _run(self, kind: str, hint: str) -> CompiledShapes:
        """x -> {output name: array} on the model for input `kind` compiled at `hint` (compiled once
        for any shape, and for each shape that repeats: compiled_shapes.py)."""
        if (kind, hint) not in self._compiled:
            config = {**self.settings, "INFERENCE_PRECISION_HINT": hint}
            self._compiled[kind, hint] = CompiledShapes(self._core, self._models[kind], config, self._outputs, self.max_fixed_shapes)
        return self._compiled[kind, hint]

    @property
    def exact_frames(self) -> int:
        """Frames so far whose outputs came from f32 after bf16 (bf16+f32 only; 0 otherwise)."""
        return sum(policy.exact_frames for policy in self._rechecks())

    @property
    def exact_share(self) -> float:
        """The share of frames so far whose outputs came from f32 (1.0 for f32, 0.0 for plain bf16)."""
        if self.precision != "bf16+f32":
            return float(self.precision == "f32")
        frames = sum(policy.frames for policy in self._rechecks())
        return self.exact_frames / frames if frames else 0.0

    def _rechecks(self) -> list[NearTieRecheck]:
        return [policy for policy in self._policies.values() if isinstance(policy, NearTieRecheck)]

    def _masked_probabilities(self, masked):
        """Score-CAM's probabilities_fn: masked preprocessed inputs through the same converted model."""
        x = np.ascontiguousarray(_numpy(masked), dtype=np.float32)
        # Not frames: no near-tie rule covers their scores, and they must not steer the policy's
        # next batch, so they take f32 where it is compiled (plain bf16 under --precision mixed)
        hint = "f32" if "f32" in self.precision else self.precision
        with self._lock:
            logits = self._run("preprocessed", hint)(x)["logits"]
        return ops.convert_to_tensor(self._softmax(logits))

    def _softmax(self, logits: np.ndarray) -> np.ndarray:
        """(N, classes + groups): the model's softmax and each named group's sum (Labels.group)."""
        probabilities, groups = _softmax(logits), self.classifier.labels.group_matrix()
        if not len(groups):
            return probabilities
        return _numpy(group_probabilities(ops.convert_to_tensor(probabilities), ops.convert_to_tensor(groups)))

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


# In NumPy, not the backend's ops: a few small arrays a batch, where dispatching eager ops
# measured 0.4-0.6 ms for the softmax (8 x 1000) and NumPy 0.015 ms, timed per call on the AMD EPYC.
def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True), dtype=np.float32)
    return exp / exp.sum(axis=-1, keepdims=True)


def _top_classes(logits: np.ndarray, k: int) -> np.ndarray:
    """(N, k) classes of the k largest logits, best first; ties go to the lower id, as top_k's do."""
    if k == 1:  # argmax takes the first of equal maxima; a full sort costs 0.17 ms for 8 x 1000
        return np.argmax(logits, axis=1)[:, None]
    return best_first(logits, k)


def _numpy(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor))
