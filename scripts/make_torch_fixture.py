"""Write tests/fixtures/tiny_legacy_state.pth: a small state dict in PyTorch's legacy (pre-zip) format.

Run with an interpreter that has torch (never a project dependency):
    /path/to/torch-env/bin/python scripts/make_torch_fixture.py
The tensors are simple functions of arange, so the test can rebuild the expected values
without torch; they include a transposed (non-contiguous) view and a view with a storage offset.
"""

from collections import OrderedDict
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny_legacy_state.pth"


def main() -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    shared = torch.arange(10, dtype=torch.float32)
    state = OrderedDict(
        conv=base,
        transposed=base.reshape(6, 4).t(),  # non-contiguous view of conv's storage
        tail=shared[4:],  # storage offset 4
        head=shared[:3],  # same storage, offset 0
        count=torch.tensor(7, dtype=torch.int64),
        half=torch.arange(5, dtype=torch.float16) / 2,
    )
    torch.save(state, OUT, _use_new_zipfile_serialization=False)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
