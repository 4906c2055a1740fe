"""`--save-cams`: every analysed frame's CAM grids in one NumPy .npz file, for users' own analysis.

Layout of <stem>.cams.npz (N frames, K explained classes, an h x w grid; np.load reads it):

  frame_index  (N,) int64     the frame's number in the source, as in the CSV
  time_s       (N,) float64   its time in seconds
  class_ids    (N, K) int32   the explained classes: the top classes shown (held, with smoothing),
                              then the tracked ones, as in the overlay
  cams         (N, K, h, w) float16  their maps as drawn, in [0, 1] (smoothed when smoothing is on)
  cams_raw     (N, K, h, w) float16  the same classes' maps as the engine gave them for that frame,
                              before smoothing; NaN where the engine had none (a held class carried
                              along the flow); equal to cams with --smooth 0

The rows are appended to temporary files as frames are written, so memory stays flat with the
video's length; close() streams them into the .npz (uncompressed, as np.savez) and renames it.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np

from streamcam.core.paths import replace_durably

from .files import partial_path

_FIELDS = {"frame_index": np.int64, "time_s": np.float64, "class_ids": np.int32, "cams": np.float16, "cams_raw": np.float16}
_CHUNK = 1 << 20


class CamsNpz:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.temp_path = partial_path(self.path)
        self._spool = {name: tempfile.TemporaryFile() for name in _FIELDS}  # noqa: SIM115 - closed by close()/abort()
        self._shapes: dict[str, tuple[int, ...]] = {}
        self.frames = 0

    def add(self, frame_index: int, time_s: float, class_ids, cams: np.ndarray, cams_raw: np.ndarray | None = None) -> None:
        row = {
            "frame_index": frame_index,
            "time_s": time_s,
            "class_ids": class_ids,
            "cams": cams,
            "cams_raw": cams if cams_raw is None else cams_raw,
        }
        for name, value in row.items():
            array = np.asarray(value, dtype=_FIELDS[name])
            shape = self._shapes.setdefault(name, array.shape)
            if array.shape != shape:
                raise ValueError(f"{name} changed shape within a run: {shape} -> {array.shape}")
            self._spool[name].write(array.tobytes())
        self.frames += 1

    def close(self) -> None:
        """Write the .npz under a temporary name, then rename it (nothing half-written is left)."""
        try:
            with zipfile.ZipFile(self.temp_path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, spool in self._spool.items():
                    self._write_member(archive, name, spool)
            replace_durably(self.temp_path, self.path)
        except BaseException:
            self.temp_path.unlink(missing_ok=True)
            raise
        finally:
            self._drop_spool()

    def abort(self) -> None:
        self._drop_spool()
        self.temp_path.unlink(missing_ok=True)

    def _write_member(self, archive: zipfile.ZipFile, name: str, spool) -> None:
        shape = (self.frames, *self._shapes.get(name, ()))
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(_FIELDS[name])), "fortran_order": False, "shape": shape}
        spool.seek(0)
        with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            while chunk := spool.read(_CHUNK):
                member.write(chunk)

    def _drop_spool(self) -> None:
        for spool in self._spool.values():
            spool.close()
