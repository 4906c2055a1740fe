"""An OpenVINO model compiled once for any input shape, and again for the small shape that repeats.

The converted model's batch and spatial sizes are dynamic, so one compile serves every
--input-size and a short last batch without recompiling. But the CPU plugin pays a cost per call
for a dynamic shape, which shows where a call is small. `python scripts/openvino_bench.py --shapes`
(AMD EPYC, 2 cores, three runs), a compile with the shape fixed against the dynamic one alone,
model-only: bf16+f32 1.05x, 1.06x and 1.06x at batch 8 of 224x224, 1.12-1.15x at batch 1 (live);
f32 1.00-1.04x at batch 8, 1.10-1.18x at batch 1; 640x352 at batch 8, in the two runs that fixed
it, 1.03-1.04x under auto and f32 (plain bf16 0.92x and 1.03x). The same code on both sides,
640x352 unfixed in the third run, read 0.94-0.99x: this shared machine's noise. A fixed compile also costs memory of its own (RSS after it, AMD EPYC):
44 MiB in bf16 and 77 MiB in f32 for 8 x 224x224, 19 and 33 MiB for 1 x 224x224, but 139 and 250 MiB
for 8 x 640x352, where it gains least.

So the first shape met a second time (a video's steady batch, live's one frame) gets a compile
of its own with that shape fixed, when it holds at most FIX_UP_TO_PIXELS pixels; every other
shape runs on the dynamic compile. The call that compiles it takes 70-100 ms longer, once (AMD EPYC).

A compile that `follows` another fixes only a shape the other has met: bf16+f32's f32 model
(precision.py) is called with the near ties of each batch, a subset whose size varies, and with
whole batches after a hesitant one (in a run of near ties, every batch); its one fixed slot belongs
to the whole batch, which the fast model always meets first, not to the first subset size that
happened to come twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

FIX_AFTER = 2  # calls with one shape before it gets a compile of its own
MAX_FIXED = 1  # fixed-shape compiles a model keeps: the steady batch (or live's frame)
FIX_UP_TO_PIXELS = 8 * 224 * 224  # batch x height x width: above it the gain is small, the memory large
_MAX_COUNTED = 64  # shapes counted before the count starts again (a run of ever-new image sizes)


class CompiledShapes:
    """x -> {output name: array} of `model` compiled for the CPU with `config`: on a compile with
    x's shape fixed where that shape has repeated, else on the dynamic compile."""

    def __init__(
        self, core, model, config: dict, outputs: Sequence[str], max_fixed: int = MAX_FIXED, follows: CompiledShapes | None = None
    ):
        self._core, self._model, self._config, self._outputs = core, model, dict(config), tuple(outputs)
        self.max_fixed = max_fixed
        self.follows = follows  # None, or the compile whose shapes met are the only ones this one may fix
        self._any_shape = _Request(core.compile_model(model, "CPU", self._config), self._outputs)
        self._fixed: dict[tuple[int, ...], _Request] = {}
        self._seen: Counter = Counter()

    @property
    def dynamic(self):
        """The compile for any shape (ov.CompiledModel)."""
        return self._any_shape.compiled

    @property
    def fixed_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The input shapes compiled fixed so far, in the order they were compiled."""
        return tuple(self._fixed)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        shape = tuple(x.shape)
        request = self._fixed.get(shape)
        if request is None:
            request = self._fix(shape) if self._repeats(shape) else self._any_shape
        return request(x)

    def _repeats(self, shape: tuple[int, ...]) -> bool:
        if len(self._fixed) >= self.max_fixed or int(np.prod(shape[:3])) > FIX_UP_TO_PIXELS:
            return False
        if self.follows is not None and not self.follows.has_met(shape):
            return False
        if len(self._seen) >= _MAX_COUNTED and shape not in self._seen:
            self._seen.clear()
        self._seen[shape] += 1
        return self._seen[shape] >= FIX_AFTER

    def has_met(self, shape: tuple[int, ...]) -> bool:
        """Whether a call had this input shape (among the shapes counted: see _repeats)."""
        return shape in self._fixed or shape in self._seen

    def _fix(self, shape: tuple[int, ...]) -> _Request:
        model = self._model.clone()  # reshape edits its model in place
        model.reshape(list(shape))
        request = self._fixed[shape] = _Request(self._core.compile_model(model, "CPU", self._config), self._outputs)
        return request


class _Request:
    """One infer request of a compiled model; the outputs copied out, as the request reuses its buffers."""

    def __init__(self, compiled, outputs: Sequence[str]):
        self.compiled = compiled
        self._ports = {name: compiled.output(name) for name in outputs}
        self._request = compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self._request.infer({0: x})
        return {name: self._request.get_tensor(port).data.copy() for name, port in self._ports.items()}
