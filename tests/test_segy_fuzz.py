"""SEG-Y readers under fuzzing: the bounded campaign, the oracle itself, and the
files earlier campaigns found (each now a one-line SegyError)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import segyio
from segyio import TraceField

from seispinn.errors import SegyError
from seispinn.io import read_shots, summarise

try:  # tests/ on sys.path (pytest's default rootdir-less layout)
    from fixtures import segy_fuzz as fz
except ImportError:  # tests is a package
    from tests.fixtures import segy_fuzz as fz

# The full campaign (10,000 cases, README) is `python tests/fixtures/segy_fuzz.py`.
CASES = int(os.environ.get("SEISPINN_FUZZ_CASES", "400"))


def test_bounded_campaign_every_reader_loads_or_raises_segy_error(tmp_path: Path) -> None:
    tally = fz.Tally()
    fz.campaign(CASES, tmp_path, derandomize=True, tally=tally)
    assert tally.cases >= CASES
    for reader in fz.READERS:
        # Both outcomes are exercised, so the campaign reaches past the size checks.
        assert tally.outcomes[(reader, "loaded")] > CASES // 20, reader
        assert tally.outcomes[(reader, "SegyError")] > CASES // 20, reader


def test_seeds_are_valid_files(tmp_path: Path) -> None:
    for seed in fz.seeds():
        path = tmp_path / f"{seed.name}.sgy"
        path.write_bytes(seed.data)
        assert summarise(path).traces == fz._n_traces(seed), seed.name


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (lambda p: int("x"), "ValueError"),
        (lambda p: (_ for _ in ()).throw(SegyError("elsewhere: bad")), "not naming the file"),
        (lambda p: time.sleep(5), "hang"),
        (lambda p: np.ones(3 * 2**20).sum(), "heap peak"),
    ],
    ids=["foreign-exception", "unnamed-error", "hang", "memory"],
)
def test_oracle_flags_each_kind_of_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, behaviour, expected: str
) -> None:
    path = tmp_path / "any.sgy"
    path.write_bytes(fz.seeds()[0].data)
    monkeypatch.setattr(fz, "READERS", {"reader": behaviour})
    monkeypatch.setattr(fz, "TIME_LIMIT_S", 1.0)
    monkeypatch.setattr(fz, "MEMORY_LIMIT_BYTES", 16 * 2**20)
    with pytest.raises(fz.FuzzFailure, match=expected):
        fz.check_file(path)


def test_byte_order_constant_contradicting_the_format_code(tmp_path: Path) -> None:
    # Found by the campaign: a little-endian rev2 constant on a big-endian file made
    # the format code 1280 and the reader fail with KeyError.
    seed = next(s for s in fz.seeds() if s.name == "velocity-f5-big")
    data = fz.apply(seed, bytearray(seed.data), ("binary", "byte_order", 0x04030201, "big"))
    path = tmp_path / "contradicts.sgy"
    path.write_bytes(bytes(data))
    with pytest.raises(SegyError, match=r"contradicts.sgy: .*format code 1280"):
        read_shots(path)
    fz.check_file(path)  # and every other reader says the same


def test_damaged_shot_grouping_is_refused_before_allocating(tmp_path: Path) -> None:
    # One shot of 2,000 receivers and 2,000 one-trace shots: a [shot, receiver, time]
    # array would be 2,001 x 2,000 traces (320 MB) for 4,001 traces of data.
    n, samples = 2000, 20
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = 5, np.arange(samples), 2 * n
    path = tmp_path / "uneven.sgy"
    with segyio.create(str(path), spec) as f:
        f.trace = np.zeros((2 * n, samples), dtype=np.float32)
        for i in range(2 * n):
            f.header[i] = {
                TraceField.FieldRecord: 1 if i < n else i,
                TraceField.GroupX: i,
                TraceField.TRACE_SAMPLE_INTERVAL: 2000,
            }
        f.bin.update({segyio.BinField.Interval: 2000})
    with pytest.raises(SegyError, match=r"uneven.sgy: shot sizes too uneven .* 2001 shots"):
        read_shots(path)
