import io
import pickle

import numpy as np
import pytest
from hostile_pickles import CreatesFile

from streamcam.models.torch_pickle import LEGACY_MAGIC, TorchFileError, load_legacy_state_dict

from conftest import FIXTURES


def test_reads_legacy_file_with_views_offsets_and_dtypes():
    with open(FIXTURES / "tiny_legacy_state.pth", "rb") as f:
        state = load_legacy_state_dict(f)
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(state["conv"], base)
    np.testing.assert_array_equal(state["transposed"], base.reshape(6, 4).T)
    np.testing.assert_array_equal(state["tail"], np.arange(4, 10, dtype=np.float32))
    np.testing.assert_array_equal(state["head"], np.arange(3, dtype=np.float32))
    assert state["count"].dtype == np.int64 and int(state["count"]) == 7
    assert state["half"].dtype == np.float16
    np.testing.assert_array_equal(state["half"], np.arange(5, dtype=np.float16) / 2)


def _legacy_stream(payload: object) -> io.BytesIO:
    buf = io.BytesIO()
    for part in (LEGACY_MAGIC, 1001, {"protocol_version": 1001}):
        pickle.dump(part, buf, protocol=2)
    pickle.dump(payload, buf, protocol=2)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("how", ["shell", "open"])
def test_refuses_to_run_code_from_the_pickle(tmp_path, how):
    marker = tmp_path / "pwned"
    stream = _legacy_stream({"w": CreatesFile(how, marker)})
    with pytest.raises(TorchFileError, match="refusing to load"):
        load_legacy_state_dict(stream)
    assert not marker.exists()


def test_rejects_files_that_are_not_legacy_torch():
    with pytest.raises(TorchFileError, match="magic"):
        load_legacy_state_dict(io.BytesIO(pickle.dumps(123)))
    with pytest.raises(TorchFileError):
        load_legacy_state_dict(io.BytesIO(b"PK\x03\x04 zip file"))


def test_truncated_storage_is_an_error():
    data = (FIXTURES / "tiny_legacy_state.pth").read_bytes()
    with pytest.raises(TorchFileError):
        load_legacy_state_dict(io.BytesIO(data[:-40]))
