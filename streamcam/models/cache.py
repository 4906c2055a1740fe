"""Where converted weights are cached (a per-user cache dir; STREAMCAM_CACHE_DIR overrides)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "STREAMCAM_CACHE_DIR"


def cache_dir() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("streamcam"))
