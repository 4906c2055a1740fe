"""The fuzz harness (scripts/fuzz.py): its mutations are seeded, and a seeded subset of cases passes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

_spec = importlib.util.spec_from_file_location("streamcam_fuzz", REPO / "scripts" / "fuzz.py")
fuzz = sys.modules["streamcam_fuzz"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(fuzz)


@pytest.mark.parametrize("kind", fuzz.MUTATIONS)
def test_mutations_are_seeded_and_do_what_they_say(kind):
    data = bytes(range(256)) * 64  # 16 KiB
    a = fuzz.mutate(data, kind, np.random.default_rng([5, 1]))
    assert a == fuzz.mutate(data, kind, np.random.default_rng([5, 1]))  # reproducible from the seed
    assert a != data
    if kind == "truncate":
        assert data.startswith(a) and len(a) < len(data)
    elif kind == "cut_head":
        assert data.endswith(a) and len(a) < len(data)
    elif kind == "header_flips":
        assert len(a) == len(data) and a[4096:] == data[4096:]
    elif kind in ("bit_flips", "zero_block"):
        assert len(a) == len(data)
    assert fuzz.mutate(b"", kind, np.random.default_rng(0)) == b"" or kind == "garbage"


def test_cases_are_planned_from_seed_and_id_alone(tmp_path):
    generated = [tmp_path / "a.mp4", tmp_path / "b.webm"]
    one = fuzz.plan_case(7, 3, generated, [])
    again = fuzz.plan_case(7, 3, generated, [])
    assert (one.base, one.mutation, one.options) == (again.base, again.mutation, again.options)
    planned = [fuzz.plan_case(7, i, generated, []) for i in range(60)]
    assert {c.mutation for c in planned} == set(fuzz.MUTATIONS)


@pytest.mark.slow
def test_seeded_subset_has_no_failures(tmp_path):
    """About 20 real cases through the real CLI: no traceback, no hang, consistent outputs."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fuzz.py"), "--cases", "20", "--seed", "11", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fuzz: 20 cases" in proc.stdout and "failures: 0" in proc.stdout
    assert not list(tmp_path.glob("case*"))  # passing cases clean up after themselves


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "case"), [(1, 21), (2, 26)])
def test_cases_that_once_failed_in_the_audio_copy(tmp_path, seed, case):
    """Found by full runs: (1, 21) a bit-flipped WebM whose Opus track fails only in the mp4
    trailer (it cost the whole overlay video, exit 1); (2, 26) audio metadata that is not UTF-8."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fuzz.py"), "--seed", str(seed), "--only", str(case), "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0 and "failures: 0" in proc.stdout, proc.stdout + proc.stderr
