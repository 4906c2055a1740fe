"""The CAM engine: one compiled call per batch gives probabilities and CAMs.

The gradient model (features + logits) is built once per classifier. The compiled call is
traced once per batch shape (input size included) and number of target classes, then reused
for every batch; only the backward pass through the head (feature map -> logits) is computed
for each target class. A pooling-head classifier takes images of any size (at least one
stride); a fixed-size head takes only its native size (streamcam.explain.tiling covers larger images).
The graph is written in keras.ops; the gradient and the compiled call come from the backend
module (backends/tensorflow.py or backends/jax.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamcam.backends import active, ops, uses_gpu
from streamcam.core.errors import UsageError
from streamcam.models import Classifier
from streamcam.models.head import cell_head
from streamcam.models.layers import all_layers, tapped_forward

from .cams import get_method
from .checks import class_id_array, pooling_images
from .maps import FLAT_FRAME_RANGE as FLAT_FRAME_RANGE
from .maps import cell_probabilities, class_maps, group_logits, group_probabilities, structured_frames
from .results import CamBatch
from .tiling import MAX_TILE_BATCH, explain_tiled, probabilities_tiled


class CamEngine:
    """Explains batches of images with one CAM method on one classifier, on Keras's backend."""

    runtime = "keras"
    runtime_info: dict | None = None  # what build_engine chose and why (explain.runtime)

    def __init__(
        self, classifier: Classifier, method="gradcam", device: str = "auto", jit: bool | None = None, local_evidence: bool = True
    ):
        """local_evidence: fill CamBatch.local_probabilities where the head allows (a pooling head
        whose layers run per cell); it costs a (cells x channels x classes) matmul, 2-15% on a CPU.
        jit: XLA for TensorFlow (default: on a GPU only; it measured slower on CPUs); JAX always uses it."""
        self.backend = active()
        self.classifier = classifier
        self.method = get_method(method)
        self.device = device
        self.backend.device_scope(device)  # an unknown or missing device fails now, not on the first batch
        self._on_gpu = uses_gpu(device)
        self.jit = self.backend.uses_xla(jit, self._on_gpu)
        head = classifier.head
        self.backend.prepare(all_layers(head.model), self._on_gpu)
        self._model = head.model  # takes any input size when the classifier has a pooling head
        self._pooling = head.pool is not None
        # Local evidence: the head run on each cell of the pooled feature map (see _local_probabilities).
        local_pool = head.pool if head.local and local_evidence else None
        self._forward = tapped_forward(head.model, classifier.target_layer, local_pool)
        self._cell_head = cell_head(head.model, local_pool) if local_pool else None
        xla = self.jit and not self.method.uses_model
        self._explain = self.backend.compile(self._explain_graph, head.model, xla, static_argnums=(2,))
        self._guided = None
        self._predict = None

    @property
    def backend_name(self) -> str:
        return self.backend.NAME

    # -- public API -------------------------------------------------------------------------
    def explain(self, images: np.ndarray, top_k: int = 1, class_ids: Sequence[int | str] | str = (), pad_to: int | None = None) -> CamBatch:
        """CAMs for the top_k classes of each image, then for each of class_ids.

        class_ids: ids, names or both, as the command line takes them ([920, "mountain_bike"],
        "traffic_light,444"): a name must be exact (Labels.resolve); CamBatch.class_ids holds ids.

        images: (N, H, W, 3) uint8: any H, W >= the stride for a pooling-head classifier (CAMs
        (N, K, ceil(H / stride), ceil(W / stride)) for 'same'-padded models); for a fixed-size head,
        the input size, or anything larger, explained in overlapping tiles (see tiling.py).
        pad_to: pad a short batch to this size (results for the padding are dropped), so the last
        batch of a video reuses the compiled call instead of tracing a new one (about 1 s).
        """
        class_ids = self.classifier.labels.ids(class_ids)
        if self._needs_tiles(images):  # a fixed-size head and a larger picture: overlapping native tiles
            return explain_tiled(self, images, top_k, class_ids, pad_to=MAX_TILE_BATCH)
        images = self._check_images(images)
        count = len(images)
        if pad_to is not None and count < pad_to:
            images = np.concatenate([images, np.zeros((pad_to - count, *images.shape[1:]), images.dtype)])
        fixed = self._check_classes(class_ids)
        if top_k < 0 or top_k + len(fixed) == 0:
            raise UsageError("nothing to explain: ask for top_k >= 1 or name classes")
        with self.backend.device_scope(self.device):
            outputs = self._explain(
                ops.convert_to_tensor(images),
                ops.convert_to_tensor(fixed),
                int(min(top_k, self.classifier.num_classes)),
                ops.convert_to_tensor(self.classifier.labels.group_matrix()),
                ops.convert_to_tensor(structured_frames(images)),
            )
        probs, targets, cams, local = (None if t is None else _numpy(t)[:count] for t in outputs)
        return CamBatch(probs, targets, cams, local)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """The classifier's probabilities (N, classes + groups) for images as explain() takes them, from a
        compiled forward pass alone (no gradient, no maps): what removal scores need. Pictures
        larger than a fixed-size head's input go by tiles, as in explain()."""
        if self._needs_tiles(images):
            return probabilities_tiled(self, images)
        images = self._check_images(images)
        if self._predict is None:
            preprocess = self.classifier.preprocess

            def predict(images, groups):
                logits = self._forward(preprocess(ops.cast(images, "float32")))[1]
                return group_probabilities(ops.softmax(ops.cast(logits, "float32"), axis=-1), groups)

            self._predict = self.backend.compile(predict, self._model, self.jit)
        with self.backend.device_scope(self.device):
            return _numpy(self._predict(ops.convert_to_tensor(images), ops.convert_to_tensor(self.classifier.labels.group_matrix())))

    def guided_backprop(self, images: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Guided backpropagation: d logit / d input with ReLUs passing only positive gradients.

        images (N, H, W, 3) uint8, class_ids (N, K) -> (N, K, H, W, 3) float32 gradients.
        """
        if self._guided is None:
            from .guided import guided_model

            model = guided_model(self._model)
            self.backend.prepare(all_layers(model), self._on_gpu)
            preprocess = self.classifier.preprocess

            def gradients(images, ids, groups):
                logits = lambda x: group_logits(ops.cast(model(preprocess(x), training=False), "float32"), groups)
                return self.backend.input_gradients(logits, ops.cast(images, "float32"), ids)

            self._guided = self.backend.compile(gradients, model, self.jit)
        images = self._check_images(images)
        with self.backend.device_scope(self.device):
            ids = ops.convert_to_tensor(np.asarray(class_ids, dtype=np.int32))
            groups = ops.convert_to_tensor(self.classifier.labels.group_matrix())
            return _numpy(self._guided(ops.convert_to_tensor(images), ids, groups))

    def feature_gradients(self, images: np.ndarray, class_ids: Sequence[int | str]) -> tuple[np.ndarray, np.ndarray]:
        """The target layer's activations (N, h, w, C) and d logit / d activations (N, K, h, w, C)."""
        images = self._check_images(images)
        fixed = self._check_classes(self.classifier.labels.ids(class_ids))
        with self.backend.device_scope(self.device):
            x = self.classifier.preprocess(ops.cast(ops.convert_to_tensor(images), "float32"))
            groups = ops.convert_to_tensor(self.classifier.labels.group_matrix())
            features, _, _, grads, _ = self._forward_and_gradients(x, fixed, 0, True, groups)
        return _numpy(features), np.stack([_numpy(g) for g in grads], axis=1)

    # -- compiled graph (keras.ops: the same on every backend) -------------------------------
    def _forward_and_gradients(self, x, fixed_ids, top_k: int, with_gradients: bool, groups):
        """Features, logits (N, classes + G: each group's logsumexp appended, so a group's gradient
        comes from the same backward pass), target ids (N, K: top_k of the model's classes, then
        fixed_ids), if asked K gradients d S_k / d features, and the pooled feature map (None
        without local evidence). groups (G, classes): Labels.group_matrix()."""
        fixed_ids = ops.convert_to_tensor(fixed_ids, "int32")
        classes = self.classifier.num_classes

        def forward(*args):  # the JAX backend passes an offset after x
            features, logits, *rest = self._forward(*args)
            return (features, group_logits(ops.cast(logits, "float32"), groups), *rest)

        def pick_targets(logits):
            n = ops.shape(logits)[0]
            top_ids = ops.cast(ops.top_k(logits[:, :classes], top_k)[1], "int32") if top_k else ops.zeros((n, 0), "int32")
            return ops.concatenate([top_ids, ops.tile(fixed_ids[None, :], (n, 1))], axis=1)

        return self.backend.head_gradients(forward, x, pick_targets, with_gradients)

    def _explain_graph(self, images, fixed_ids, top_k: int, groups, structured):
        method = self.method
        x = self.classifier.preprocess(ops.cast(images, "float32"))
        features, logits, targets, grads, pooled = self._forward_and_gradients(x, fixed_ids, top_k, method.uses_gradients, groups)
        softmax = lambda logits: group_probabilities(ops.softmax(logits[:, : self.classifier.num_classes], axis=-1), groups)
        probs_fn = lambda masked: softmax(ops.cast(self._forward(masked)[1], "float32"))
        maps = class_maps(method, features, grads, targets, x, probs_fn, structured)
        local = None if pooled is None else self._local_probabilities(pooled, targets, groups)
        return softmax(logits), targets, maps, local

    def _local_probabilities(self, pooled, targets, groups):
        """(N, K): each target class's largest probability over the cells of the pooled feature map.

        Every cell's feature vector goes through the head as if it were the pooled vector (for
        GAP -> Dense: softmax(A_ij . W + b)), so a cyclist filling 2 of 220 cells, whose share of
        the average is tiny, still shows as a confident cell.
        """
        probs = group_probabilities(cell_probabilities(self._cell_head, ops.stop_gradient(pooled)), groups)  # (N, h*w, classes + G)
        ids = ops.broadcast_to(targets[:, None, :], (probs.shape[0], probs.shape[1], targets.shape[1]))
        return ops.max(ops.take_along_axis(probs, ids, axis=2), axis=1)

    # -- checks -----------------------------------------------------------------------------
    def _needs_tiles(self, images) -> bool:
        h, w = self.classifier.input_size
        shape = np.shape(images)
        return not self._pooling and len(shape) == 4 and shape[3] == 3 and shape[1:3] != (h, w) and shape[1] >= h and shape[2] >= w

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        if self._pooling:
            return pooling_images(images, self.classifier.stride)
        images = np.asarray(images)
        h, w = self.classifier.input_size
        if images.ndim != 4 or images.shape[1:] != (h, w, 3):
            raise UsageError(f"expected images of shape (N, {h}, {w}, 3) (a fixed-size head), got {images.shape}")
        return images

    def _check_classes(self, class_ids: Sequence[int]) -> np.ndarray:
        labels = self.classifier.labels
        return class_id_array(class_ids, labels.num_classes, len(labels.groups))


def _numpy(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor))
