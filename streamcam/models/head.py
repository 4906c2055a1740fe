"""The classification head after the target layer: does it pool globally (so the trunk runs at any
input size), what is the stride of its feature grid, and can it score each feature cell alone
(local class evidence, A_ij . W + b for global-average-pool + dense)?
"""

from __future__ import annotations

from dataclasses import dataclass

from streamcam.core.errors import ModelError

from .layers import get_layer, inference_call, is_container, tapped_forward, walk_graph

_GLOBAL_POOLS = ("GlobalAveragePooling2D", "GlobalMaxPooling2D")


def _flat_layers(model, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """(path, layer) of every layer in graph order, nested models expanded (a container after its layers)."""
    found = []
    for layer in model.layers:
        path = (*prefix, layer.name)
        if is_container(layer):
            found += _flat_layers(layer, path)
        found.append((path, layer))
    return found


def find_global_pool(model, target: tuple[str, ...]) -> tuple[str, ...] | None:
    """Path of the last GlobalAveragePooling2D / GlobalMaxPooling2D layer, if it comes after `target`.

    Earlier global pools are squeeze-excite gates inside the trunk. This is only a candidate: a
    trunk that still fixes the input size (a Flatten head after such a gate) fails describe_head's
    probe. VGG16's Flatten head has none: its dense layer fixes the size.
    """
    layers = _flat_layers(model)
    pools = [i for i, (_, layer) in enumerate(layers) if type(layer).__name__ in _GLOBAL_POOLS]
    paths = [p for p, _ in layers]
    if not pools or target not in paths or paths.index(target) >= pools[-1]:
        return None
    return paths[pools[-1]]


def any_size_model(model):
    """`model` if it takes images of any height and width, else a copy (same weights) that does.

    The copy is the same graph on a keras.Input((None, None, channels)), nested models copied
    the same way, so the only thing that changes is the declared input size.
    """
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ModelError(f"model {model.name!r} must take one batch of images (batch, height, width, channels)")
    if tuple(model.inputs[0].shape[1:3]) == (None, None):
        return model
    copy = _size_free_copy(model)
    copy.set_weights(model.get_weights())
    return copy


def _size_free_copy(model):
    import keras

    def copy_layer(layer):
        if is_container(layer):
            return _size_free_copy(layer)
        return layer.__class__.from_config(layer.get_config())

    old = model.inputs[0]
    new = keras.Input((None, None, old.shape[-1]), dtype=old.dtype, name=old.name)
    return keras.models.clone_model(model, input_tensors=new, clone_function=copy_layer)


def cell_head(model, pool: tuple[str, ...]):
    """A function pooled_input (N, h, w, C) -> logits (N * h * w, classes), cell by cell.

    Each cell's feature vector goes through the global pool as a 1x1 map (so it is the pooled
    vector) and then through every layer after the pool. For a GAP -> Dense head that is
    A_ij . W + b; for deeper heads (dropout, dense layers, activations) it asks the head what it
    would say if the whole image looked like that cell. The layers before the pool are not run.
    """

    def head(cells):
        return _run_head(model, pool, None, cells)

    return head


def _run_head(model, pool, x, cells):
    import keras

    target = get_layer(model, pool[:1])

    def wrap(op):
        if op is target and len(pool) == 1:
            channels = cells.shape[-1]
            return lambda *args, **kwargs: op(keras.ops.reshape(cells, (-1, 1, 1, channels)))
        if op is target:
            return lambda inner_x, **kwargs: _run_head(op, pool[1:], inner_x, cells)
        run = inference_call(op)
        # Layers before the pool get None and give None: only the pool and what follows run.
        return lambda *args, **kwargs: None if all(v is None for v in keras.tree.flatten(args)) else run(*args, **kwargs)

    return walk_graph(model, x, wrap)


@dataclass(frozen=True)
class Head:
    """What the model does after the target layer, found once per classifier.

    pool: path of the global pooling layer of a pooling head (the model then accepts any input
    size), None for a fixed-size head. stride: input pixels per target-map cell. model: the model
    to run, one that takes any size when pool is set. local: cell_head(model, pool) works.
    """

    pool: tuple[str, ...] | None
    stride: int
    model: object
    local: bool


_PROBE = 256  # probe sides are multiples of it, so every power-of-two stride up to it divides them


def describe_head(model, target: tuple[str, ...], input_size: tuple[int, int], num_classes: int) -> Head:
    """Find the head's kind and the target's stride by symbolic runs (shapes only, no arithmetic)."""
    pool = find_global_pool(model, target)
    if pool is not None:
        try:
            free = any_size_model(model)
            # Two sizes, one not square: the cells gained per input pixel give the stride.
            sizes = ((_PROBE, _PROBE), (2 * _PROBE, 3 * _PROBE))
            (f1, o1, p1), (f2, o2, _) = (_probe(free, target, pool, size) for size in sizes)
        except Exception:
            pool = None
        else:
            if o1 == o2 == (1, num_classes) and f2[1] > f1[1] and f2[2] > f1[2]:
                return Head(pool, max(1, round(_PROBE / (f2[1] - f1[1]))), free, _local_ok(free, pool, p1, num_classes))
            pool = None
    try:
        features, _ = _probe(model, target, None, input_size)
    except Exception as exc:
        raise ModelError(f"cannot run model {model.name!r} at its input size {input_size}: {exc}") from exc
    return Head(None, max(1, round(input_size[0] / features[1])), model, False)


def _probe(model, target, pool, size):
    """Shapes of the target features, the output (and the pooled input) for a (1, h, w, C) input."""
    import keras

    x = keras.KerasTensor((1, *size, model.inputs[0].shape[-1]), dtype=model.inputs[0].dtype)
    return tuple(tuple(t.shape) for t in tapped_forward(model, target, pool)(x))


def _local_ok(model, pool, pooled_shape, num_classes: int) -> bool:
    import keras

    try:
        out = cell_head(model, pool)(keras.KerasTensor(pooled_shape))
    except Exception:
        return False
    return tuple(out.shape) == (pooled_shape[1] * pooled_shape[2], num_classes)
