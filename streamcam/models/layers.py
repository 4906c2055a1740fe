"""Find the layer to explain, and run a model so that layer's output comes back with the logits.

Works on nested models (a Functional or Sequential backbone inside an outer model), the usual
shape of a fine-tuned classifier, where `keras.Model(inputs, inner_layer.output)` cannot be built.
Also tells a pooling head (global pool, then dense layers: any input size) from a fixed-size
one, measures the target's stride, and runs a pooling head on each cell of the pooled map.
"""

from __future__ import annotations

from streamcam.core.errors import ModelError

_STAGE_BREAKS = ("Pooling", "Flatten", "Dense")  # layers that end a spatial feature map


def is_container(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "get_layer")


def all_layers(model):
    """Every layer of `model`, nested models' layers included (each container before its layers)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def _output_rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _is_conv(layer) -> bool:
    return "Conv" in type(layer).__name__ and _output_rank(layer) == 4


def find_target_layer(model) -> tuple[str, ...]:
    """Path of names to the last 4-D feature map at or after the last convolution.

    Walks backwards, descending into nested models, skipping pooling and flatten layers, so
    VGG16 gives block5_conv3 and EfficientNet the activation after its head convolution.
    """
    path = _search(model)
    if path is None:
        raise ModelError(f"model {model.name!r} has no convolutional layer to explain; pass --layer NAME")
    return path


def _search(model) -> tuple[str, ...] | None:
    candidate: tuple[str, ...] | None = None  # nearest-to-output 4-D layer of the current spatial stage
    for layer in reversed(model.layers):
        kind = type(layer).__name__
        if is_container(layer):
            inner = _search(layer)
            if inner is not None:
                return candidate or (layer.name, *inner)
        elif kind == "InputLayer":
            continue
        elif any(hint in kind for hint in _STAGE_BREAKS):
            candidate = None  # what lies before a pooling layer is another stage
        elif _output_rank(layer) == 4:
            candidate = candidate or (layer.name,)
            if _is_conv(layer):
                return candidate
    return None


def resolve_layer(model, name: str) -> tuple[str, ...]:
    """Path to a layer given by name ('block5_conv3', or 'backbone/top_activation' for nested)."""
    path = tuple(p for p in name.split("/") if p)
    found = _find_path(model, path[-1]) if len(path) == 1 else path
    if found is None:
        raise ModelError(f"layer {name!r} is not in model {model.name!r}")
    layer = get_layer(model, found)
    if _output_rank(layer) != 4:
        raise ModelError(f"layer {name!r} has no 4-D (batch, height, width, channels) output to explain")
    return found


def _find_path(model, name: str) -> tuple[str, ...] | None:
    for layer in model.layers:
        if layer.name == name:
            return (name,)
        if is_container(layer):
            inner = _find_path(layer, name)
            if inner is not None:
                return (layer.name, *inner)
    return None


def get_layer(model, path: tuple[str, ...]):
    layer = model
    for name in path:
        try:
            layer = layer.get_layer(name)
        except ValueError as exc:
            raise ModelError(f"layer {'/'.join(path)!r} is not in model {model.name!r}") from exc
    return layer


def tapped_forward(model, path: tuple[str, ...], pool: tuple[str, ...] | None = None):
    """A function x -> (feature map at `path`, model output), traceable by every backend.

    With `pool` (the path of a global pooling layer) the function also returns that layer's
    input, the feature map the head pools: x -> (features, output, pooled_input).
    forward(x, offset) adds `offset` to the feature map before the rest of the model sees it
    (features still come back without it): differentiating with respect to a zero offset gives
    the gradient with respect to the features where a backend (JAX) differentiates inputs only.
    """
    taps_wanted = {"feature": path, **({"pooled": pool} if pool else {})}

    def forward(x, offset=None):
        taps: dict[str, object] = {}
        out = _run_tapped(model, taps_wanted, x, taps, offset)
        return (taps["feature"], out, taps["pooled"]) if pool else (taps["feature"], out)

    return forward


def _run_tapped(model, wanted: dict, x, taps, offset=None):
    """Run `model` on x, recording the output of the 'feature' layer and the input of the 'pooled'
    layer (paths in `wanted`, possibly nested); containers off those paths run as one op."""

    layers = {key: (get_layer(model, p[:1]), p[1:]) for key, p in wanted.items()}

    def wrap(op):
        here = {key: rest for key, (layer, rest) in layers.items() if layer is op}
        inner = {key: rest for key, rest in here.items() if rest}
        if inner:
            return lambda inner_x, **kwargs: _run_tapped(op, inner, inner_x, taps, offset)
        run = inference_call(op)
        if not here:
            return run

        def record(inputs, *args, **kwargs):
            if "pooled" in here:
                taps["pooled"] = inputs
            out = run(inputs, *args, **kwargs)
            if "feature" in here:
                taps["feature"] = out
                if offset is not None:
                    out = out + offset
            return out

        return record

    return walk_graph(model, x, wrap)


def walk_graph(model, x, wrap):
    if type(model).__name__ == "Sequential":
        for layer in model.layers:
            x = wrap(layer)(x)
        return x
    return model._run_through_graph(x, operation_fn=wrap)  # Keras 3 Functional graph walk


def inference_call(op):
    if _accepts_training(op):
        return lambda *args, **kwargs: op(*args, **{**kwargs, "training": False})
    return op


def _accepts_training(op) -> bool:
    import inspect

    try:
        return "training" in inspect.signature(op.call).parameters
    except (TypeError, ValueError, AttributeError):
        return False
