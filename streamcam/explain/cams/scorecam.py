"""Score-CAM (Wang et al. 2020): weigh each channel by the class score of the input masked by it.

Each channel's upsampled, min-max scaled activation map masks the input; the target class's
softmax probability on the masked input is that channel's weight. Masks run through the model
in batches. To keep the cost bounded only the `max_channels` channels whose activation maps
have the highest spatial variance (per image) are scored; the rest get weight 0. That is Faster
Score-CAM's choice (github.com/tabayashi0117/Score-CAM, `max_N` in tf-keras-vis): a channel about
equally active everywhere says little about where, however high its mean; min-max scaling would
only turn its small differences into a noisy mask.
"""

from streamcam.backends import ops

from .base import CamMethod


class ScoreCAM(CamMethod):
    name = "scorecam"
    uses_gradients = False
    uses_model = True

    def __init__(self, max_channels: int = 128, mask_batch: int = 32):
        self.max_channels = max_channels
        self.mask_batch = mask_batch

    def cam_from_model(self, activations, model_input, probabilities_fn, class_ids):
        """activations (N,h,w,C), model_input (N,H,W,3) preprocessed, class_ids (N,K) -> maps (N,K,h,w)."""
        n, h, w, channels = activations.shape
        k_top = min(self.max_channels, channels)
        variance = ops.var(activations, axis=(1, 2))  # (N, C)
        order = ops.top_k(variance, k_top)[1]  # (N, k_top)
        chosen = ops.take_along_axis(activations, ops.broadcast_to(order[:, None, None, :], (n, h, w, k_top)), axis=3)
        size = tuple(model_input.shape[1:3])
        masks = ops.image.resize(chosen, size, interpolation="bilinear")
        low = ops.min(masks, axis=(1, 2), keepdims=True)
        high = ops.max(masks, axis=(1, 2), keepdims=True)
        masks = ops.divide_no_nan(masks - low, high - low)  # (N, H, W, k_top)
        masks = ops.transpose(masks, (0, 3, 1, 2))[..., None]  # (N, k_top, H, W, 1)
        masked = ops.reshape(model_input[:, None] * masks, (-1, *model_input.shape[1:]))  # (N * k_top, H, W, 3)
        # One loop over chunks of mask_batch masked inputs, not one model copy per chunk in the
        # compiled program: unrolled, a batch of 64 frames made 256 copies (minutes of compiling).
        total = masked.shape[0]
        chunks = -(-total // self.mask_batch)
        padded = ops.pad(masked, ((0, chunks * self.mask_batch - total), (0, 0), (0, 0), (0, 0)))
        probs = ops.map(probabilities_fn, ops.reshape(padded, (chunks, self.mask_batch, *masked.shape[1:])))
        probs = ops.reshape(probs, (chunks * self.mask_batch, -1))[:total]
        probs = ops.reshape(probs, (n, k_top, probs.shape[-1]))  # (N, k_top, classes)
        ids = ops.broadcast_to(class_ids[:, None, :], (n, k_top, class_ids.shape[1]))
        scores = ops.take_along_axis(probs, ids, axis=2)  # (N, k_top, K)
        return ops.relu(ops.einsum("nhwj,njk->nkhw", chosen, scores))
