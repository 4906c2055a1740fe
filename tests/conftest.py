"""Shared fixtures. Tests never touch the network: Keras and streamcam caches point at temp dirs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="streamcam-tests-"))
os.environ["KERAS_HOME"] = str(_SESSION_TMP / "keras")
os.environ["STREAMCAM_CACHE_DIR"] = str(_SESSION_TMP / "cache")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_file(*parts: str) -> Path:
    """A file under ../shared/media, or skip the test with the reason."""
    path = SHARED_MEDIA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test media not available: {path} (a user's clone has no ../shared)")
    return path


@pytest.fixture(scope="session")
def default_classifier():
    from streamcam.models import load_classifier

    return load_classifier()


@pytest.fixture(scope="session")
def default_engine(default_classifier):
    from streamcam.engine import CamEngine

    return CamEngine(default_classifier)
