"""SEG-Y input/output: round trips, header conventions, foreign files, bad input, CLI."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
import segyio
from segyio import BinField, TraceField

import seispinn.cli
from seispinn.cli import info as info_cli
from seispinn.errors import SegyError
from seispinn.gathers import ShotGathers
from seispinn.io import read_shots, read_velocity, summarise, write_shots, write_velocity
from seispinn.models import VelocityModel

try:  # tests/ on sys.path (pytest's default rootdir-less layout)
    from fixtures import make_segy_fixtures as fx
except ImportError:  # tests is a package
    from tests.fixtures import make_segy_fixtures as fx

MARMOUSI = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "external"
    / "marmousi2"
    / "vp_marmousi-ii.segy.gz"
)

FORMATS = [(5, "big"), (5, "little"), (1, "big"), (1, "little")]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fx.make_all(tmp_path_factory.mktemp("segy"))


def assert_same_model(got: VelocityModel, want: VelocityModel) -> None:
    assert got.values.dtype == np.float32
    assert got.values.tobytes() == want.values.tobytes()  # bit-identical
    assert (got.dx, got.dz, got.x0, got.z0) == (want.dx, want.dz, want.x0, want.z0)


def assert_same_gathers(got: ShotGathers, want: ShotGathers) -> None:
    assert got.data.dtype == np.float32
    assert got.data.tobytes() == want.data.tobytes()
    np.testing.assert_array_equal(got.n_receivers, want.n_receivers)
    for name in ("source_x", "source_z", "receiver_x", "receiver_z"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert (got.dt, got.t0) == (want.dt, want.t0)


def one_line_error(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    return message


# --- velocity round trips -----------------------------------------------------------


@pytest.mark.parametrize(("fmt", "endian"), FORMATS)
def test_velocity_round_trip(tmp_path: Path, fmt: int, endian: str) -> None:
    # fx.velocity_grid values are exact in IBM floats too.
    model = VelocityModel(fx.velocity_grid(), dx=1.25, dz=2.5, x0=100.5, z0=-3.25)
    path = write_velocity(tmp_path / "v.segy", model, sample_format=fmt, endian=endian)
    assert_same_model(read_velocity(path), model)
    with segyio.open(str(path), ignore_geometry=True, endian=endian) as f:
        assert int(f.format) == fmt


def test_velocity_round_trip_arbitrary_floats(tmp_path: Path, capsys) -> None:
    """IEEE keeps any float32; the textual header keeps spacings the integer
    headers cannot (1/3 m, 0.1 + 0.2 m) exact; .gz names are compressed."""
    rng = np.random.default_rng(1)
    values = rng.uniform(1400, 4800, size=(33, 17)).astype(np.float32)
    model = VelocityModel(values, dx=1 / 3, dz=0.1 + 0.2, x0=1 / 7, z0=12345.678)
    path = write_velocity(tmp_path / "v.segy.gz", model)
    with open(path, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"
    assert_same_model(read_velocity(path), model)
    assert capsys.readouterr().err == ""  # seispinn's own file: units known, no note


def test_velocity_headers_follow_documented_convention(tmp_path: Path) -> None:
    model = VelocityModel(fx.velocity_grid(4, 3), dx=1.25, dz=2.5, x0=100.5, z0=7.0)
    path = write_velocity(tmp_path / "v.segy", model)
    with segyio.open(str(path), ignore_geometry=True) as f:
        assert f.bin[BinField.Interval] == 2500  # dz in mm
        assert f.bin[BinField.Format] == 5
        scalar = f.header[0][TraceField.SourceGroupScalar]
        assert scalar == -100  # coarsest exact scalar for 1.25 m steps
        for field in (TraceField.CDP_X, TraceField.SourceX, TraceField.GroupX):
            assert list(f.attributes(field)[:]) == [10050, 10175, 10300, 10425]
        assert f.header[2][TraceField.TRACE_SAMPLE_INTERVAL] == 2500
        assert f.header[0][TraceField.DelayRecordingTime] == 7  # z0 in metres
        text = bytes(f.text[0]).decode("ascii")
    assert "SEISPINN VELOCITY MODEL" in text
    assert "M/S" in text and "DX=1.25 M" in text and "DZ=2.5 M" in text


def test_headers_edited_by_another_tool_win_over_textual_header(tmp_path: Path) -> None:
    model = VelocityModel(fx.velocity_grid(5, 4), dx=1.25, dz=2.5)
    path = write_velocity(tmp_path / "v.segy", model)
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        for i in range(5):
            f.header[i] = {TraceField.CDP_X: 1000 + 200 * i}  # 10 m + 2 m * i (scalar -100)
        f.bin.update({BinField.Interval: 4000})
        for i in range(5):
            f.header[i] = {TraceField.TRACE_SAMPLE_INTERVAL: 4000}
    got = read_velocity(path)
    assert (got.dx, got.x0, got.dz) == (2.0, 10.0, 4.0)


@pytest.mark.parametrize(
    ("scalar", "ints", "dx", "x0"),
    [
        (-100, 125 * np.arange(fx.NX) + 5000, 1.25, 50.0),  # negative: divide
        (10, 5 * np.arange(fx.NX) + 100, 50.0, 1000.0),  # positive: multiply
        (0, 25 * np.arange(fx.NX), 25.0, 0.0),  # 0 means 1
        (1, 12 * np.arange(fx.NX) + 3, 12.0, 3.0),
    ],
)
@pytest.mark.parametrize("endian", ["big", "little"])
def test_foreign_file_coordinate_scalars(
    tmp_path: Path, scalar: int, ints: np.ndarray, dx: float, x0: float, endian: str, capsys
) -> None:
    path = fx.write_velocity_plain(
        tmp_path / "v.segy",
        fx.velocity_grid(),
        endian=endian,
        interval=1250,
        cdp_x=ints,
        scalar=scalar,
    )
    got = read_velocity(path)
    assert (got.dx, got.x0, got.dz, got.z0) == (dx, x0, 1.25, 0.0)
    np.testing.assert_array_equal(got.values, fx.velocity_grid())
    assert "look like m/s" in capsys.readouterr().err  # units inferred, said so


@pytest.mark.parametrize(("scalar", "dx"), [(1, 12.5), (-10, 3.33), (1, 7.0 / 3)])
def test_coordinates_rounded_by_their_scalar_read_as_even(
    tmp_path: Path, scalar: int, dx: float, capsys
) -> None:
    """x = 0, 12, 25, 38, 50, ... (12.5 m stored in whole metres): dx from the ends."""
    unit = scalar if scalar > 0 else 1 / -scalar
    x = 100.0 + dx * np.arange(fx.NX)
    ints = np.floor(x / unit + 0.5).astype(np.int64)  # half up, as a writer rounds
    assert len(np.unique(np.diff(ints))) == 2  # really rounded
    path = fx.write_velocity_plain(
        tmp_path / "v.segy", fx.velocity_grid(), interval=1000, cdp_x=ints, scalar=scalar
    )
    got = read_velocity(path, units="m/s")
    assert got.dx == pytest.approx(dx, abs=unit / (fx.NX - 1))
    assert got.x0 == ints[0] * unit
    err = capsys.readouterr().err
    assert "rounded to whole units" in err and f"dx = {got.dx:g} m" in err


@pytest.mark.parametrize(
    "steps",
    [[12, 13, 12, 14], [12, 13, 12, 0], [12] * 20 + [13] * 19],  # the last: drift
)
def test_genuinely_uneven_coordinates_still_refused(tmp_path: Path, steps) -> None:
    """Steps over one unit apart, a repeated position, or a drift away from the line
    through the ends are not rounding."""
    ints = np.concatenate([[0], np.cumsum(np.resize(steps, fx.NX - 1))])
    path = fx.write_velocity_plain(
        tmp_path / "v.segy", fx.velocity_grid(), interval=1000, cdp_x=ints, scalar=1
    )
    with pytest.raises(SegyError, match=r"CDP_X not evenly increasing.*pass dx="):
        read_velocity(path, units="m/s")


def test_sourcex_used_when_cdp_x_is_constant(tmp_path: Path) -> None:
    path = fx.write_velocity_plain(
        tmp_path / "v.segy", fx.velocity_grid(), interval=1000, cdp_x=np.arange(fx.NX) * 4
    )
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        for i in range(fx.NX):
            f.header[i] = {TraceField.CDP_X: 99}
    assert read_velocity(path, units="m/s").dx == 4.0


def test_integer_samples_and_extended_textual_header(tmp_path: Path) -> None:
    values = np.rint(fx.velocity_grid()).astype(np.float32)
    path = fx.write_velocity_plain(
        tmp_path / "v.segy",
        values,
        fmt=2,
        interval=5000,
        cdp_x=np.arange(fx.NX) * 5,
        scalar=1,
        ext_headers=1,
    )
    got = read_velocity(path, units="m/s")
    np.testing.assert_array_equal(got.values, values)
    assert (got.dx, got.dz) == (5.0, 5.0)


def test_foreign_ibm_kms_file_with_spacing_by_argument(files, capsys) -> None:
    path = files["marmousi_like.segy"]
    got = read_velocity(path, dx=1.25, dz=1.25, units="km/s")
    assert got.shape == (fx.NZ, fx.NX)
    assert (got.dx, got.dz, got.x0, got.z0) == (1.25, 1.25, 0.0, 0.0)
    np.testing.assert_allclose(got.values, fx.velocity_grid(), rtol=1e-6)
    assert capsys.readouterr().err == ""
    # Without units: inferred from the values, with a note.
    np.testing.assert_array_equal(read_velocity(path, dx=1.25, dz=1.25).values, got.values)
    err = capsys.readouterr().err
    assert "look like km/s" in err and str(path) in err


def test_missing_spacing_names_the_arguments(tmp_path: Path, files) -> None:
    path = fx.write_velocity_plain(tmp_path / "v.segy", fx.velocity_grid(), interval=0)
    with pytest.raises(SegyError) as excinfo:
        read_velocity(path, units="m/s")
    message = one_line_error(excinfo, path)
    assert "pass dx=<metres> and dz=<metres>" in message
    assert "sample interval 0" in message and "CDP_X constant" in message
    with pytest.raises(SegyError, match=r"pass dz=<metres>$"):
        read_velocity(path, dx=1.25)
    with pytest.raises(SegyError, match=r"pass dx=<metres>$"):
        read_velocity(path, dz=1.25)
    # Marmousi2's SourceX: 1.25 m rounded to whole metres, read as even; dz missing.
    with pytest.raises(SegyError, match=r"\(binary-header sample interval 0\); pass dz=<metres>$"):
        read_velocity(files["marmousi_like.segy"])


def test_trace_interval_disagreeing_with_binary_header_is_unusable(tmp_path: Path) -> None:
    path = fx.write_velocity_plain(
        tmp_path / "v.segy",
        fx.velocity_grid(),
        interval=1000,
        trace_interval=4816,
        cdp_x=np.arange(fx.NX),
        scalar=1,
    )
    with pytest.raises(SegyError, match=r"4816 in trace headers.*pass dz=<metres>"):
        read_velocity(path, units="m/s")
    assert read_velocity(path, units="m/s", dz=2.0).dz == 2.0


def test_explicit_spacing_overrides_headers(tmp_path: Path) -> None:
    model = VelocityModel(fx.velocity_grid(), dx=1.25, dz=2.5, x0=5.0)
    path = write_velocity(tmp_path / "v.segy", model)
    got = read_velocity(path, dx=10.0, dz=20.0, x0=0.0, z0=1.0)
    assert (got.dx, got.dz, got.x0, got.z0) == (10.0, 20.0, 0.0, 1.0)


@pytest.mark.parametrize(("units", "factor"), [("m/s", 1.0), ("km/s", 1000.0), ("ft/s", 0.3048)])
def test_units_conversion(tmp_path: Path, units: str, factor: float) -> None:
    values = fx.velocity_grid() / np.float32(10)  # 100..139 in the file
    path = fx.write_velocity_plain(
        tmp_path / "v.segy", values, interval=1000, cdp_x=np.arange(fx.NX), scalar=1
    )
    got = read_velocity(path, units=units)
    np.testing.assert_allclose(got.values, values * factor, rtol=1e-6)


def test_unknown_units_rejected(files) -> None:
    with pytest.raises(SegyError, match="unknown velocity units 'mph'"):
        read_velocity(files["marmousi_like.segy"], dx=1, dz=1, units="mph")


# --- shots --------------------------------------------------------------------------


def make_gathers(ibm_exact: bool) -> ShotGathers:
    """3 shots with 4, 2 and 3 receivers; positions in cm; awkward dt and negative t0."""
    counts = np.array([4, 2, 3])
    n_shots, n_rec, nt = 3, 4, 40
    s, r, t = np.meshgrid(np.arange(n_shots), np.arange(n_rec), np.arange(nt), indexing="ij")
    if ibm_exact:
        data = fx.shot_value(s, r, t)
    else:
        data = np.random.default_rng(2).standard_normal((n_shots, n_rec, nt)).astype(np.float32)
    receiver_x = np.full((n_shots, n_rec), np.nan)
    receiver_z = np.full((n_shots, n_rec), np.nan)
    for k, n in enumerate(counts):
        data[k, n:] = 0
        receiver_x[k, :n] = np.round(12.5 * np.arange(n) + 0.01 * k + 100, 2)
        receiver_z[k, :n] = np.round([0.0, 3.75, -1.5, 20.01][:n], 2)
    return ShotGathers(
        data,
        source_x=np.array([0.0, 1234.56, -7.01]),
        source_z=np.array([2.5, 0.0, 10.25]),
        receiver_x=receiver_x,
        receiver_z=receiver_z,
        dt=0.0005 if ibm_exact else 1 / 3000,  # 1/3000 s is not a whole number of µs
        n_receivers=counts,
        t0=0.0 if ibm_exact else -0.0123,
    )


@pytest.mark.parametrize(("fmt", "endian"), FORMATS)
def test_shots_round_trip(tmp_path: Path, fmt: int, endian: str) -> None:
    gathers = make_gathers(ibm_exact=fmt == 1)
    path = write_shots(tmp_path / "s.segy", gathers, sample_format=fmt, endian=endian)
    assert_same_gathers(read_shots(path), gathers)


def test_shot_headers_follow_documented_convention(tmp_path: Path) -> None:
    gathers = make_gathers(ibm_exact=True)
    path = write_shots(tmp_path / "s.segy", gathers)
    with segyio.open(str(path), ignore_geometry=True) as f:
        assert f.tracecount == 9  # padded receivers are not written
        assert list(f.attributes(TraceField.FieldRecord)[:]) == [1] * 4 + [2] * 2 + [3] * 3
        h = f.header[5]  # shot 2, receiver 2
        assert h[TraceField.SourceGroupScalar] == -100
        assert (h[TraceField.SourceX], h[TraceField.GroupX]) == (123456, 10001 + 1250)
        assert h[TraceField.ElevationScalar] == -100
        # Receiver depth 3.75 m below datum is elevation -3.75 m.
        assert h[TraceField.ReceiverGroupElevation] == -375
        assert f.header[0][TraceField.SourceDepth] == 250
        assert f.bin[BinField.Interval] == 500  # µs
        assert h[TraceField.TRACE_SAMPLE_INTERVAL] == 500


@pytest.mark.parametrize(
    "name",
    [
        "shots_interleaved.segy",
        "shots_no_ffid.segy",
        "shots_ibm_little.segy",
        "shots_same_position.segy",
    ],
)
def test_interleaved_shots_grouped_by_header(files, name: str) -> None:
    got = read_shots(files[name])
    same = name == "shots_same_position.segy"
    # Sorted by field record (7, 3, 11 in the file); without one, by source x.
    key = fx.SHOT_SX_CM if name == "shots_no_ffid.segy" else fx.SHOT_FFID
    order = np.argsort(key)
    counts = np.array(fx.SHOT_RECEIVERS)[order]
    np.testing.assert_array_equal(got.n_receivers, counts)
    assert got.data.shape == (3, counts.max(), fx.SHOT_NT)
    it = np.arange(fx.SHOT_NT)
    for k, (s, n) in enumerate(zip(order, counts, strict=True)):
        for r in range(n):
            np.testing.assert_array_equal(got.data[k, r], fx.shot_value(s, r, it))
            assert got.receiver_x[k, r] == fx.receiver_x_cm(s, r) / 100
            assert got.receiver_z[k, r] == -fx.receiver_elevation_dm(s, r) / 10
        assert not np.any(got.data[k, n:])  # padding is zero
        assert np.all(np.isnan(got.receiver_x[k, n:]))
        assert got.source_x[k] == fx.SHOT_SX_CM[0 if same else s] / 100
        assert got.source_z[k] == fx.SHOT_SDEPTH_DM[0 if same else s] / 10
    assert got.dt == fx.SHOT_DT_US / 1e6
    assert got.t0 == fx.SHOT_DELAY_MS / 1000


def _foreign_shots(path: Path, channels: bool) -> Path:
    """Two shots as another tool may write them: field record 20 first, receivers in
    no order (x 200, 400, 100, 300 m), numbered from the far end (channel 1 at
    400 m) when ``channels``. Sample value = field record + receiver x / 1000."""
    rows = [(ffid, x) for ffid in (20, 10) for x in (200, 400, 100, 300)]
    with fx._create(path, len(rows), 8) as f:
        for k, (ffid, x) in enumerate(rows):
            f.trace[k] = np.full(8, ffid + x / 1000, dtype=np.float32)
            f.header[k] = {
                TraceField.FieldRecord: ffid,
                TraceField.TraceNumber: (500 - x) // 100 if channels else 0,
                TraceField.SourceX: 5 * ffid,
                TraceField.GroupX: x,
                TraceField.SourceGroupScalar: 1,
                TraceField.TRACE_SAMPLE_INTERVAL: 1000,
            }
        f.bin.update({BinField.Interval: 1000})
    return path


def test_shots_sorted_by_field_record_and_receivers_by_position(tmp_path: Path) -> None:
    got = read_shots(_foreign_shots(tmp_path / "p.segy", channels=False))
    np.testing.assert_array_equal(got.source_x, [50.0, 100.0])  # field record 10 first
    np.testing.assert_array_equal(got.receiver_x, [[100, 200, 300, 400]] * 2)
    np.testing.assert_allclose(
        got.data[:, :, 0], [[10.1, 10.2, 10.3, 10.4], [20.1, 20.2, 20.3, 20.4]], rtol=1e-6
    )


def test_receivers_in_channel_order_when_channels_are_numbered(tmp_path: Path) -> None:
    got = read_shots(_foreign_shots(tmp_path / "c.segy", channels=True))
    np.testing.assert_array_equal(got.source_x, [50.0, 100.0])
    np.testing.assert_array_equal(got.receiver_x, [[400, 300, 200, 100]] * 2)
    np.testing.assert_allclose(got.data[0, :, 0], [10.4, 10.3, 10.2, 10.1], rtol=1e-6)


def test_shots_need_dt_when_headers_have_none(tmp_path: Path) -> None:
    path = _foreign_shots(tmp_path / "s.segy", channels=False)
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        f.bin.update({BinField.Interval: 0})
        for i in range(f.tracecount):
            f.header[i] = {TraceField.TRACE_SAMPLE_INTERVAL: 0}
    with pytest.raises(SegyError, match=r"pass dt=<seconds>$"):
        read_shots(path)
    assert read_shots(path, dt=0.004).dt == 0.004


def test_a_file_of_the_other_kind_is_refused_by_name(files, tmp_path: Path) -> None:
    """A velocity model read as shot gathers and the reverse: one line saying what the
    file looks like, from another tool and from seispinn."""
    model = files["marmousi_like.segy"]
    with pytest.raises(SegyError) as excinfo:
        read_shots(model, dt=0.004)
    assert "looks like a velocity model" in one_line_error(excinfo, model)
    shots = files["shots_interleaved.segy"]
    with pytest.raises(SegyError) as excinfo:
        read_velocity(shots, dx=10.0, dz=10.0)
    assert "looks like shot gathers (3 shots" in one_line_error(excinfo, shots)
    ours = write_velocity(tmp_path / "v.segy", VelocityModel(fx.velocity_grid(), 5.0, 5.0))
    with pytest.raises(SegyError, match="is a seispinn velocity model, not shot gathers"):
        read_shots(ours)
    gathers = write_shots(tmp_path / "g.segy", make_gathers(ibm_exact=True))
    with pytest.raises(SegyError, match="looks like shot gathers"):
        read_velocity(gathers)
    # A model with blank position headers is still a model: nothing shares a source.
    blank = fx.write_velocity_plain(tmp_path / "b.segy", fx.velocity_grid(), interval=1000)
    assert read_velocity(blank, dx=5.0, units="m/s").shape == (fx.NZ, fx.NX)
    # Nor is one whose only x is GroupX (one blank 'source' at many receiver x): its
    # spacing is usable and its samples positive.
    only = fx.write_velocity_plain(
        tmp_path / "g.segy", fx.velocity_grid(), interval=1000, cdp_x=5 * np.arange(fx.NX)
    )
    with segyio.open(str(only), "r+", ignore_geometry=True) as f:
        for i in range(fx.NX):
            f.header[i] = {TraceField.CDP_X: 0, TraceField.SourceX: 0}
    assert read_velocity(only, units="m/s").dx == 5.0


# --- bad input ----------------------------------------------------------------------

BAD_FOR_ALL = [
    ("not_segy.txt", "not a SEG-Y file"),
    ("short_text.csv", "not a SEG-Y file"),
    ("empty.segy", "empty file"),
    ("truncated.segy", "truncated"),
    ("zero_traces.segy", "no traces"),
    ("inconsistent_samples.segy", "inconsistent sample counts"),
    ("bad_gzip.segy.gz", "cannot decompress"),
]


@pytest.mark.parametrize(("name", "problem"), BAD_FOR_ALL)
@pytest.mark.parametrize("reader", [read_velocity, read_shots, summarise])
def test_bad_files_raise_one_line_segy_error(files, reader, name: str, problem: str) -> None:
    path = files[name]
    with pytest.raises(SegyError) as excinfo:
        reader(path)
    assert problem in one_line_error(excinfo, path)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("nan_velocity.segy", "1 NaN or infinite"),
        ("inf_velocity.segy", "1 NaN or infinite"),
        ("negative_velocity.segy", "must be positive, minimum is -1500"),
        ("zero_velocity.segy", "must be positive, minimum is 0"),
    ],
)
def test_invalid_velocities(files, name: str, problem: str, capsys) -> None:
    path = files[name]
    with pytest.raises(SegyError) as excinfo:
        read_velocity(path)
    assert problem in one_line_error(excinfo, path)
    assert capsys.readouterr().err == ""  # no misleading units note first


def test_nan_shot_samples(files) -> None:
    path = files["nan_velocity.segy"]
    with pytest.raises(SegyError) as excinfo:
        read_shots(path)
    assert "1 samples are NaN or infinite" in one_line_error(excinfo, path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SegyError) as excinfo:
        read_velocity(tmp_path / "nope.segy")
    assert "no such file" in one_line_error(excinfo, tmp_path / "nope.segy")
    with pytest.raises(SegyError, match="is a directory"):
        read_shots(tmp_path)


def test_truncated_gzip(tmp_path: Path) -> None:
    model = VelocityModel(fx.velocity_grid(), dx=1.0, dz=1.0)
    raw = write_velocity(tmp_path / "v.segy.gz", model).read_bytes()
    cut = tmp_path / "cut.segy.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SegyError) as excinfo:
        read_velocity(cut)
    assert "cannot decompress" in one_line_error(excinfo, cut)


def test_gzip_of_truncated_segy(files, tmp_path: Path) -> None:
    path = tmp_path / "t.segy.gz"
    path.write_bytes(gzip.compress(files["truncated.segy"].read_bytes()))
    with pytest.raises(SegyError, match="truncated"):
        read_velocity(path)


def test_write_rejects_bad_input_and_leaves_no_file(tmp_path: Path) -> None:
    gathers = make_gathers(ibm_exact=True)
    data = gathers.data.copy()
    data[0, 0, 0] = np.nan
    bad = ShotGathers(
        data,
        gathers.source_x,
        gathers.source_z,
        gathers.receiver_x,
        gathers.receiver_z,
        gathers.dt,
        gathers.n_receivers,
    )
    with pytest.raises(SegyError, match="NaN"):
        write_shots(tmp_path / "s.segy", bad)
    model = VelocityModel(fx.velocity_grid(), dx=1.0, dz=1.0)
    with pytest.raises(SegyError, match="sample format"):
        write_velocity(tmp_path / "v.segy", model, sample_format=3)
    with pytest.raises(SegyError, match="cannot write"):
        write_velocity(tmp_path / "no" / "such" / "dir.segy", model)
    assert list(tmp_path.iterdir()) == []


# --- summary and CLI ----------------------------------------------------------------


def test_summarise_velocity_and_shots(files, tmp_path: Path) -> None:
    model = VelocityModel(fx.velocity_grid(), dx=1.25, dz=2.5)
    s = summarise(write_velocity(tmp_path / "v.segy", model, endian="little"))
    assert (s.kind, s.written_by_seispinn, s.endian) == ("velocity model", True, "little")
    assert (s.traces, s.samples, s.dx, s.dz, s.sample_format) == (fx.NX, fx.NZ, 1.25, 2.5, 5)
    assert (s.value_min, s.value_max) == (model.values.min(), model.values.max())
    assert s.value_mean == pytest.approx(model.values.mean(dtype=np.float64))

    s = summarise(files["shots_interleaved.segy"])
    assert (s.kind, s.n_shots, s.dt, s.t0, s.dx) == ("shot gathers", 3, 0.002, 0.1, None)

    s = summarise(files["marmousi_like.segy"])
    # 39 steps of 1.25 m rounded to whole metres: 49 m, so dx = 49/39 m (±1/39 m).
    assert (s.kind, s.units_guess, s.dx, s.dz, s.format_name) == (
        "velocity model",
        "km/s",
        49 / 39,
        None,
        "4-byte IBM float",
    )
    assert any("sample interval 0" in note for note in s.notes)
    assert any("rounded to whole units" in note for note in s.notes)


@pytest.fixture()
def cli_main(monkeypatch):
    """``seispinn.cli.main`` with only the ``info`` subcommand registered, so this
    test does not depend on the other subcommand modules existing."""
    monkeypatch.setattr(seispinn.cli, "_COMMANDS", ("info",))
    return seispinn.cli.main


def test_cli_info(files, cli_main, capsys) -> None:
    path = files["marmousi_like.segy"]
    assert cli_main(["info", str(path), "--dx", "1.25", "--dz", "1.25", "--units", "km/s"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and "4-byte IBM float" in out
    assert f"{fx.NX} traces x {fx.NZ} samples" in out
    assert "1000 .. 1390.92 m/s" in out
    assert "48.75 m wide x 73.75 m deep" in out

    assert cli_main(["info", str(files["shots_interleaved.segy"])]) == 0
    out = capsys.readouterr().out
    assert "shot gathers" in out and "2 ms" in out


def test_cli_info_without_spacing_says_what_to_pass(files, capsys) -> None:
    summary = summarise(files["marmousi_like.segy"])
    text = info_cli.format_summary(summary)
    assert "pass --dz" in text and "look like km/s" in text
    assert "pass --dx" not in text and "rounded to whole units" in text


@pytest.mark.parametrize("name", ["truncated.segy", "not_segy.txt", "empty.segy"])
def test_cli_info_broken_file(files, cli_main, capsys, name: str) -> None:
    assert cli_main(["info", str(files[name])]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and str(files[name]) in lines[0]
    assert "Traceback" not in captured.err


# --- the real Marmousi2 model -------------------------------------------------------


@pytest.fixture(scope="module")
def marmousi() -> Path:
    if not MARMOUSI.exists():
        pytest.skip(f"Marmousi2 model not found at {MARMOUSI}")
    return MARMOUSI


def test_marmousi2(marmousi: Path, capsys) -> None:
    start = time.perf_counter()
    with pytest.raises(SegyError) as excinfo:
        read_velocity(marmousi)
    assert "pass dx=<metres> and dz=<metres>" in one_line_error(excinfo, marmousi)

    model = read_velocity(marmousi, dx=1.25, dz=1.25, units="km/s")
    assert model.shape == (2801, 13601)
    assert model.values.dtype == np.float32
    assert 1027.9 < model.values.min() < 1028.1
    assert 4699.9 < model.values.max() < 4700.1
    assert model.values[0].max() < 1600  # water on top: depth runs down the rows
    assert model.values[-1].mean() > 3500
    assert capsys.readouterr().err == ""
    assert time.perf_counter() - start < 30
